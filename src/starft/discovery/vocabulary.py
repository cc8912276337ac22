"""Vocabularies for naming discovered clusters: descriptors from pools, word lists or the sandbox.

Every vocabulary entry is a StarFT descriptor (a format string with exactly one ``{}`` that
receives a caption), so the names of a cluster can be written out as a pool as they are. Sources:

* a pool name (``starft ls pools``-style names: ``all``, ``background``, ``sandbox_scene`` ...) or
  a pool JSON file: its descriptors;
* a word list file (any other file): one entry per line (blank lines and ``#`` comments
  skipped); a line with ``{}`` is a descriptor already, any other line is a word or phrase put
  into ``word_template`` (default ``"{} with {word}."``);
* ``sandbox_world``: the sandbox world's words (shape, colour, scene, style) in the phrases of
  ``resources/sandbox/vocabulary.json``.

Entries are normalised as generated pools are (lower case, one final period), deduplicated, and
entries naming a class (``exclude``) are dropped: a pool must never name the class it describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starft.data.format_strings import check_format_string
from starft.data.pools import list_pools, load_pool
from starft.errors import StarftError
from starft.generation.clean import format_problem
from starft.generation.normalise import forbidden_pattern, normalise_descriptor

SANDBOX_WORLD = "sandbox_world"
DEFAULT_WORD_TEMPLATE = "{} with {word}."
_PHRASES = "vocabulary.json"


@dataclass(frozen=True)
class Vocabulary:
    """Descriptors in order, the source of each, and what was dropped (entry -> reason)."""

    descriptors: list[str]
    sources: list[str]
    dropped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.descriptors)


def vocabulary_names() -> list[str]:
    """Named vocabularies (files are accepted too): the sandbox world's, then every pool."""
    return [SANDBOX_WORLD, *list_pools()]


def check_word_template(template: str) -> str:
    """A template with one ``{word}`` that gives a descriptor with exactly one ``{}``."""
    if template.count("{word}") != 1:
        raise StarftError(f"word template {template!r} must contain '{{word}}' exactly once")
    check_format_string(template.replace("{word}", "word"), f"word template {template!r}")
    return template


def fill_word(template: str, word: str, where: str) -> str:
    """``template`` with ``word`` in its ``{word}`` slot (a word must not contain braces)."""
    word = word.strip()
    if not word or "{" in word or "}" in word:
        raise StarftError(f"{where}: word {word!r} is blank or contains a brace")
    return template.replace("{word}", word)


def read_word_list(path: str | Path, word_template: str = DEFAULT_WORD_TEMPLATE) -> list[str]:
    """Descriptors of a word list file (see the module docstring)."""
    check_word_template(word_template)
    where = f"word list '{path}'"
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read {where}: {error}") from None
    entries = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        here = f"{where} line {number}"
        entries.append(
            check_format_string(text, here) if "{" in text else fill_word(word_template, text, here)
        )
    if not entries:
        raise StarftError(f"{where} has no entries")
    return entries


def sandbox_world_descriptors() -> list[str]:
    """Every word of the sandbox world in its attribute's phrase, attribute by attribute."""
    from starft.sandbox.resources import read_sandbox_json
    from starft.sandbox.world import ATTRIBUTES, vocabulary

    phrases = read_sandbox_json(_PHRASES).get("phrases", {})
    missing = [a for a in ATTRIBUTES if a not in phrases]
    if missing:
        raise StarftError(f"sandbox {_PHRASES}: no phrase for attribute '{missing[0]}'")
    entries = []
    for attribute in ATTRIBUTES:
        template = check_word_template(phrases[attribute])
        where = f"sandbox {_PHRASES} ({attribute})"
        entries.extend(fill_word(template, word, where) for word in vocabulary(attribute))
    return entries


def read_vocabulary_source(spec: str, word_template: str = DEFAULT_WORD_TEMPLATE) -> list[str]:
    """The raw entries of one source: ``sandbox_world``, a pool name, a pool JSON or a word list."""
    if spec == SANDBOX_WORLD:
        return sandbox_world_descriptors()
    if spec in list_pools():
        return load_pool(spec)
    path = Path(spec)
    if not path.is_file():
        raise StarftError(
            f"unknown vocabulary '{spec}' (known: {', '.join(vocabulary_names())}; or a pool "
            "JSON file or a word list file)"
        )
    return (
        load_pool(path) if path.suffix.lower() == ".json" else read_word_list(path, word_template)
    )


def load_vocabulary(
    specs: Sequence[str],
    *,
    word_template: str = DEFAULT_WORD_TEMPLATE,
    exclude: Sequence[str] = (),
) -> Vocabulary:
    """The descriptors of every source in ``specs``, normalised, deduplicated (first kept), without
    entries that name a word of ``exclude`` (class names; plurals count)."""
    if not specs:
        raise StarftError("naming: no vocabulary given")
    pattern = forbidden_pattern(exclude)
    descriptors: list[str] = []
    sources: list[str] = []
    dropped: dict[str, str] = {}
    seen: set[str] = set()
    for spec in specs:
        for entry in read_vocabulary_source(spec, word_template):
            text = normalise_descriptor(entry)
            problem = format_problem(text)
            if problem is not None:
                raise StarftError(f"vocabulary '{spec}': entry {entry!r} {problem}")
            if text in seen:
                continue
            seen.add(text)
            match = pattern.search(text.replace("{}", " ")) if pattern else None
            if match is not None:
                dropped[text] = f"names the class '{match.group(0)}'"
                continue
            descriptors.append(text)
            sources.append(spec)
    if not descriptors:
        raise StarftError(
            f"vocabulary {', '.join(specs)}: no descriptor left after dropping the "
            f"{len(dropped)} that name a class"
        )
    return Vocabulary(descriptors, sources, dropped)

"""StarFT spurious descriptor pools and spurious-caption construction.

A descriptor is a format string whose ``{}`` receives a whole class caption without its final
period: ``"{} surrounded by flowers."`` turns ``"a photo of a tench."`` into ``"a photo of a tench
surrounded by flowers."``. The released pools (background, texture, resolution) ship as
``resources/starft_spurious_pools.json``; users can also point at their own JSON file: a list of
descriptors, or an object of lists (one per concept) whose ``_``-keys are comments, such as the
``_provenance`` that ``starft pools generate`` writes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from starft.data.format_strings import check_format_strings
from starft.data.resources import read_json_resource
from starft.errors import StarftError

_RESOURCE = "starft_spurious_pools.json"
_RELEASED = ("background", "texture", "resolution")
POOL_NAMES = (*_RELEASED, "all")
# Pools written for the procedural sandbox world (starft.sandbox), kept in its own data file.
_SANDBOX_RESOURCE = "sandbox/pools.json"
_SANDBOX_POOLS = ("sandbox_scene", "sandbox_texture", "sandbox_quality")
# ``sandbox_all`` is the three sandbox pools together, as ``all`` is for the released ones.
SANDBOX_POOL_NAMES = (*_SANDBOX_POOLS, "sandbox_all")


def list_pools() -> list[str]:
    """Names accepted by :func:`load_pool`: the released pools, then the sandbox world's.

    (A path to a custom JSON pool is accepted too.)
    """
    return [*POOL_NAMES, *SANDBOX_POOL_NAMES]


def _dedupe(items: list[str]) -> list[str]:
    """Keep the first occurrence of each entry, in order (so pool indices are reproducible)."""
    return list(dict.fromkeys(items))


def _pool_entries(data: object, where: str) -> list[object]:
    """Entries of a pool file: a list, or a dict of lists concatenated (``_``-keys are comments)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        entries: list[object] = []
        for key, value in data.items():
            if str(key).startswith("_"):
                continue
            if not isinstance(value, list):
                raise StarftError(f"{where}: key '{key}' must hold a list of strings")
            entries.extend(value)
        return entries
    raise StarftError(f"{where}: must hold a JSON list of strings or an object of such lists")


def _load_pool_file(path: Path) -> list[str]:
    where = f"pool file '{path}'"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read {where}: {error}") from None
    except json.JSONDecodeError as error:
        raise StarftError(f"{where} is not valid JSON: {error}") from None
    return _dedupe(check_format_strings(_pool_entries(data, where), where))


def load_pool(name_or_path: str | Path) -> list[str]:
    """Descriptors of a released pool (:data:`POOL_NAMES`), a sandbox pool
    (:data:`SANDBOX_POOL_NAMES`) or a custom JSON file.

    ``"all"`` is background, texture and resolution concatenated in that order without duplicates;
    ``"sandbox_all"`` likewise the three sandbox pools.
    Returns a fresh list the caller may modify.
    """
    if isinstance(name_or_path, str) and name_or_path in POOL_NAMES:
        data = read_json_resource(_RESOURCE)
        names = _RELEASED if name_or_path == "all" else (name_or_path,)
        entries = [entry for name in names for entry in data[name]]
        return _dedupe(check_format_strings(entries, f"pool '{name_or_path}'"))
    if isinstance(name_or_path, str) and name_or_path in SANDBOX_POOL_NAMES:
        data = read_json_resource(_SANDBOX_RESOURCE)
        names = _SANDBOX_POOLS if name_or_path == "sandbox_all" else (name_or_path,)
        entries = [entry for name in names for entry in data[name]]
        return _dedupe(check_format_strings(entries, f"pool '{name_or_path}'"))
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join((*POOL_NAMES, *SANDBOX_POOL_NAMES))
        raise StarftError(
            f"unknown descriptor pool '{name_or_path}' "
            f"(known: {known}; or give a path to a JSON file)"
        )
    return _load_pool_file(path)


def spurious_caption(descriptor: str, caption: str) -> str:
    """Insert a caption (one final period dropped, trailing space stripped) into a descriptor.

    The period goes because most descriptors continue the sentence and end with their own.
    """
    stem = caption.rstrip()
    if stem.endswith("."):
        stem = stem[:-1].rstrip()
    return descriptor.format(stem)


def random_suffix_pool(
    num: int, words: Sequence[str], num_words: int = 4, seed: int = 0
) -> list[str]:
    """``num`` descriptors ``"{} w1 ... wk."``, words drawn with replacement from ``words``.

    This is the random-token-suffix ablation: same caption shape as a spurious descriptor but no
    meaning. The draw depends only on ``seed`` so a run's pool can be re-created.
    """
    if num < 1 or num_words < 1:
        raise StarftError(
            f"random suffix pool: num and num_words must be >= 1, got {num}, {num_words}"
        )
    vocab = [str(word) for word in words]
    if not vocab:
        raise StarftError("random suffix pool: the word list is empty")
    bad = [word for word in vocab if "{" in word or "}" in word or not word.strip()]
    if bad:
        raise StarftError(f"random suffix pool: word {bad[0]!r} is blank or contains a brace")
    rng = random.Random(seed)
    return ["{} " + " ".join(rng.choices(vocab, k=num_words)) + "." for _ in range(num)]

"""Cleaning generated descriptors into a pool, counting what every filter removed.

Filters, in order: ``normalise`` (empty items), ``format`` (exactly one ``{}``, no other braces or
bracketed placeholders, some words besides the slot), ``forbidden`` (class names and user words),
``context`` (fits the target model's text context), ``exact_duplicates``, ``token_overlap``
(near-duplicates by word overlap), ``embedding_duplicates`` (near-duplicates by the target model's
text-embedding cosine), ``per_concept`` (the requested number per concept). Earlier items win: the
model's own order is kept, so re-running on a grown cache keeps the earlier pool as a prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starft.generation.normalise import (
    BAD_CHARACTERS,
    descriptor_words,
    forbidden_pattern,
    normalise_descriptor,
    token_overlap,
)
from starft.generation.target import TargetText


@dataclass
class Item:
    concept: str
    raw: str
    text: str = ""


@dataclass
class CleanResult:
    """The cleaned pool (concept -> descriptors), the count after each filter, the dropped items."""

    pool: dict[str, list[str]]
    steps: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.pool.values())


@dataclass(frozen=True)
class CleanOptions:
    """Thresholds and word lists of :func:`clean_descriptors`.

    ``overlap_threshold`` / ``cosine_threshold``: an item whose word overlap (Jaccard) or embedding
    cosine with an earlier kept item reaches the threshold is a near-duplicate; ``None`` disables.
    """

    per_concept: int | None = None
    forbidden: tuple[str, ...] = ()
    overlap_threshold: float | None = 0.8
    cosine_threshold: float | None = 0.95

    def to_json(self) -> dict[str, Any]:
        return {
            "per_concept": self.per_concept,
            "forbidden": list(self.forbidden),
            "overlap_threshold": self.overlap_threshold,
            "cosine_threshold": self.cosine_threshold,
        }


def format_problem(text: str) -> str | None:
    """Why a normalised descriptor is not a usable format string (None when it is)."""
    if not text:
        return "empty"
    if text.count("{}") != 1:
        return "needs exactly one '{}'"
    rest = text.replace("{}", "")
    if "{" in rest or "}" in rest:
        return "has braces other than its '{}'"
    if BAD_CHARACTERS & set(text):
        return "has a bracketed placeholder"
    if not descriptor_words(text):
        return "adds no words to the caption"
    return None


class _Pipeline:
    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.steps: list[dict[str, Any]] = []
        self.dropped: list[dict[str, str]] = []

    def apply(self, name: str, reason: Callable[[int, Item], str | None]) -> None:
        """Drop every item for which ``reason(index, item)`` is not None (in order)."""
        before = len(self.items)
        kept = []
        for index, item in enumerate(self.items):
            why = reason(index, item)
            if why is None:
                kept.append(item)
            else:
                text = item.text or item.raw
                self.dropped.append(
                    {"concept": item.concept, "text": text, "filter": name, "reason": why}
                )
        self.items = kept
        self.steps.append({"filter": name, "before": before, "after": len(kept)})

    def skip(self, name: str, why: str) -> None:
        n = len(self.items)
        self.steps.append({"filter": name, "before": n, "after": n, "skipped": why})


def clean_descriptors(
    raw: Sequence[tuple[str, str]],
    options: CleanOptions,
    target: TargetText | None = None,
    classnames: Sequence[str] = (),
) -> CleanResult:
    """Clean ``(concept, raw descriptor)`` pairs (in generation order) into a pool.

    ``classnames`` and ``options.forbidden`` are never allowed in a descriptor. Without ``target``
    the ``context`` and ``embedding_duplicates`` filters are skipped (and say so in the steps).
    """
    items = [Item(concept, text) for concept, text in raw]
    pipe = _Pipeline(items)
    for item in items:
        item.text = normalise_descriptor(item.raw)
    pipe.apply("normalise", lambda _, it: None if it.text else "empty")
    pipe.apply("format", lambda _, it: format_problem(it.text))

    pattern = forbidden_pattern([*classnames, *options.forbidden])
    if pattern is None:
        pipe.skip("forbidden", "no class names or forbidden words given")
    else:

        def forbidden(_: int, item: Item) -> str | None:
            match = pattern.search(item.text.replace("{}", " "))
            return None if match is None else f"names '{match.group(0)}'"

        pipe.apply("forbidden", forbidden)

    if target is None:
        pipe.skip("context", "no target model given")
    else:
        fits = target.fits([it.text for it in pipe.items])
        limit = target.context_length
        pipe.apply(
            "context",
            lambda i, _: (
                None if fits[i] else f"longer than {limit} tokens with the longest caption"
            ),
        )

    seen: set[str] = set()

    def exact(_: int, item: Item) -> str | None:
        if item.text in seen:
            return "duplicate"
        seen.add(item.text)
        return None

    pipe.apply("exact_duplicates", exact)
    _near_duplicates(pipe, options, target)

    if options.per_concept is None:
        pipe.skip("per_concept", "no limit")
    else:
        counts: dict[str, int] = {}

        def cap(_: int, item: Item) -> str | None:
            counts[item.concept] = counts.get(item.concept, 0) + 1
            return None if counts[item.concept] <= options.per_concept else "over the limit"

        pipe.apply("per_concept", cap)

    pool: dict[str, list[str]] = {}
    for item in pipe.items:
        pool.setdefault(item.concept, []).append(item.text)
    return CleanResult(pool, pipe.steps, pipe.dropped)


def _near_duplicates(pipe: _Pipeline, options: CleanOptions, target: TargetText | None) -> None:
    if options.overlap_threshold is None:
        pipe.skip("token_overlap", "disabled")
    else:
        threshold = options.overlap_threshold
        kept_words: list[tuple[frozenset[str], str]] = []

        def overlap(_: int, item: Item) -> str | None:
            words = descriptor_words(item.text)
            for other, text in kept_words:
                if token_overlap(words, other) >= threshold:
                    return f"word overlap >= {threshold:g} with {text!r}"
            kept_words.append((words, item.text))
            return None

        pipe.apply("token_overlap", overlap)

    if options.cosine_threshold is None:
        pipe.skip("embedding_duplicates", "disabled")
    elif target is None:
        pipe.skip("embedding_duplicates", "no target model given")
    else:
        texts = [it.text for it in pipe.items]
        embeddings = target.embed(texts)
        similarity = embeddings @ embeddings.T
        threshold = options.cosine_threshold
        kept: list[int] = []

        def cosine(i: int, _: Item) -> str | None:
            if kept:
                best = similarity[i, kept].max()
                if float(best) >= threshold:
                    j = kept[int(similarity[i, kept].argmax())]
                    return f"embedding cosine {float(best):.3f} >= {threshold:g} with {texts[j]!r}"
            kept.append(i)
            return None

        pipe.apply("embedding_duplicates", cosine)

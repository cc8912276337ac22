"""CFT concept banks from a language model: weighted visual concepts per class.

Per class the model is asked for ``concept: weight`` lines (in rounds, as for pools); concepts are
normalised, stripped of user-forbidden words, deduplicated (exact and by word overlap) and capped.
An item without a readable positive weight is dropped, never given a made-up one. The bank is
written in the format :func:`starft.data.concept_bank.load_concept_bank` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starft.data.concept_bank import WeightedConcept, parse_concept_bank
from starft.errors import StarftError
from starft.generation.cache import CachedClient
from starft.generation.client import ChatClient, Sampling
from starft.generation.normalise import (
    BAD_CHARACTERS,
    descriptor_words,
    forbidden_pattern,
    normalise_concept,
    token_overlap,
)
from starft.generation.parse import parse_weighted
from starft.generation.pools import DEFAULT_DOMAIN
from starft.generation.prompts import PromptSet, load_prompts
from starft.generation.session import as_cached, ask_in_rounds, provenance
from starft.utils.io import atomic_write_json

ABOUT = (
    "CFT concept bank written by `starft concepts generate`: per class, visual concepts with "
    "weights (a concept's mask is scaled by its weight); '_provenance' says how it was made."
)
FILTERS = ("weight", "format", "forbidden", "exact_duplicates", "token_overlap", "per_class")


@dataclass
class GeneratedBank:
    bank: dict[str, list[WeightedConcept]]
    provenance: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        classes = {c: [w.to_json() for w in items] for c, items in self.bank.items()}
        return {"_about": ABOUT, "_provenance": self.provenance, **classes}


def clean_concepts(
    pairs: Sequence[tuple[str, float | None]],
    per_class: int | None,
    forbidden: Sequence[str] = (),
    overlap_threshold: float | None = 0.8,
) -> tuple[list[WeightedConcept], dict[str, int]]:
    """Usable weighted concepts of one class, in answer order, and how many each filter dropped."""
    dropped = dict.fromkeys(FILTERS, 0)
    pattern = forbidden_pattern(forbidden)
    kept: list[WeightedConcept] = []
    kept_words: list[frozenset[str]] = []
    for raw, weight in pairs:
        concept = normalise_concept(raw)
        words = descriptor_words(concept)
        if weight is None or weight <= 0:
            dropped["weight"] += 1
        elif not words or BAD_CHARACTERS & set(concept) or "{" in concept or "}" in concept:
            dropped["format"] += 1
        elif pattern is not None and pattern.search(concept):
            dropped["forbidden"] += 1
        elif any(k.concept == concept for k in kept):
            dropped["exact_duplicates"] += 1
        elif overlap_threshold is not None and any(
            token_overlap(words, other) >= overlap_threshold for other in kept_words
        ):
            dropped["token_overlap"] += 1
        elif per_class is not None and len(kept) >= per_class:
            dropped["per_class"] += 1
        else:
            kept.append(WeightedConcept(concept, float(weight)))
            kept_words.append(words)
    return kept, dropped


def generate_concept_bank(
    client: ChatClient | CachedClient,
    classnames: Sequence[str],
    *,
    per_class: int = 10,
    max_rounds: int = 3,
    prompts: PromptSet | None = None,
    domain: str = DEFAULT_DOMAIN,
    sampling: Sampling | None = None,
    forbidden: Sequence[str] = (),
    overlap_threshold: float | None = 0.8,
    backend: str = "custom",
    model: str = "custom",
) -> GeneratedBank:
    """Ask ``client`` for ``per_class`` weighted visual concepts of every class.

    A class for which no usable concept comes back is an error naming the class: a mask builder
    cannot build a mask for it.
    """
    if not classnames:
        raise StarftError("concept bank: no class names given")
    if per_class < 1:
        raise StarftError(f"per_class must be >= 1, got {per_class}")
    sampling = sampling or Sampling()
    prompts = prompts or load_prompts()
    cached = as_cached(client, backend, model)
    hits, calls = cached.hits, cached.calls
    bank: dict[str, list[WeightedConcept]] = {}
    totals = dict.fromkeys(FILTERS, 0)
    raw_total = 0
    for classname in classnames:
        usable: list[int] = []

        def want_more(answers: list[str], usable: list[int] = usable) -> bool:
            pairs = [p for answer in answers for p in parse_weighted(answer)]
            usable.append(len(clean_concepts(pairs, None, forbidden, overlap_threshold)[0]))
            # Stop when enough, or when a round added nothing (the model repeats itself).
            return usable[-1] < per_class and (len(usable) == 1 or usable[-1] > usable[-2])

        values = {"domain": domain, "classname": classname, "k": per_class}
        answers = ask_in_rounds(
            cached,
            prompts.render("class_concepts", **values),
            prompts.render("class_concepts_more", **values),
            sampling,
            max_rounds,
            want_more,
        )
        pairs = [p for answer in answers for p in parse_weighted(answer)]
        kept, dropped = clean_concepts(pairs, per_class, forbidden, overlap_threshold)
        if not kept:
            raise StarftError(
                f"class '{classname}': the model's answers hold no usable 'concept: weight' line "
                f"(first answer: {answers[0][:120]!r})"
            )
        bank[classname] = kept
        raw_total += len(pairs)
        for name, count in dropped.items():
            totals[name] += count
    # The written file must be one the reader accepts; check it here rather than in the reader.
    parse_concept_bank({c: [w.to_json() for w in v] for c, v in bank.items()}, "generated bank")
    counts = []
    remaining = raw_total
    for name in FILTERS:
        counts.append({"filter": name, "before": remaining, "after": remaining - totals[name]})
        remaining -= totals[name]
    info = provenance(cached, sampling, "starft concepts generate")
    info.update(
        {
            "domain": domain,
            "classes": list(classnames),
            "per_class": per_class,
            "max_rounds": max_rounds,
            "calls": {
                "answers_from_cache": cached.hits - hits,
                "answers_from_model": cached.calls - calls,
            },
            "filters": {"forbidden": list(forbidden), "overlap_threshold": overlap_threshold},
            "counts": counts,
            "final": {c: len(v) for c, v in bank.items()},
            "prompts": prompts.to_json("class_concepts", "class_concepts_more"),
        }
    )
    return GeneratedBank(bank, info)


def write_concept_bank(path: str | Path, generated: GeneratedBank) -> Path:
    """Write the bank atomically (a reader sees the old file or the whole new one)."""
    atomic_write_json(path, generated.to_json())
    return Path(path)

"""Spurious descriptor pools from a language model, the StarFT paper's two stages.

Stage 1 asks which spurious concepts matter for the domain ("List possible spurious correlations
while classifying natural images. Answer in a word."), unless the concepts are given; stage 2 asks,
per concept, for fine-grained descriptors, continuing the conversation in rounds until enough
usable ones came back. The descriptors are then cleaned (:mod:`starft.generation.clean`) and
written as a pool file that ``method.pool=FILE.json`` reads: one list per concept plus a
``_provenance`` object (``_``-keys are skipped by the pool reader).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starft.errors import StarftError
from starft.generation.cache import CachedClient
from starft.generation.clean import CleanOptions, clean_descriptors
from starft.generation.client import ChatClient, Sampling
from starft.generation.normalise import normalise_concept
from starft.generation.parse import parse_list
from starft.generation.prompts import PromptSet, load_prompts
from starft.generation.session import as_cached, ask_in_rounds, provenance
from starft.generation.target import TargetText
from starft.utils.io import atomic_write_json

DEFAULT_DOMAIN = "natural images"
ABOUT = (
    "Spurious descriptor pool written by `starft pools generate`: one list of descriptors per "
    "concept ('{}' receives a class caption without its final period). Train with "
    "method.pool=THIS_FILE; '_provenance' says how it was made."
)


@dataclass
class GeneratedPool:
    """Descriptors per concept and the provenance of the file they are written to."""

    pool: dict[str, list[str]]
    provenance: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"_about": ABOUT, "_provenance": self.provenance, **self.pool}

    def descriptors(self) -> list[str]:
        return [d for items in self.pool.values() for d in items]


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if int(value) < 1:
            raise StarftError(f"{name} must be >= 1, got {value}")


def _concept_names(items: Sequence[str], where: str) -> list[str]:
    """Distinct normalised concept names; an explanation after the name is cut off
    ("Background: the setting" -> "background")."""
    names = []
    for item in items:
        name = normalise_concept(re.split(r":| - | – | — |\(", item, maxsplit=1)[0])
        if not name:
            continue
        if name.startswith("_"):
            raise StarftError(f"{where}: concept '{name}' may not start with '_'")
        if name not in names:
            names.append(name)
    return names


def generate_pool(
    client: ChatClient | CachedClient,
    *,
    concepts: Sequence[str] | None = None,
    num_concepts: int = 3,
    per_concept: int = 30,
    per_call: int = 15,
    max_rounds: int = 4,
    prompts: PromptSet | None = None,
    domain: str = DEFAULT_DOMAIN,
    sampling: Sampling | None = None,
    classnames: Sequence[str] = (),
    forbidden: Sequence[str] = (),
    target: TargetText | None = None,
    overlap_threshold: float | None = 0.8,
    cosine_threshold: float | None = 0.95,
    backend: str = "custom",
    model: str = "custom",
) -> GeneratedPool:
    """Ask ``client`` for a spurious descriptor pool (see the module docstring).

    Args:
        client: any :class:`ChatClient`, or a cached one from
            :func:`starft.generation.open_client` (``backend`` / ``model`` then come from it).
        concepts: the spurious concepts (e.g. ``["background", "texture"]``); None asks the
            model (stage 1) and keeps its first ``num_concepts``.
        per_concept: descriptors wanted per concept (fewer if the model runs dry).
        per_call: descriptors asked for per answer; ``max_rounds`` answers at most per concept.
        classnames / forbidden: words no descriptor may contain (class names always).
        target: the model the pool is for: enables the context-length and embedding filters.
        overlap_threshold / cosine_threshold: near-duplicate thresholds (None disables).
    """
    _check_counts(num_concepts=num_concepts, per_concept=per_concept, per_call=per_call)
    sampling = sampling or Sampling()
    prompts = prompts or load_prompts()
    cached = as_cached(client, backend, model)
    hits, calls = cached.hits, cached.calls
    stage1: str | None = None
    if concepts is None:
        stage1 = ask_in_rounds(
            cached, prompts.render("concepts", domain=domain), [], sampling, 1, lambda _: False
        )[0]
        names = _concept_names(parse_list(stage1), "stage 1 answer")[:num_concepts]
        if not names:
            raise StarftError(f"stage 1: the model named no spurious concept (answer {stage1!r})")
    else:
        names = _concept_names(concepts, "--concepts")
        if not names:
            raise StarftError("--concepts: no concept given")

    options = CleanOptions(per_concept, tuple(forbidden), overlap_threshold, cosine_threshold)
    cheap = CleanOptions(None, tuple(forbidden), None, None)
    raw: list[tuple[str, str]] = []
    rounds: dict[str, int] = {}
    for concept in names:
        counts: list[int] = []

        def want_more(
            answers: list[str], concept: str = concept, counts: list[int] = counts
        ) -> bool:
            items = [(concept, item) for answer in answers for item in parse_list(answer)]
            counts.append(clean_descriptors(items, cheap, None, classnames).total)
            # Stop when enough, or when a round added nothing (the model repeats itself).
            return counts[-1] < per_concept and (len(counts) == 1 or counts[-1] > counts[-2])

        values = {"domain": domain, "concept": concept, "k": per_call}
        answers = ask_in_rounds(
            cached,
            prompts.render("descriptors", **values),
            prompts.render("descriptors_more", **values),
            sampling,
            max_rounds,
            want_more,
        )
        if counts[-1] == 0:
            raise StarftError(
                f"concept '{concept}': the model's answers hold no usable descriptor (first "
                f"answer: {answers[0][:120]!r})"
            )
        rounds[concept] = len(answers)
        raw.extend((concept, item) for answer in answers for item in parse_list(answer))

    result = clean_descriptors(raw, options, target, classnames)
    if not result.pool:
        raise StarftError(
            "no descriptor survived cleaning (see the filters: "
            + ", ".join(f"{s['filter']} {s['before']}->{s['after']}" for s in result.steps)
            + ")"
        )
    info = provenance(cached, sampling, "starft pools generate")
    info.update(
        {
            "domain": domain,
            "concepts": {
                "source": "model" if concepts is None else "given",
                "names": names,
                **({"stage1_answer": stage1} if stage1 is not None else {}),
            },
            "per_concept": per_concept,
            "per_call": per_call,
            "max_rounds": max_rounds,
            "rounds": rounds,
            "calls": {
                "answers_from_cache": cached.hits - hits,
                "answers_from_model": cached.calls - calls,
            },
            "classes": list(classnames),
            "filters": options.to_json(),
            "target": None
            if target is None
            else {
                "model": target.model.name,
                "pretrained": target.model.pretrained,
                "context_length": target.context_length,
                "template": target.template,
                "longest_caption": target.longest_caption,
            },
            "counts": result.steps,
            "final": {concept: len(items) for concept, items in result.pool.items()},
            "dropped": result.dropped,
            "prompts": prompts.to_json(
                *(("concepts",) if concepts is None else ()), "descriptors", "descriptors_more"
            ),
        }
    )
    return GeneratedPool(result.pool, info)


def write_pool(path: str | Path, generated: GeneratedPool) -> Path:
    """Write the pool file atomically (a reader sees the old file or the whole new one)."""
    atomic_write_json(path, generated.to_json())
    return Path(path)

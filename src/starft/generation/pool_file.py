"""Reading, summarising and validating pool files (``starft pools show|validate``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starft.data.pools import load_pool
from starft.errors import StarftError
from starft.generation.clean import format_problem
from starft.generation.normalise import forbidden_pattern, normalise_descriptor
from starft.generation.target import TargetText


def read_pool_file(path: str | Path) -> tuple[dict[str, list[str]], dict[str, Any] | None]:
    """Descriptors per concept (a plain list file is one concept, ``"pool"``) and provenance.

    The file is first read exactly as training reads it (:func:`starft.data.load_pool`), so a file
    this accepts is one ``method.pool=FILE`` accepts.
    """
    load_pool(Path(path))
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list):
        return {"pool": list(data)}, None
    pools = {k: list(v) for k, v in data.items() if not str(k).startswith("_")}
    info = data.get("_provenance")
    if info is not None and not isinstance(info, dict):
        raise StarftError(f"pool file '{path}': '_provenance' must be an object")
    return pools, info


def validate_pool_file(
    path: str | Path,
    target: TargetText | None = None,
    classnames: Sequence[str] = (),
    forbidden: Sequence[str] = (),
) -> list[str]:
    """Problems of a pool file, one line each (empty when it is clean).

    Loading errors (what training would refuse) raise :class:`StarftError`; the returned problems
    are what training would accept but a clean pool must not have: text that is not normalised,
    duplicates, class names or forbidden words, captions too long for ``target``.
    """
    pools, info = read_pool_file(path)
    problems: list[str] = []
    seen: dict[str, str] = {}
    pattern = forbidden_pattern([*classnames, *forbidden])
    for concept, items in pools.items():
        for text in items:
            where = f"{concept}: {text!r}"
            why = format_problem(text)
            if why is not None:
                problems.append(f"{where} {why}")
            elif normalise_descriptor(text) != text:
                problems.append(
                    f"{where} is not normalised (expected {normalise_descriptor(text)!r})"
                )
            # Compared in normal form: "{} On the beach" and "{} on the beach." are one entry.
            canonical = normalise_descriptor(text)
            if canonical in seen:
                problems.append(f"{where} repeats an entry of '{seen[canonical]}'")
            seen.setdefault(canonical, concept)
            match = pattern.search(text.replace("{}", " ")) if pattern else None
            if match is not None:
                problems.append(f"{where} names '{match.group(0)}'")
    if target is not None:
        texts = [text for items in pools.values() for text in items]
        for text, fits in zip(texts, target.fits(texts)):
            if not fits:
                problems.append(
                    f"{text!r} is longer than {target.context_length} tokens with the caption "
                    f"{target.longest_caption!r}"
                )
    if info is not None:
        final = info.get("final")
        if isinstance(final, dict):
            for concept, items in pools.items():
                if final.get(concept) != len(items):
                    problems.append(
                        f"{concept}: {len(items)} descriptors, provenance says {final.get(concept)}"
                        " (edited after generation?)"
                    )
    return problems


def describe_pool(path: str | Path, show_descriptors: bool = True, dropped: bool = False) -> str:
    """A human-readable summary: provenance, counts per filter, descriptors per concept (and
    with ``dropped`` every generated item a filter removed, with the reason)."""
    pools, info = read_pool_file(path)
    lines = [f"pool file: {path}"]
    if info is None:
        lines.append("provenance: none (written by hand or by another tool)")
    else:
        model = info.get("model")
        backend = info.get("backend")
        recorded = (
            f" (recorded by {info['recorded_backend']})" if "recorded_backend" in info else ""
        )
        lines.append(f"generated: {info.get('date')} by {info.get('generator')}")
        lines.append(f"model: {model} via {backend}{recorded}; sampling {info.get('sampling')}")
        concepts = info.get("concepts", {})
        if isinstance(concepts, dict):
            lines.append(
                f"concepts ({concepts.get('source')}): {', '.join(concepts.get('names', []))}"
            )
        target = info.get("target")
        if isinstance(target, dict):
            lines.append(
                f"target: {target.get('model')} (context {target.get('context_length')}, "
                f"template {target.get('template')!r})"
            )
        for step in info.get("counts", []):
            if isinstance(step, dict):
                note = f"  (skipped: {step['skipped']})" if step.get("skipped") else ""
                name, before, after = step.get("filter", "?"), step.get("before"), step.get("after")
                lines.append(f"  {name:<22}{before} -> {after}{note}")
        if dropped:
            for item in info.get("dropped", []):
                lines.append(
                    f"  dropped [{item.get('concept')}] {item.get('text')!r}: "
                    f"{item.get('filter')}, {item.get('reason')}"
                )
    total = sum(len(v) for v in pools.values())
    lines.append(f"{total} descriptors in {len(pools)} concept(s)")
    for concept, items in pools.items():
        lines.append(f"[{concept}] {len(items)}")
        if show_descriptors:
            lines.extend(f"  {text}" for text in items)
    return "\n".join(lines)

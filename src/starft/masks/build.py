"""Concept masks from a detector and a segmenter, cached on disk as a mask PNG folder.

Per image of a dataset: the concepts of its class (a concept bank, see
:mod:`starft.data.concept_bank`) -> boxes per concept (an open-vocabulary detector) -> one mask
per box (a promptable segmenter) -> quality gate per mask (coverage of the image in
``[min_coverage, max_coverage]``) -> a concept's mask is the union of its kept masks -> the image's
mask ``max_c(w_c·mask_c) / max_c w_c`` (the class's largest weight, so it stays in [0, 1]).

Output folder ``OUT``:

* ``masks/<image path relative to the dataset root>.png``: soft grey masks (``mask_format=soft``),
  the layout the ``csv``/``imagefolder`` datasets read with ``mask_root=OUT/masks``;
* ``status/<same>.json``: per image, kept or rejected with the reason and per-concept counts;
  written after the mask, so an image with a status file is done and a re-run skips it;
* ``kept.csv`` (``filepath,label[,group]``, paths relative to the dataset root) and
  ``classnames.txt``: the images with a kept mask, as a ``csv`` dataset;
* ``build.json``: the settings; a re-run with other settings stops instead of mixing masks;
* ``report.json``: counts, rejections by reason and the rejected images.

Every file is written atomically: a crash leaves finished images and nothing half-written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from starft.data.concept_bank import WeightedConcept
from starft.errors import StarftError
from starft.masks.grounders import Detector, Segmenter
from starft.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

REJECT_NO_BOX = "no box"
REJECT_NO_MASK = "no mask within the coverage range"
REJECT_COMBINED = "combined mask outside the coverage range"


@dataclass(frozen=True)
class GroundingOptions:
    """The quality gate and the per-concept box budget (CFT's gate: 0.1 % to 98 % coverage)."""

    min_coverage: float = 0.001
    max_coverage: float = 0.98
    max_boxes_per_concept: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_coverage < self.max_coverage <= 1.0:
            raise StarftError(
                "coverage range must satisfy 0 <= min_coverage < max_coverage <= 1, got "
                f"[{self.min_coverage}, {self.max_coverage}]"
            )
        if self.max_boxes_per_concept < 1:
            raise StarftError(
                f"max_boxes_per_concept must be >= 1, got {self.max_boxes_per_concept}"
            )

    def gate(self, coverage: float) -> str | None:
        """None when a mask covering this share of the image is kept, else why not."""
        if coverage < self.min_coverage:
            return "too small"
        if coverage > self.max_coverage:
            return "too large"
        return None


@dataclass
class ImageResult:
    """One image's grounding: ``mask`` (float [H, W] in [0, 1]) or None with ``reason``."""

    mask: np.ndarray | None
    reason: str | None
    concepts: dict[str, dict[str, Any]] = field(default_factory=dict)
    coverage: float | None = None


def combine_masks(masks: Sequence[np.ndarray], weights: Sequence[float], top: float) -> np.ndarray:
    """``max_c(w_c·mask_c) / top`` of boolean masks ``[H, W]`` (``top``: the largest weight)."""
    stacked = np.stack([w * m.astype(np.float32) for m, w in zip(masks, weights)])
    return np.clip(stacked.max(axis=0) / top, 0.0, 1.0)


def ground_image(
    image: Image.Image,
    concepts: Sequence[WeightedConcept],
    detector: Detector,
    segmenter: Segmenter,
    options: GroundingOptions,
) -> ImageResult:
    """The concept mask of one image (see the module doc) and what happened per concept."""
    queries = [c.concept for c in concepts]
    boxes = detector.detect(image, queries)
    if len(boxes) != len(queries):
        raise StarftError(
            f"the detector returned {len(boxes)} box lists for {len(queries)} queries"
        )
    kept_masks, kept_weights = [], []
    report: dict[str, dict[str, Any]] = {}
    pixels = image.width * image.height
    for concept, found in zip(concepts, boxes):
        found = list(found)[: options.max_boxes_per_concept]
        stats: dict[str, Any] = {"boxes": len(found), "kept": 0, "too small": 0, "too large": 0}
        masks = segmenter.segment(image, found) if found else []
        union = np.zeros((image.height, image.width), dtype=bool)
        for mask in masks:
            if mask.shape != union.shape:
                raise StarftError(
                    f"the segmenter returned a {mask.shape[1]}x{mask.shape[0]} mask for a "
                    f"{image.width}x{image.height} image"
                )
            reason = options.gate(float(mask.sum()) / pixels)
            if reason is None:
                union |= mask
                stats["kept"] += 1
            else:
                stats[reason] += 1
        if stats["kept"]:
            kept_masks.append(union)
            kept_weights.append(concept.weight)
        report[concept.concept] = stats
    if not kept_masks:
        any_box = any(s["boxes"] for s in report.values())
        return ImageResult(None, REJECT_NO_MASK if any_box else REJECT_NO_BOX, report)
    mask = combine_masks(kept_masks, kept_weights, max(c.weight for c in concepts))
    coverage = float((mask > 0).sum()) / pixels
    if options.gate(coverage) is not None:
        return ImageResult(None, REJECT_COMBINED, report, coverage)
    return ImageResult(mask, None, report, coverage)


def mask_png(mask: np.ndarray) -> bytes:
    """A soft mask in [0, 1] as an 8-bit grey PNG (read back with ``mask_format=soft``)."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(mask * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class BuildReport:
    images: int
    kept: int
    rejected: int
    built_now: int
    from_cache: int
    reasons: dict[str, int]
    masks_rejected: dict[str, int]
    rejected_images: list[dict[str, Any]]
    out: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _relative_paths(dataset: Any) -> list[Path]:
    paths, root = getattr(dataset, "image_paths", None), getattr(dataset, "root", None)
    name = dataset.describe() if hasattr(dataset, "describe") else type(dataset).__name__
    if paths is None or root is None:
        raise StarftError(
            f"masks build needs a dataset of image files under a root folder (csv, imagefolder); "
            f"{name} has none"
        )
    relative = []
    for path in paths:
        try:
            relative.append(Path(path).relative_to(root))
        except ValueError:
            raise StarftError(f"image '{path}' is not under the dataset root '{root}'") from None
    stems = Counter(p.with_suffix("") for p in relative)
    twice = [str(p) for p, n in stems.items() if n > 1]
    if twice:
        raise StarftError(
            f"{name}: images '{twice[0]}.*' differ only in their suffix, so their masks would "
            "share one file"
        )
    return relative


def _concepts_per_class(
    dataset: Any, bank: Mapping[str, Sequence[WeightedConcept]]
) -> list[Sequence[WeightedConcept]]:
    used = sorted(set(dataset.labels))
    missing = [dataset.classnames[y] for y in used if dataset.classnames[y] not in bank]
    if missing:
        raise StarftError(
            f"the concept bank has no concepts for {len(missing)} class(es) of the dataset, e.g. "
            f"'{missing[0]}' (bank classes: {', '.join(list(bank)[:5])}...)"
        )
    return [bank.get(name, ()) for name in dataset.classnames]


def _check_settings(out: Path, settings: Mapping[str, Any]) -> None:
    path = out / "build.json"
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise StarftError(f"cannot read {path}: {error}") from None
        changed = [
            k for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)
        ]
        if changed:
            raise StarftError(
                f"'{out}' holds masks built with other settings ({', '.join(changed)} differ); "
                "use another --out or remove it"
            )
    else:
        atomic_write_json(path, dict(settings))


def build_masks(
    dataset: Any,
    bank: Mapping[str, Sequence[WeightedConcept]],
    detector: Detector,
    segmenter: Segmenter,
    out: str | Path,
    *,
    options: GroundingOptions | None = None,
    settings: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """Ground every image of ``dataset`` into ``out`` (see the module doc); skips done images.

    ``settings`` (JSON-able: dataset, bank, models, thresholds) is stored in ``build.json`` and
    must match on a re-run into the same folder.
    """
    options = options or GroundingOptions()
    out = Path(out)
    relative = _relative_paths(dataset)
    concepts = _concepts_per_class(dataset, bank)
    _check_settings(out, {**dict(settings or {}), "options": asdict(options)})
    records: list[dict[str, Any]] = []
    built = 0
    for index, rel in enumerate(relative):
        status_path = out / "status" / rel.with_suffix(".json")
        mask_path = out / "masks" / rel.with_suffix(".png")
        record = _cached(status_path, mask_path)
        if record is None:
            image = dataset.read_image(index)
            result = ground_image(
                image, concepts[dataset.labels[index]], detector, segmenter, options
            )
            record = {
                "image": rel.as_posix(),
                "index": index,
                "kept": result.mask is not None,
                "reason": result.reason,
                "coverage": result.coverage,
                "concepts": result.concepts,
            }
            if result.mask is not None:
                atomic_write_bytes(mask_path, mask_png(result.mask))
            atomic_write_json(status_path, record)
            built += 1
        records.append(record)
        if progress is not None:
            progress(index + 1, len(relative))
    _write_kept(out, dataset, records)
    report = _report(out, records, built)
    atomic_write_json(out / "report.json", report.to_json())
    return report


def _cached(status_path: Path, mask_path: Path) -> dict[str, Any] | None:
    """The status of a finished image, or None (not done, or its mask went missing)."""
    if not status_path.is_file():
        return None
    try:
        record = json.loads(status_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # unreadable: redo the image
    if record.get("kept") and not mask_path.is_file():
        return None
    return record


def _write_kept(out: Path, dataset: Any, records: Sequence[Mapping[str, Any]]) -> None:
    groups = getattr(dataset, "groups", None)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["filepath", "label"] + (["group"] if groups is not None else []))
    for record in records:
        if record["kept"]:
            index = record["index"]
            group = [groups[index]] if groups is not None else []
            writer.writerow([record["image"], dataset.labels[index], *group])
    atomic_write_text(out / "kept.csv", buffer.getvalue())
    atomic_write_text(out / "classnames.txt", "\n".join(dataset.classnames) + "\n")


def _report(out: Path, records: Sequence[Mapping[str, Any]], built: int) -> BuildReport:
    reasons = Counter(r["reason"] for r in records if not r["kept"])
    masks_rejected: Counter[str] = Counter()
    for record in records:
        for stats in record["concepts"].values():
            masks_rejected.update({k: stats[k] for k in ("too small", "too large")})
    kept = sum(1 for r in records if r["kept"])
    return BuildReport(
        images=len(records),
        kept=kept,
        rejected=len(records) - kept,
        built_now=built,
        from_cache=len(records) - built,
        reasons=dict(reasons),
        masks_rejected=dict(masks_rejected),
        rejected_images=[
            {"image": r["image"], "reason": r["reason"]} for r in records if not r["kept"]
        ],
        out=str(out),
    )

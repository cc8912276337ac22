"""Scoring ranked regions against ground-truth boxes: relevance, P@K, R-precision, intervals.

A region is *relevant* when it covers at least ``min_coverage`` of the area of its image's
ground-truth box (the sandbox marker's box): ``area(region ∩ box) / area(box) >= min_coverage``.
Images without a box have no relevant region. Precision@K is the share of the first K positions of
a ranking that hold a relevant region; positions past the end of a short ranking (RaVL returns
only the regions of the clusters that pass) count as not relevant, so a method that returns
nothing scores 0. R-precision is Precision@R with R the number of relevant regions in the whole
evaluation set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from starft.errors import StarftError


def box_coverage(regions: Any, boxes: Any) -> np.ndarray:
    """Share of each box's area that its region covers, ``[R]`` (NaN where the box is NaN).

    ``regions`` and ``boxes`` are ``[R, 4]`` xyxy in the same pixels; row r pairs region r with the
    ground-truth box of its image.
    """
    regions = np.asarray(regions, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if regions.ndim != 2 or regions.shape[1] != 4 or boxes.shape != regions.shape:
        raise StarftError(
            f"box coverage: regions {regions.shape} and boxes {boxes.shape} must both be [R, 4]"
        )
    width = np.minimum(regions[:, 2], boxes[:, 2]) - np.maximum(regions[:, 0], boxes[:, 0])
    height = np.minimum(regions[:, 3], boxes[:, 3]) - np.maximum(regions[:, 1], boxes[:, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, inter / area, np.nan)


def relevant_regions(regions: Any, boxes: Any, min_coverage: float = 0.5) -> np.ndarray:
    """Boolean ``[R]``: the region covers at least ``min_coverage`` of its image's box (NaN box:
    the image has none, so the region is not relevant)."""
    if not 0.0 < float(min_coverage) <= 1.0:
        raise StarftError(f"relevance: min_coverage must lie in (0, 1], got {min_coverage!r}")
    coverage = box_coverage(regions, boxes)
    return np.nan_to_num(coverage, nan=-1.0) >= float(min_coverage)


def _check_ranking(ranking: Any, relevant: np.ndarray) -> np.ndarray:
    ranking = np.asarray(ranking, dtype=np.int64).reshape(-1)
    if ranking.size and (ranking.min() < 0 or ranking.max() >= len(relevant)):
        raise StarftError(
            f"ranking: region index outside [0, {len(relevant)}) in a ranking of {ranking.size}"
        )
    if len(np.unique(ranking)) != ranking.size:
        raise StarftError("ranking: a region appears more than once")
    return ranking


def precision_at_k(ranking: Any, relevant: Any, k: int) -> float:
    """Relevant regions among the first ``k`` of ``ranking``, divided by ``k``."""
    if int(k) < 1:
        raise StarftError(f"precision@k: k must be >= 1, got {k}")
    relevant = np.asarray(relevant, dtype=bool)
    ranking = _check_ranking(ranking, relevant)
    return float(relevant[ranking[: int(k)]].sum()) / int(k)


def r_precision(ranking: Any, relevant: Any) -> float:
    """Precision@R, R = the number of relevant regions (an error when there are none)."""
    relevant = np.asarray(relevant, dtype=bool)
    count = int(relevant.sum())
    if count == 0:
        raise StarftError("R-precision: no region is relevant, so R-precision is undefined")
    return precision_at_k(ranking, relevant, count)


def ranking_metrics(ranking: Any, relevant: Any, ks: Sequence[int] = (10, 25)) -> dict[str, float]:
    """``{"P@10": ..., "P@25": ..., "R-prec": ...}`` for one ranking."""
    out = {f"P@{k}": precision_at_k(ranking, relevant, k) for k in ks}
    out["R-prec"] = r_precision(ranking, relevant)
    return out


def bootstrap_interval(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean over ``values`` (None with fewer than 2)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(int(resamples), data.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarise(values: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``{"mean", "ci95": [low, high] | None, "n"}`` of per-setting values."""
    data = [float(v) for v in values]
    interval = bootstrap_interval(data, resamples=resamples, seed=seed)
    return {
        "mean": float(np.mean(data)) if data else None,
        "ci95": None if interval is None else list(interval),
        "n": len(data),
    }

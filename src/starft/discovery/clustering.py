"""Choose the number of clusters by silhouette and fit K-medoids at that K (RaVL step 1)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from starft.discovery.kmedoids import kmedoids_alternate
from starft.discovery.silhouette import silhouette_score_precomputed
from starft.errors import StarftError


def default_k_range(num_classes: int) -> range:
    """RaVL's sweep: K from 2|Y| to 5|Y| - 1."""
    return range(2 * num_classes, 5 * num_classes)


def parse_k_range(text: str | None) -> list[int] | None:
    """``"A:B"`` -> ``[A, ..., B]`` (both included, 2 <= A <= B); None stays None."""
    if text is None:
        return None
    low, sep, high = text.partition(":")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise StarftError(f"--k-range must be A:B with integers, e.g. 4:9, got '{text}'")
    a, b = int(low), int(high)
    if a < 2 or b < a:
        raise StarftError(f"--k-range {text}: need 2 <= A <= B")
    return list(range(a, b + 1))


@dataclass(frozen=True)
class Clustering:
    """The chosen clustering, or ``k is None`` with a ``message`` when none is usable.

    ``silhouettes[K]`` is the score of every K tried (``None`` where it is undefined: K not below
    the number of points, or fewer than 2 non-empty clusters).
    """

    k: int | None
    labels: np.ndarray | None
    medoids: np.ndarray | None
    silhouette: float | None
    silhouettes: dict[int, float | None] = field(default_factory=dict)
    message: str = ""


def select_clustering(
    dist: np.ndarray, k_range: Iterable[int], *, seed: int = 0, backend: str = "numpy"
) -> Clustering:
    """Fit every K, keep the highest silhouette (strictly greater, so the smallest K wins ties, and
    it must exceed 0 as in the release), then refit at that K (deterministic, so the refit equals
    the sweep's fit; it is kept to mirror the release)."""
    n = dist.shape[0]
    ks = sorted({int(k) for k in k_range})
    silhouettes: dict[int, float | None] = {}
    best_k, best_score = None, 0.0
    for k in ks:
        if not 2 <= k <= n - 1:
            silhouettes[k] = None
            continue
        fit = kmedoids_alternate(dist, k, seed=seed, backend=backend)
        score = silhouette_score_precomputed(dist, fit.labels)
        silhouettes[k] = score
        if score is not None and score > best_score:
            best_k, best_score = k, score
    if best_k is None:
        usable = [k for k, s in silhouettes.items() if s is not None]
        if not usable:
            why = f"no K in {ks[0]}..{ks[-1]} gives 2 to {n - 1} non-empty clusters of {n} regions"
        else:
            why = f"every silhouette is <= 0 for K in {ks[0]}..{ks[-1]} (no cluster structure)"
        return Clustering(None, None, None, None, silhouettes, f"clustering degenerate: {why}")
    fit = kmedoids_alternate(dist, best_k, seed=seed, backend=backend)
    return Clustering(best_k, fit.labels, fit.medoids, best_score, silhouettes)

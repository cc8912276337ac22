"""Silhouette of a clustering on a precomputed distance matrix (scikit-learn's definition).

For point r in cluster A: ``a = Σ_{q∈A} d(r, q) / (|A| - 1)``, ``b = min_{B≠A} mean_{q∈B} d(r, q)``
and ``s = (b - a) / max(a, b)``, with ``s = 0`` for a point alone in its cluster and where
``a = b = 0``; the score is the mean over points. Only non-empty clusters count, and a score exists
for ``2 <= number of clusters <= n - 1`` (scikit-learn raises otherwise; we return ``None``).
"""

from __future__ import annotations

import numpy as np


def silhouette_samples_precomputed(dist: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Per-point silhouette values, or ``None`` when the number of clusters is out of range."""
    dist = np.asarray(dist, dtype=np.float64)
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    n, n_clusters = len(codes), int(codes.max()) + 1 if len(codes) else 0
    if not 2 <= n_clusters <= n - 1:
        return None
    onehot = np.zeros((n, n_clusters))
    onehot[np.arange(n), codes] = 1.0
    sums = dist @ onehot  # [n, clusters]: summed distance from each point to each cluster
    sizes = onehot.sum(axis=0)
    own = sums[np.arange(n), codes]
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = own / (sizes[codes] - 1.0)
        means = sums / sizes
        means[np.arange(n), codes] = np.inf
        inter = means.min(axis=1)
        values = (inter - intra) / np.maximum(intra, inter)
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def silhouette_score_precomputed(dist: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette, or ``None`` when fewer than 2 or more than ``n - 1`` clusters are used."""
    values = silhouette_samples_precomputed(dist, labels)
    return None if values is None else float(values.mean())

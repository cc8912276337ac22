"""K-medoids on a precomputed distance matrix: the ``alternate`` method with k-medoids++ seeding.

This reproduces scikit-learn-extra's ``KMedoids(metric="precomputed", method="alternate",
init="k-medoids++", max_iter=300, random_state=seed)`` step by step, which is what RaVL's release
runs (scikit-learn-extra no longer imports with numpy 2, hence our own copy):

* seeding draws from ``numpy.random.RandomState(seed)`` in the same order (one ``randint`` for the
  first medoid, then ``2 + int(log k)`` candidates per further medoid, weighted by the *squared*
  distance to the nearest chosen medoid, the candidate that lowers that potential most wins);
* a point joins the first medoid at the smallest distance;
* a medoid moves to the member with the smallest summed distance to its cluster, only when that sum
  is strictly smaller than the current medoid's (an empty cluster keeps its medoid);
* it stops when no medoid moves, or after ``max_iter`` rounds.

The optional ``kmedoids`` package (``backend="kmedoids"``) runs the same alternation in compiled
code from the same seeding. It breaks exact distance ties differently (a medoid always keeps itself;
summation order), so on data with duplicate points the two may differ; the default is ``numpy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from starft.errors import StarftError

BACKENDS = ("numpy", "kmedoids")
MAX_ITER = 300


@dataclass(frozen=True)
class KMedoidsFit:
    """``labels[r]`` = cluster of point r; ``medoids[c]`` = point index of cluster c's medoid."""

    labels: np.ndarray
    medoids: np.ndarray
    inertia: float
    n_iter: int


def cosine_distances(embeddings: np.ndarray) -> np.ndarray:
    """``clip(1 - E Eᵀ, 0, 1)`` with a zero diagonal, in float64, for row-normalised ``E``."""
    emb = np.asarray(embeddings, dtype=np.float64)
    dist = 1.0 - emb @ emb.T
    np.clip(dist, 0.0, 1.0, out=dist)
    np.fill_diagonal(dist, 0.0)
    return dist


def kmedoids_plusplus(dist: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """k-medoids++ seeding (scikit-learn-extra ``_kpp_init``): ``k`` point indices."""
    n = dist.shape[0]
    n_trials = 2 + int(np.log(k))
    centers = np.empty(k, dtype=np.int64)
    centers[0] = rng.randint(n)
    closest = dist[centers[0]] ** 2
    potential = closest.sum()
    for index in range(1, k):
        draws = rng.random_sample(n_trials) * potential
        # float64 cumulative sum as scikit-learn's stable_cumsum; clamp the (measure-zero) draw that
        # lands exactly on the total so it cannot index past the last point.
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws), n - 1)
        best, best_potential, best_closest = None, None, None
        for candidate in candidates:
            new_closest = np.minimum(closest, dist[candidate] ** 2)
            new_potential = new_closest.sum()
            if best is None or new_potential < best_potential:
                best, best_potential, best_closest = candidate, new_potential, new_closest
        centers[index] = best
        potential, closest = best_potential, best_closest
    return centers


def _alternate_numpy(
    dist: np.ndarray, medoids: np.ndarray, max_iter: int
) -> tuple[np.ndarray, int]:
    medoids = medoids.copy()
    n_iter = 0
    for n_iter in range(max_iter):  # noqa: B007 - the count is reported
        old = medoids.copy()
        labels = np.argmin(dist[medoids], axis=0)
        for cluster in range(len(medoids)):
            members = np.flatnonzero(labels == cluster)
            if len(members) == 0:
                continue
            costs = dist[np.ix_(members, members)].sum(axis=1)
            best = int(np.argmin(costs))
            # As released: the current medoid's cost is read at its position among the members,
            # or at position 0 when it is not a member (it lost its points to an equal medoid).
            current = costs[int(np.argmax(members == medoids[cluster]))]
            if costs[best] < current:
                medoids[cluster] = members[best]
        if np.array_equal(old, medoids):
            break
    return medoids, n_iter + 1


def _alternate_kmedoids(
    dist: np.ndarray, medoids: np.ndarray, max_iter: int
) -> tuple[np.ndarray, int]:
    try:
        import kmedoids
    except ImportError as error:
        raise StarftError(
            "k-medoids backend 'kmedoids' needs the optional package: pip install kmedoids"
        ) from error
    result = kmedoids.alternating(dist, medoids.copy(), max_iter=max_iter)
    return np.asarray(result.medoids, dtype=np.int64), int(result.n_iter)


def kmedoids_alternate(
    dist: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    max_iter: int = MAX_ITER,
    backend: str = "numpy",
) -> KMedoidsFit:
    """Cluster the ``n`` points of the ``[n, n]`` distance matrix ``dist`` into ``k`` clusters."""
    if backend not in BACKENDS:
        raise StarftError(
            f"k-medoids backend must be one of {', '.join(BACKENDS)}, got '{backend}'"
        )
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise StarftError(f"k-medoids needs a square distance matrix, got shape {dist.shape}")
    if not 1 <= k <= dist.shape[0]:
        raise StarftError(
            f"k-medoids: k={k} must be in [1, {dist.shape[0]}] (the number of points)"
        )
    initial = kmedoids_plusplus(dist, k, np.random.RandomState(seed))
    run = _alternate_numpy if backend == "numpy" else _alternate_kmedoids
    medoids, n_iter = run(dist, initial, max_iter)
    labels = np.argmin(dist[medoids], axis=0)
    inertia = float(dist[medoids].min(axis=0).sum())
    return KMedoidsFit(labels=labels, medoids=medoids, inertia=inertia, n_iter=n_iter)

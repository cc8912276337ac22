"""K-medoids (alternate, k-medoids++), silhouette and the choice of K for RaVL discovery."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

from starft.discovery import (
    cosine_distances,
    kmedoids_alternate,
    select_clustering,
    silhouette_samples_precomputed,
    silhouette_score_precomputed,
)
from starft.errors import StarftError

# A 14-point distance matrix (exact multiples of 1/512) with three loose groups, and what
# scikit-learn-extra 0.3.0 ``KMedoids(n_clusters=k, random_state=seed, metric="precomputed",
# init="k-medoids++")`` (RaVL's call) and scikit-learn 1.4
# ``silhouette_score(metric="precomputed")`` returned on it (with numpy 1.26, where
# scikit-learn-extra still imports).
GOLDEN_D = [
    [0, 15, 48, 62, 39, 440, 136, 80, 72, 296, 320, 504, 224, 392],
    [15, 0, 8, 13, 16, 400, 432, 320, 136, 224, 360, 112, 96, 16],
    [48, 8, 0, 23, 62, 152, 504, 464, 80, 344, 336, 336, 504, 16],
    [62, 13, 23, 0, 6, 472, 8, 136, 40, 376, 296, 336, 416, 224],
    [39, 16, 62, 6, 0, 160, 160, 152, 400, 432, 64, 296, 360, 368],
    [440, 400, 152, 472, 160, 0, 2, 56, 4, 28, 120, 224, 240, 272],
    [136, 432, 504, 8, 160, 2, 0, 32, 10, 39, 384, 136, 48, 280],
    [80, 320, 464, 136, 152, 56, 32, 0, 33, 13, 360, 48, 120, 384],
    [72, 136, 80, 40, 400, 4, 10, 33, 0, 9, 216, 360, 504, 304],
    [296, 224, 344, 376, 432, 28, 39, 13, 9, 0, 240, 200, 456, 272],
    [320, 360, 336, 296, 64, 120, 384, 360, 216, 240, 0, 29, 60, 48],
    [504, 112, 336, 336, 296, 224, 136, 48, 360, 200, 29, 0, 19, 52],
    [224, 96, 504, 416, 360, 240, 48, 120, 504, 456, 60, 19, 0, 3],
    [392, 16, 16, 224, 368, 272, 280, 384, 304, 272, 48, 52, 3, 0],
]
GOLDEN = [  # (k, seed, medoids, labels, silhouette)
    (2, 0, [13, 8], [1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], 0.446415690890107),
    (3, 0, [12, 8, 3], [2, 2, 2, 2, 2, 1, 2, 1, 1, 1, 0, 0, 0, 0], 0.6608778192922851),
    (4, 1, [8, 0, 13, 4], [1, 1, 2, 3, 3, 0, 0, 0, 0, 0, 2, 2, 2, 2], 0.5208952443851878),
    (5, 2, [8, 13, 4, 11, 7], [2, 1, 1, 2, 2, 0, 0, 4, 0, 0, 3, 3, 1, 1], 0.23937334330528137),
]


@pytest.mark.parametrize(("k", "seed", "medoids", "labels", "silhouette"), GOLDEN)
def test_kmedoids_reproduces_scikit_learn_extra(k, seed, medoids, labels, silhouette):
    dist = np.array(GOLDEN_D, dtype=np.float64) / 512
    fit = kmedoids_alternate(dist, k, seed=seed)
    assert fit.medoids.tolist() == medoids
    assert fit.labels.tolist() == labels
    assert silhouette_score_precomputed(dist, fit.labels) == pytest.approx(silhouette, abs=1e-9)


def _brute_force_inertia(dist: np.ndarray, k: int) -> float:
    return min(
        dist[list(medoids)].min(axis=0).sum()
        for medoids in itertools.combinations(range(len(dist)), k)
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_kmedoids_finds_the_brute_force_optimum_on_separated_groups(seed, k):
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.standard_normal((6, 6)))[0][:k]  # orthogonal group centres
    sizes = rng.integers(2, 5, size=k)
    emb = np.concatenate(
        [c + 0.08 * rng.standard_normal((s, 6)) for c, s in zip(directions, sizes)]
    )
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    dist = cosine_distances(emb)
    fit = kmedoids_alternate(dist, k, seed=seed)
    assert fit.inertia == pytest.approx(_brute_force_inertia(dist, k), abs=1e-12)
    groups = np.repeat(np.arange(k), sizes)
    # the found partition is the planted one (up to renaming)
    pairs = {(int(a), int(b)) for a, b in zip(groups, fit.labels)}
    assert len(pairs) == k and len(set(fit.labels.tolist())) == k


def test_kmedoids_checks_its_input():
    dist = np.zeros((3, 3))
    with pytest.raises(StarftError, match="k=4"):
        kmedoids_alternate(dist, 4)
    with pytest.raises(StarftError, match="square"):
        kmedoids_alternate(np.zeros((3, 2)), 2)
    with pytest.raises(StarftError, match="backend"):
        kmedoids_alternate(dist, 2, backend="pam")


def test_kmedoids_backend_needs_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "kmedoids", None)  # import fails as if not installed
    with pytest.raises(StarftError, match="pip install kmedoids"):
        kmedoids_alternate(np.array(GOLDEN_D) / 512, 3, backend="kmedoids")


def test_kmedoids_package_matches_numpy_without_ties():
    pytest.importorskip("kmedoids")
    rng = np.random.default_rng(0)
    for seed in range(5):
        emb = rng.standard_normal((40, 8))
        dist = cosine_distances(emb / np.linalg.norm(emb, axis=1, keepdims=True))
        for k in (2, 5, 8):
            ours = kmedoids_alternate(dist, k, seed=seed)
            fast = kmedoids_alternate(dist, k, seed=seed, backend="kmedoids")
            assert fast.medoids.tolist() == ours.medoids.tolist()
            assert fast.labels.tolist() == ours.labels.tolist()


def test_silhouette_hand_computed():
    x = np.array([0.0, 1.0, 4.0, 5.0, 6.0])
    dist = np.abs(x[:, None] - x[None, :])
    values = silhouette_samples_precomputed(dist, np.array([0, 0, 1, 1, 1]))
    # a: mean distance to its own cluster (without itself), b: to the nearest other cluster
    expected = [(5 - 1) / 5, (4 - 1) / 4, (3.5 - 1.5) / 3.5, (4.5 - 1) / 4.5, (5.5 - 1.5) / 5.5]
    assert values.tolist() == pytest.approx(expected, abs=1e-12)
    # a point alone in its cluster scores 0; labels need not be 0..K-1
    values = silhouette_samples_precomputed(dist, np.array([7, 7, 3, 3, 9]))
    assert values[4] == 0.0
    # x = 4 in {4, 5}: a = 1, b = min(mean(4, 3), 2) = 2 (the singleton {6} is nearest)
    assert values[2] == pytest.approx((2 - 1) / 2, abs=1e-12)
    assert silhouette_score_precomputed(dist, np.array([0, 0, 0, 0, 0])) is None
    assert silhouette_score_precomputed(dist, np.arange(5)) is None


def test_silhouette_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((30, 5))
    dist = cosine_distances(emb / np.linalg.norm(emb, axis=1, keepdims=True))
    labels = rng.integers(0, 4, size=30)
    expected = metrics.silhouette_score(dist, labels, metric="precomputed")
    assert silhouette_score_precomputed(dist, labels) == pytest.approx(expected, abs=1e-9)


def test_select_clustering_smallest_k_wins_ties_and_refits():
    dist = np.array(GOLDEN_D, dtype=np.float64) / 512
    result = select_clustering(dist, range(2, 6), seed=0)
    scores = {k: s for k, s in result.silhouettes.items() if s is not None}
    best = max(scores.values())
    assert result.k == min(k for k, s in scores.items() if s == best)
    assert result.silhouette == best
    refit = kmedoids_alternate(dist, result.k, seed=0)
    assert result.labels.tolist() == refit.labels.tolist()


def test_select_clustering_degenerate_cases():
    same = np.zeros((6, 6))  # every point identical: one non-empty cluster for any K
    result = select_clustering(same, range(2, 5))
    assert result.k is None and "degenerate" in result.message
    result = select_clustering(np.array(GOLDEN_D, dtype=np.float64)[:3, :3] / 512, range(4, 10))
    assert result.k is None and "3 regions" in result.message


def test_select_clustering_tie_goes_to_the_smallest_k(monkeypatch):
    import starft.discovery.clustering as clustering

    dist = np.array(GOLDEN_D, dtype=np.float64) / 512
    monkeypatch.setattr(clustering, "silhouette_score_precomputed", lambda d, labels: 0.5)
    assert select_clustering(dist, [5, 3, 4]).k == 3
    monkeypatch.setattr(clustering, "silhouette_score_precomputed", lambda d, labels: 0.0)
    result = select_clustering(dist, [3, 4])
    assert result.k is None and "<= 0" in result.message

"""Region rankings scored by ``starft discover-bench``: RaVL, Random, two image-level methods.

Every function returns region indices, the most suspect first. Image-level methods rank *images*;
to score them like RaVL every region of an image inherits its image's rank, and the regions of one
image are ordered at random (seeded), since an image-level method says nothing about which region
of the image is at fault. So with ``k x k`` regions per image an image-level method can put at most
one relevant region (the one showing the marker) in every ``k²`` positions.

- ``ravl``: the regions of every passing cluster, clusters by gap, regions by similarity to the
  medoid (:func:`starft.discovery.discover`); nothing when no cluster passes.
- ``random``: a seeded random permutation of all regions.
- ``domino``: Domino-style slices (Eyuboglu et al., 2022), simplified: K-medoids on the cosine
  distances of the image embeddings (K by silhouette over 2C..5C-1, as RaVL's step 1), slices
  ordered by their error rate (highest first, larger slice on ties), images inside a slice by
  similarity to its medoid. Domino's error-aware mixture model is not reproduced.
- ``distilling_failures``: Distilling-Failures-style (Jain et al., 2023): per true class, an
  L2-regularised, class-balanced logistic regression on the image embeddings predicting whether
  the model misclassifies the image; images ordered by the predicted failure probability (a
  class without both outcomes gives its images its observed error rate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from starft.discovery.clustering import default_k_range, select_clustering
from starft.discovery.discover import DiscoveryResult
from starft.discovery.kmedoids import cosine_distances, kmedoids_alternate
from starft.errors import StarftError

#: The rankings a bench scores; ``ravl`` is the method, the others its baselines.
RANKING_NAMES = ("ravl", "random", "domino", "distilling_failures")
_RIDGE = 1.0  # L2 penalty of the failure classifier (embeddings are unit vectors)
_NEWTON_STEPS = 25


def ravl_ranking(result: DiscoveryResult) -> np.ndarray:
    """Regions of the passing clusters in discovery's order (empty when none passes)."""
    if not result.clusters:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.asarray(c.regions, dtype=np.int64) for c in result.clusters])


def random_ranking(num_regions: int, seed: int = 0) -> np.ndarray:
    """A seeded random order of all regions."""
    return np.random.default_rng(seed).permutation(int(num_regions)).astype(np.int64)


def regions_by_image_rank(image_order: Any, region_image: Any, seed: int = 0) -> np.ndarray:
    """All regions, ordered by their image's position in ``image_order`` (every image once), the
    regions of one image in a seeded random order."""
    region_image = np.asarray(region_image, dtype=np.int64)
    image_order = np.asarray(image_order, dtype=np.int64)
    num_images = int(region_image.max()) + 1 if region_image.size else 0
    if sorted(image_order.tolist()) != list(range(max(num_images, len(image_order)))):
        raise StarftError(
            f"image ranking: must hold every image 0..{num_images - 1} exactly once, "
            f"got {len(image_order)} entries"
        )
    position = np.empty(len(image_order), dtype=np.int64)
    position[image_order] = np.arange(len(image_order))
    tiebreak = np.random.default_rng(seed).random(len(region_image))
    return np.lexsort((tiebreak, position[region_image])).astype(np.int64)


def domino_image_order(
    image_embeddings: Any, errors: Any, num_classes: int, seed: int = 0
) -> np.ndarray:
    """Images ordered Domino-style: slices by error rate, members by similarity to the medoid."""
    emb = _unit(image_embeddings)
    errors = np.asarray(errors, dtype=bool)
    dist = cosine_distances(emb)
    clustering = select_clustering(dist, default_k_range(num_classes), seed=seed)
    if clustering.k is None:  # no cluster structure: fall back to the sweep's smallest K
        k = max(1, min(2 * num_classes, len(emb) - 1))
        fit = kmedoids_alternate(dist, k, seed=seed)
        labels, medoids = fit.labels, fit.medoids
    else:
        labels, medoids = clustering.labels, clustering.medoids
    slices = []
    for cluster, medoid in enumerate(medoids):
        members = np.flatnonzero(labels == cluster)
        if members.size == 0:
            continue
        similarity = emb[members] @ emb[medoid]
        ordered = members[np.argsort(-similarity, kind="stable")]
        slices.append((-errors[members].mean(), -members.size, cluster, ordered))
    slices.sort(key=lambda s: s[:3])
    return np.concatenate([s[3] for s in slices]).astype(np.int64)


def _logistic_failure_probability(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Class-balanced, L2-regularised logistic regression by Newton steps; in-sample
    probabilities of ``target`` (features get a bias column)."""
    x = np.hstack([features, np.ones((len(features), 1))])
    positives = max(int(target.sum()), 1)
    negatives = max(len(target) - int(target.sum()), 1)
    weight = np.where(target, len(target) / (2 * positives), len(target) / (2 * negatives))
    penalty = np.full(x.shape[1], _RIDGE)
    penalty[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(x.shape[1])
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (weight * (p - target)) + penalty * w
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))


def distilling_failures_image_order(
    image_embeddings: Any, labels: Any, errors: Any, seed: int = 0
) -> np.ndarray:
    """Images ordered by a per-class failure classifier's probability (highest first)."""
    emb = _unit(image_embeddings)
    labels = np.asarray(labels, dtype=np.int64)
    errors = np.asarray(errors, dtype=bool)
    score = np.zeros(len(labels))
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        target = errors[rows].astype(np.float64)
        if 0 < target.sum() < len(rows):
            score[rows] = _logistic_failure_probability(emb[rows], target)
        else:
            score[rows] = target.mean() if len(rows) else 0.0
    tiebreak = np.random.default_rng(seed).random(len(labels))
    return np.lexsort((tiebreak, -score)).astype(np.int64)


def _unit(embeddings: Any) -> np.ndarray:
    if hasattr(embeddings, "detach"):
        embeddings = embeddings.detach().cpu().numpy()
    emb = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1.0)


def rank_regions(
    name: str,
    *,
    result: DiscoveryResult,
    region_image: np.ndarray,
    image_embeddings: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    num_classes: int,
    seed: int = 0,
) -> np.ndarray:
    """The region ranking of method ``name`` (one of :data:`RANKING_NAMES`)."""
    errors = labels != predictions
    if name == "ravl":
        return ravl_ranking(result)
    if name == "random":
        return random_ranking(len(region_image), seed)
    if name == "domino":
        order = domino_image_order(image_embeddings, errors, num_classes, seed)
    elif name == "distilling_failures":
        order = distilling_failures_image_order(image_embeddings, labels, errors, seed)
    else:
        raise StarftError(f"unknown ranking '{name}' (known: {', '.join(RANKING_NAMES)})")
    return regions_by_image_rank(order, region_image, seed)

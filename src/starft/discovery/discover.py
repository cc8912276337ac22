"""RaVL discovery from precomputed inputs: cluster regions, score clusters, rank what passes.

``discover`` takes what the release takes (region embeddings, the owning image of each region,
image labels, zero-shot probabilities of images and regions), so any model's regions can be fed in.
Unlike the release it returns *every* cluster that passes, ranked, and says plainly when none does
instead of crashing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from starft.discovery.clustering import default_k_range, select_clustering
from starft.discovery.kmedoids import cosine_distances
from starft.discovery.scores import (
    INFLUENCE_THRESHOLD,
    ClassGap,
    cluster_influence,
    cluster_performance_gap,
    is_candidate,
    total_gap,
)
from starft.errors import StarftError


@dataclass(frozen=True)
class ClusterScore:
    """Step-2 scores of one cluster (every cluster gets one, passing or not)."""

    cluster: int
    medoid: int  # region index of the medoid
    size: int  # regions in the cluster
    gap: float  # G_c = Σ_y |G_c^y|
    gaps: dict[int, ClassGap]
    candidate: bool  # some G_c^y > 0 and another < 0
    influence: float  # H_c (-inf when no error was attributable)

    @property
    def passes(self) -> bool:
        return self.candidate and self.influence >= INFLUENCE_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "medoid": self.medoid,
            "size": self.size,
            "gap": self.gap,
            "candidate": self.candidate,
            "influence": None if np.isinf(self.influence) else self.influence,
            "gaps": [vars(row) for row in self.gaps.values()],
        }


@dataclass(frozen=True)
class DiscoveredCluster:
    """A cluster that passed: its scores and its regions ranked by similarity to the medoid."""

    score: ClusterScore
    regions: np.ndarray  # region indices, most similar to the medoid first
    images: np.ndarray  # images with at least one region in the cluster (ascending)

    @property
    def cluster(self) -> int:
        return self.score.cluster

    @property
    def medoid(self) -> int:
        return self.score.medoid

    @property
    def gap(self) -> float:
        return self.score.gap

    @property
    def gaps(self) -> dict[int, ClassGap]:
        return self.score.gaps

    @property
    def influence(self) -> float:
        return self.score.influence

    def to_dict(self) -> dict[str, Any]:
        out = self.score.to_dict()
        out["regions"] = self.regions.tolist()
        out["images"] = self.images.tolist()
        return out


@dataclass(frozen=True)
class DiscoveryResult:
    """``clusters``: every passing cluster, largest gap first (empty, with ``message``, if none).

    ``scores`` holds every cluster's step-2 scores; ``labels``/``medoids`` the chosen clustering
    (``None`` when clustering was degenerate). ``scoring``/``scale`` record how the zero-shot
    probabilities were made when a wrapper computed them (``None`` for user-given inputs).
    """

    clusters: list[DiscoveredCluster]
    message: str
    k: int | None
    silhouette: float | None
    silhouettes: dict[int, float | None]
    labels: np.ndarray | None
    medoids: np.ndarray | None
    scores: list[ClusterScore] = field(default_factory=list)
    scoring: str | None = None
    scale: float | None = None

    @property
    def found(self) -> bool:
        return bool(self.clusters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "k": self.k,
            "silhouette": self.silhouette,
            "silhouettes": {str(k): v for k, v in self.silhouettes.items()},
            "scoring": self.scoring,
            "scale": self.scale,
            "clusters": [c.to_dict() for c in self.clusters],
            "scores": [s.to_dict() for s in self.scores],
        }


def _array(value: Any, name: str, ndim: int, dtype: type) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensors without importing torch here
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != ndim:
        raise StarftError(
            f"discover: {name} must have {ndim} dimension(s), got shape {array.shape}"
        )
    if dtype is int:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise StarftError(f"discover: {name} must hold integers, got dtype {array.dtype}")
        return array.astype(np.int64)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise StarftError(f"discover: {name} holds NaN or infinite values")
    return array


def _check_inputs(
    region_embeddings: Any,
    region_image: Any,
    image_labels: Any,
    image_probs: Any,
    region_probs: Any,
) -> tuple[np.ndarray, ...]:
    emb = _array(region_embeddings, "region_embeddings", 2, float)
    owner = _array(region_image, "region_image", 1, int)
    labels = _array(image_labels, "image_labels", 1, int)
    img_p = _array(image_probs, "image_probs", 2, float)
    reg_p = _array(region_probs, "region_probs", 2, float)
    n_regions, n_images, n_classes = emb.shape[0], labels.shape[0], img_p.shape[1]
    if n_regions == 0 or n_images == 0:
        raise StarftError("discover: there are no regions or no images")
    for name, size, expected, what in (
        ("region_image", owner.shape[0], n_regions, "regions"),
        ("image_probs", img_p.shape[0], n_images, "images"),
        ("region_probs", reg_p.shape[0], n_regions, "regions"),
    ):
        if size != expected:
            raise StarftError(f"discover: {name} has {size} rows for {expected} {what}")
    if reg_p.shape[1] != n_classes:
        raise StarftError(
            f"discover: region_probs has {reg_p.shape[1]} classes, image_probs {n_classes}"
        )
    if owner.min() < 0 or owner.max() >= n_images:
        bad = owner[(owner < 0) | (owner >= n_images)][0]
        raise StarftError(f"discover: region_image value {bad} is outside [0, {n_images})")
    if labels.min() < 0 or labels.max() >= n_classes:
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise StarftError(f"discover: image label {bad} is outside [0, {n_classes})")
    norms = np.linalg.norm(emb, axis=1)
    if (norms == 0).any():
        raise StarftError(f"discover: region embedding {int(np.argmin(norms))} is all zeros")
    return emb / norms[:, None], owner, labels, img_p, reg_p


def discover(
    region_embeddings: Any,
    region_image: Any,
    image_labels: Any,
    image_probs: Any,
    region_probs: Any,
    *,
    k_range: Iterable[int] | None = None,
    seed: int = 0,
    backend: str = "numpy",
) -> DiscoveryResult:
    """Run RaVL discovery on precomputed inputs (numpy arrays or torch tensors).

    Args:
        region_embeddings: ``[R, D]`` region embeddings (L2-normalised here).
        region_image: ``[R]`` index of the image owning each region.
        image_labels: ``[I]`` true labels.
        image_probs: ``[I, C]`` zero-shot probabilities of the images (prediction = argmax).
        region_probs: ``[R, C]`` zero-shot probabilities of the regions.
        k_range: numbers of clusters to try; default ``2C .. 5C - 1``.
        seed: k-medoids++ seed (0 reproduces the release).
        backend: ``numpy`` (exact release semantics) or ``kmedoids`` (optional package).
    """
    emb, owner, labels, img_p, reg_p = _check_inputs(
        region_embeddings, region_image, image_labels, image_probs, region_probs
    )
    ks = list(default_k_range(img_p.shape[1]) if k_range is None else k_range)
    if not ks:
        raise StarftError("discover: k_range is empty")
    dist = cosine_distances(emb)
    clustering = select_clustering(dist, ks, seed=seed, backend=backend)
    common = {
        "k": clustering.k,
        "silhouette": clustering.silhouette,
        "silhouettes": clustering.silhouettes,
        "labels": clustering.labels,
        "medoids": clustering.medoids,
    }
    if clustering.k is None:
        return DiscoveryResult(clusters=[], message=clustering.message, **common)
    preds = img_p.argmax(axis=1)
    scores, found = [], []
    for cluster, medoid in enumerate(clustering.medoids):
        members = clustering.labels == cluster
        in_images = np.zeros(len(labels), dtype=bool)
        in_images[owner[members]] = True
        gaps = cluster_performance_gap(in_images, labels, preds)
        influence = cluster_influence(members, gaps, owner, labels, img_p, reg_p)
        score = ClusterScore(
            cluster=cluster,
            medoid=int(medoid),
            size=int(members.sum()),
            gap=total_gap(gaps),
            gaps=gaps,
            candidate=is_candidate(gaps),
            influence=influence,
        )
        scores.append(score)
        if score.passes and score.size:
            regions = np.flatnonzero(members)
            similarity = emb[regions] @ emb[medoid]
            ranked = regions[np.argsort(-similarity, kind="stable")]
            found.append(DiscoveredCluster(score, ranked, np.flatnonzero(in_images)))
    found.sort(key=lambda c: -c.gap)  # stable: equal gaps keep cluster order
    return DiscoveryResult(
        clusters=found, message=_message(scores, found, clustering.k), scores=scores, **common
    )


def _message(scores: list[ClusterScore], found: list[DiscoveredCluster], k: int) -> str:
    if found:
        return (
            f"{len(found)} of {k} clusters pass (candidate and influence >= {INFLUENCE_THRESHOLD})"
        )
    candidates = sum(s.candidate for s in scores)
    if candidates == 0:
        return (
            f"no spurious cluster found: none of the {k} clusters raises accuracy for one label "
            "and lowers it for another"
        )
    return (
        f"no spurious cluster found: {candidates} of {k} clusters raise accuracy for one label and "
        f"lower it for another, but none has influence >= {INFLUENCE_THRESHOLD}"
    )

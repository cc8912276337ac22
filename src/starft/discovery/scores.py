"""RaVL's per-cluster scores (step 2): the cluster performance gap and the cluster influence.

Both follow the released code (``ravl/discover_utils.py``) exactly, including who is skipped and
who counts in the influence denominator; see ``docs/discovery.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INFLUENCE_THRESHOLD = 0.25


@dataclass(frozen=True)
class ClassGap:
    """One row of a cluster's gap table: accuracy of label-y images with / without the cluster."""

    label: int
    n_in: int
    n_out: int
    acc_in: float
    acc_out: float
    gap: float  # 2·min(n_in, n_out)/(n_in + n_out) · (acc_in − acc_out)


def cluster_performance_gap(
    in_cluster: np.ndarray, image_labels: np.ndarray, image_preds: np.ndarray
) -> dict[int, ClassGap]:
    """Per-label weighted accuracy gap ``G_c^y`` of one cluster.

    ``in_cluster[i]`` is True when image i has at least one region in the cluster. For each label
    y among the in-images, the out-images are the images of label y without a region in the
    cluster (images without any region included); y is skipped when either side is empty.
    """
    in_cluster = np.asarray(in_cluster, dtype=bool)
    labels, preds = np.asarray(image_labels), np.asarray(image_preds)
    gaps: dict[int, ClassGap] = {}
    for label in sorted({int(v) for v in labels[in_cluster]}):
        of_label = labels == label
        inside, outside = of_label & in_cluster, of_label & ~in_cluster
        n_in, n_out = int(inside.sum()), int(outside.sum())
        if n_in == 0 or n_out == 0:
            continue
        acc_in = float((preds[inside] == label).mean())
        acc_out = float((preds[outside] == label).mean())
        weight = 2.0 * min(n_in, n_out) / (n_in + n_out)
        gaps[label] = ClassGap(label, n_in, n_out, acc_in, acc_out, weight * (acc_in - acc_out))
    return gaps


def total_gap(gaps: dict[int, ClassGap]) -> float:
    """``G_c = Σ_y |G_c^y|``, the key clusters are ranked by."""
    return float(sum(abs(row.gap) for row in gaps.values()))


def is_candidate(gaps: dict[int, ClassGap]) -> bool:
    """The spurious pattern: the cluster helps one label (G > 0) and hurts another (G < 0)."""
    values = [row.gap for row in gaps.values()]
    return any(v > 0 for v in values) and any(v < 0 for v in values)


def cluster_influence(
    in_cluster_regions: np.ndarray,
    gaps: dict[int, ClassGap],
    region_image: np.ndarray,
    image_labels: np.ndarray,
    image_probs: np.ndarray,
    region_probs: np.ndarray,
) -> float:
    """``H_c``: how often the cluster holds the region that drives the errors it is blamed for.

    Visits only images with a region in the cluster and more than one region. An image's most
    predictive region is the argmax over its regions (first on ties, in region order) of the
    region's probability for the image's predicted class (argmax of ``image_probs``). For each
    misclassified image whose label y has ``G_c^y < 0`` it records whether that region is in the
    cluster; ``H_c`` is the largest per-label share, ``-inf`` when nothing was recorded.
    """
    in_cluster_regions = np.asarray(in_cluster_regions, dtype=bool)
    region_image = np.asarray(region_image)
    labels = np.asarray(image_labels)
    preds = np.asarray(image_probs).argmax(axis=1)
    region_probs = np.asarray(region_probs)
    order = np.argsort(region_image, kind="stable")  # regions of each image, in region order
    starts = np.searchsorted(region_image[order], np.arange(len(labels) + 1))
    records: dict[int, list[bool]] = {}
    for image in np.unique(region_image[in_cluster_regions]):
        regions = order[starts[image] : starts[image + 1]]
        if len(regions) == 1:
            continue
        label = int(labels[image])
        if preds[image] == label or label not in gaps or not gaps[label].gap < 0:
            continue
        best = regions[int(np.argmax(region_probs[regions, preds[image]]))]
        records.setdefault(label, []).append(bool(in_cluster_regions[best]))
    if not records:
        return float("-inf")
    return float(max(np.mean(values) for values in records.values()))

"""RaVL stage 1: discover image regions a vision-language model wrongly relies on.

Each step is usable alone: regions (:mod:`.regions`), K-medoids and silhouette on cosine distances
(:mod:`.kmedoids`, :mod:`.silhouette`, :mod:`.clustering`), the per-cluster gap and influence
(:mod:`.scores`), :func:`discover` on precomputed inputs, and the model/dataset wrapper
(:mod:`.inputs`). See ``docs/discovery.md``.
"""

from starft.discovery.clustering import Clustering, default_k_range, select_clustering
from starft.discovery.discover import (
    ClusterScore,
    DiscoveredCluster,
    DiscoveryResult,
    discover,
)
from starft.discovery.inputs import (
    DiscoveryInputs,
    compute_discovery_inputs,
    discover_from_inputs,
    encode_regions,
    grid_pixel_boxes,
    parse_regions,
)
from starft.discovery.kmedoids import KMedoidsFit, cosine_distances, kmedoids_alternate
from starft.discovery.regions import grid_boxes, pixel_bounds
from starft.discovery.scores import (
    INFLUENCE_THRESHOLD,
    ClassGap,
    cluster_influence,
    cluster_performance_gap,
    is_candidate,
    total_gap,
)
from starft.discovery.silhouette import silhouette_samples_precomputed, silhouette_score_precomputed
from starft.discovery.zeroshot import RAVL_TEMPERATURE, ZeroShotProbs, zero_shot_probs

__all__ = [
    "INFLUENCE_THRESHOLD",
    "RAVL_TEMPERATURE",
    "ClassGap",
    "ClusterScore",
    "Clustering",
    "DiscoveredCluster",
    "DiscoveryInputs",
    "DiscoveryResult",
    "KMedoidsFit",
    "ZeroShotProbs",
    "cluster_influence",
    "cluster_performance_gap",
    "compute_discovery_inputs",
    "cosine_distances",
    "default_k_range",
    "discover",
    "discover_from_inputs",
    "encode_regions",
    "grid_boxes",
    "grid_pixel_boxes",
    "is_candidate",
    "kmedoids_alternate",
    "parse_regions",
    "pixel_bounds",
    "select_clustering",
    "silhouette_samples_precomputed",
    "silhouette_score_precomputed",
    "total_gap",
    "zero_shot_probs",
]

"""Relevance maps (gradient-weighted attention rollout, Grad-CAM) and their alignment with masks.

See docs/explain.md. Everything here works on any backend through the model protocol's
``image_intermediates``; the maps are differentiable, so losses can use them.
"""

from starft.explain.alignment import (
    ALIGNMENT_METRICS,
    alignment_metrics,
    average_precision,
    masks_from_parts,
)
from starft.explain.maps import grad_cam, rollout, tokens_to_map, upsample_minmax
from starft.explain.relevance import (
    GRADCAM_MIN_GRID,
    RELEVANCE_METHODS,
    Explanation,
    RelevancePass,
    explain,
    forward_for_relevance,
    relevance_from_scores,
    text_head,
    zero_shot_logits,
)

__all__ = [
    "ALIGNMENT_METRICS",
    "GRADCAM_MIN_GRID",
    "RELEVANCE_METHODS",
    "Explanation",
    "RelevancePass",
    "alignment_metrics",
    "average_precision",
    "explain",
    "forward_for_relevance",
    "grad_cam",
    "masks_from_parts",
    "relevance_from_scores",
    "rollout",
    "text_head",
    "tokens_to_map",
    "upsample_minmax",
    "zero_shot_logits",
]

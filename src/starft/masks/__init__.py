"""Concept masks from an open-vocabulary detector and a promptable segmenter (``starft masks``).

See docs/explain.md ("Concept masks"). Models are loaded from local Hugging Face folders only;
``transformers`` is imported when one is loaded.
"""

from starft.masks.build import (
    BuildReport,
    GroundingOptions,
    ImageResult,
    build_masks,
    combine_masks,
    ground_image,
    mask_png,
)
from starft.masks.grounders import (
    DETECTORS,
    SEGMENTERS,
    DetectionThresholds,
    Detector,
    Segmenter,
    clip_boxes,
    load_detector,
    load_segmenter,
)

__all__ = [
    "DETECTORS",
    "SEGMENTERS",
    "BuildReport",
    "DetectionThresholds",
    "Detector",
    "GroundingOptions",
    "ImageResult",
    "Segmenter",
    "build_masks",
    "clip_boxes",
    "combine_masks",
    "ground_image",
    "load_detector",
    "load_segmenter",
    "mask_png",
]

"""Models behind one protocol (:class:`ClipModel`), their backends, factory and zero-shot heads."""

from starft.models.factory import (
    MODELS,
    create_model,
    is_saved_model,
    list_backends,
    list_models,
    save_model,
)
from starft.models.protocol import ClipModel, ImageIntermediates, TokenLayout
from starft.models.zeroshot import ZeroShotClassifier, build_zeroshot_head

__all__ = [
    "MODELS",
    "ClipModel",
    "ImageIntermediates",
    "TokenLayout",
    "ZeroShotClassifier",
    "build_zeroshot_head",
    "create_model",
    "is_saved_model",
    "list_backends",
    "list_models",
    "save_model",
]

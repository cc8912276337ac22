"""Models behind one protocol (:class:`ClipModel`), their factory and zero-shot heads."""

from starft.models.clip_model import ClipModel
from starft.models.factory import MODELS, create_model, list_models, save_model
from starft.models.zeroshot import ZeroShotClassifier, build_zeroshot_head

__all__ = [
    "MODELS",
    "ClipModel",
    "ZeroShotClassifier",
    "build_zeroshot_head",
    "create_model",
    "list_models",
    "save_model",
]

"""Zero-shot probabilities of images and regions: ``softmax(scale · cos(feature, class text))``.

``scoring="model"`` uses the model's own learned scale ``exp(logit_scale)``; ``scoring="ravl"``
uses RaVL's fixed temperature 0.07 (``cos / 0.07``, as its release scores). The result records
which, so a report can say how its probabilities were made.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.errors import StarftError

RAVL_TEMPERATURE = 0.07
SCORINGS = ("model", "ravl")


@dataclass(frozen=True)
class ZeroShotProbs:
    image_probs: Tensor  # [I, C]
    region_probs: Tensor  # [R, C]
    scoring: str
    scale: float


def resolve_scale(scoring: str, model_scale: float | None) -> float:
    """The multiplier for ``scoring``: the model's scale, or ``1 / 0.07`` for RaVL's fixed one."""
    if scoring not in SCORINGS:
        raise StarftError(
            f"zero-shot scoring must be one of {', '.join(SCORINGS)}, got '{scoring}'"
        )
    if scoring == "ravl":
        return 1.0 / RAVL_TEMPERATURE
    if model_scale is None or not model_scale > 0:
        raise StarftError(f"scoring 'model' needs the model's positive scale, got {model_scale!r}")
    return float(model_scale)


def zero_shot_probs(
    image_embeddings: Tensor,
    region_embeddings: Tensor,
    class_embeddings: Tensor,
    *,
    scoring: str = "model",
    model_scale: float | None = None,
) -> ZeroShotProbs:
    """Softmax over classes of ``scale · cos`` for images ``[I, D]`` and regions ``[R, D]``.

    ``class_embeddings`` is the ``[C, D]`` zero-shot head; all inputs are L2-normalised here.
    """
    scale = resolve_scale(scoring, model_scale)
    head = F.normalize(class_embeddings.float(), dim=-1)

    def probs(features: Tensor) -> Tensor:
        return torch.softmax(scale * F.normalize(features.float(), dim=-1) @ head.t(), dim=-1)

    return ZeroShotProbs(probs(image_embeddings), probs(region_embeddings), scoring, scale)

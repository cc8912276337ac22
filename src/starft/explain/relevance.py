"""Relevance maps of any backend through the model protocol, from ONE forward pass.

:func:`forward_for_relevance` runs ``image_intermediates`` once (attention probabilities for the
rollout, or every stage's feature map for Grad-CAM); the caller computes the scores it explains
from ``pooled`` (and reuses those logits, e.g. for a classification loss), and
:func:`relevance_from_scores` turns the scores into maps. :func:`explain` does both for a CLIP
zero-shot head: the explained score of image ``i`` for class ``c`` is its zero-shot logit
``s·cos(f(x_i), t_c)``.

Methods:

* ``rollout``: gradient-weighted attention rollout (ViTs; :func:`starft.explain.maps.rollout`).
* ``gradcam``: Grad-CAM on a stage's feature map (CNNs; ViT patch tokens as a grid work too).
  Without a stage, the last stage whose map is at least ``GRADCAM_MIN_GRID`` on each side (an
  RN50's 7x7 ``layer4`` at 224 px; ``layer2`` of the 64 px sandbox ResNet, whose ``layer4`` is 2x2).
* ``auto``: ``rollout`` for transformer towers, ``gradcam`` for CNN towers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.errors import StarftError
from starft.explain.maps import grad_cam, rollout, tokens_to_map, upsample_minmax
from starft.models.protocol import ClipModel, ImageIntermediates

RELEVANCE_METHODS = ("auto", "rollout", "gradcam")
#: Grad-CAM's default stage: the last one at least this many cells on each side.
GRADCAM_MIN_GRID = 7


@dataclass
class RelevancePass:
    """One forward pass prepared for relevance: the intermediates and what to differentiate."""

    intermediates: ImageIntermediates
    method: str
    stage: int | None
    size: tuple[int, int]

    @property
    def pooled(self) -> Tensor:
        return self.intermediates.pooled


@dataclass
class Explanation:
    """Maps ``[B, H, W]`` in [0, 1], the explained scores ``[B]``, the targets ``[B]`` and the
    zero-shot logits ``[B, C]`` of the same forward pass."""

    maps: Tensor
    scores: Tensor
    targets: Tensor
    logits: Tensor


def forward_for_relevance(
    model: ClipModel, images: Tensor, method: str = "auto", stage: int | None = None
) -> RelevancePass:
    """Run the image tower once, keeping what ``method`` differentiates (in the graph).

    ``auto`` asks for attention and every stage in the same pass and decides from what the tower
    returned (patch tokens: rollout; feature maps: Grad-CAM), so no probe pass runs.
    """
    if method not in RELEVANCE_METHODS:
        raise StarftError(f"relevance method must be one of {RELEVANCE_METHODS}, got '{method}'")
    size = (int(images.shape[-2]), int(images.shape[-1]))
    stages = list(range(model.num_stages())) if stage is None else [stage]
    with torch.enable_grad():
        out = model.image_intermediates(
            images, stages=stages, attention=method in ("auto", "rollout")
        )
    if method == "auto":
        method = "rollout" if out.kind == "tokens" else "gradcam"
    if method == "rollout":
        if out.kind != "tokens" or not out.attentions:
            raise StarftError(
                f"model '{model.name}' has a CNN image tower: use relevance method gradcam"
            )
        return RelevancePass(out, method, None, size)
    chosen = _gradcam_stage(out) if stage is None else model.stage_indices([stage])[0]
    return RelevancePass(out, method, chosen, size)


def _gradcam_stage(out: ImageIntermediates) -> int:
    stages = sorted(out.features)
    for index in reversed(stages):
        feature = out.features[index]
        side = min(feature.shape[-2:]) if out.kind == "map" else min(out.grid)
        if side >= GRADCAM_MIN_GRID:
            return index
    return stages[0]  # every map is small: the largest one


def relevance_from_scores(
    relevance_pass: RelevancePass, scores: Tensor, create_graph: bool = False
) -> Tensor:
    """Maps ``[B, H, W]`` (upsampled to the input size, per-image min-max) explaining ``scores``.

    ``scores`` ``[B]`` must come from ``relevance_pass.pooled``. Samples are independent, so the
    gradient of their sum gives every image its own map in one backward pass. ``create_graph``
    makes the gradient factor itself differentiable (second order; the releases keep it constant).
    """
    out = relevance_pass.intermediates
    total = scores.sum()
    if relevance_pass.method == "rollout":
        attentions = list(out.attentions or [])
        grads = torch.autograd.grad(total, attentions, retain_graph=True, create_graph=create_graph)
        patch = rollout(attentions, grads, out.num_prefix_tokens)
        grid = patch.view(patch.shape[0], *out.grid)
    else:
        feature = out.features[int(relevance_pass.stage)]  # type: ignore[arg-type]
        if out.kind == "tokens":
            feature = tokens_to_map(feature, out.grid)
        (grad,) = torch.autograd.grad(
            total, [feature], retain_graph=True, create_graph=create_graph
        )
        grid = grad_cam(feature, grad)
    return upsample_minmax(grid, relevance_pass.size)


def zero_shot_logits(model: ClipModel, pooled: Tensor, text_features: Tensor) -> Tensor:
    """``s·cos(f(x), t)``: ``[B, C]`` for normalised ``text_features`` ``[C, D]``."""
    return model.scale() * F.normalize(pooled.float(), dim=-1) @ text_features.float().t()


def explain(
    model: ClipModel,
    images: Tensor,
    text_features: Tensor,
    targets: Tensor | None = None,
    *,
    method: str = "auto",
    stage: int | None = None,
    create_graph: bool = False,
) -> Explanation:
    """Relevance of each image for a class of the zero-shot head ``text_features`` ``[C, D]``.

    ``targets``: class index per image (e.g. the true labels); None explains the prediction.
    A free text is a one-row head with ``targets`` None (see :func:`text_head`).
    """
    relevance_pass = forward_for_relevance(model, images, method, stage)
    with torch.enable_grad():
        logits = zero_shot_logits(model, relevance_pass.pooled, text_features)
        if targets is None:
            targets = logits.detach().argmax(dim=1)
        targets = targets.to(logits.device).long()
        scores = logits.gather(1, targets.view(-1, 1)).squeeze(1)
        maps = relevance_from_scores(relevance_pass, scores, create_graph)
    return Explanation(maps, scores, targets, logits)


def text_head(model: ClipModel, texts: Sequence[str]) -> Tensor:
    """Normalised embeddings ``[len(texts), D]`` of free texts, as a zero-shot head."""
    device = next(model.parameters()).device
    with torch.no_grad():
        tokens = model.tokenize(list(texts)).to(device)
        return model.encode_text(tokens, normalize=True).float()

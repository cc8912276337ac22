"""RobustViT and CFT: fine-tuning that aligns relevance maps with masks (docs/explain.md).

Both releases compute Chefer's gradient-weighted attention rollout of the ViT for the true label,
min-max it to [0, 1] at the image size, and train

* RobustViT: ``0.8·[2·MSE(R⊙(1−M), 0) + 0.3·MSE(R⊙M, M)] + 0.2·CE(z/T, argmax z)``;
* CFT:       ``0.8·[1.2·BCE(R⊙(1−M), 0) + 0.5·BCE(R⊙M, M)] + 0.2·CE(z/T, argmax z)``.

For a CLIP model the classifier is its zero-shot head and the explained score the zero-shot logit
``s·cos(f(x), t_y)``. ``base=none`` (the release): the text tower and the logit scale stay fixed
(the confidence term could otherwise be lowered by growing ``s``), the image tower trains, and the
head is built once from the frozen text tower. ``base=flyp``: FLYP's contrastive loss plus
``regularizer_weight·alignment``, the explained score being each image's logit with its own
class caption, so no extra text is encoded.

Speed: the image tower runs once per step; the relevance (one ``autograd.grad`` for every block)
and the confidence / contrastive terms all come from that pass (the releases run the model twice).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.errors import StarftError
from starft.explain.alignment import masks_from_parts
from starft.explain.relevance import (
    forward_for_relevance,
    relevance_from_scores,
    zero_shot_logits,
)
from starft.losses.relevance import RelevanceAlignmentLoss
from starft.method_configs import CFTConfig, MethodConfig, RobustViTConfig
from starft.methods.base import StepInfo, Task
from starft.methods.flyp import FLYP
from starft.models import ClipModel, build_zeroshot_head


class RobustViT(FLYP):
    """Relevance alignment with foreground masks, MSE terms (Chefer et al., 2022)."""

    Config = RobustViTConfig
    data_keys: ClassVar[tuple[str, ...]] = ("image", "label", "mask")
    loss_kind: ClassVar[str] = "robustvit"

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: RobustViTConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        self.alignment = RelevanceAlignmentLoss(
            self.loss_kind, config.lambda_background, config.lambda_foreground, config.temperature
        )
        if config.base == "flyp":
            if config.target != "label":
                raise StarftError(
                    "method.target=pred needs base=none: with base=flyp the explained score is "
                    "each image's logit with its own class caption"
                )
            return
        for _, param in model.text_tower_named_parameters():
            param.requires_grad_(False)
        model.logit_scale.requires_grad_(False)
        head = build_zeroshot_head(model, task.classnames, task.eval_templates)
        self.register_buffer("head", head, persistent=False)

    def batch_mask(self, batch: dict[str, Any]) -> Tensor:
        """The ``[B, H, W]`` float mask the relevance is aligned with, checked on the images."""
        images = batch["image"]
        if "mask" not in batch:
            raise StarftError(
                f"method {self.loss_kind} needs masks: the batch has no 'mask' "
                f"(keys: {', '.join(sorted(batch))})"
            )
        mask = batch["mask"]
        expected = (images.shape[0], *images.shape[-2:])
        if not isinstance(mask, Tensor) or tuple(mask.shape) != expected:
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise StarftError(
                f"method {self.loss_kind}: batch 'mask' must be [B, H, W] = {expected} like the "
                f"images, got {shape}"
            )
        return mask.float()

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        # The relevance is a gradient: it needs autograd even where the caller disabled it.
        with torch.enable_grad():
            return self._forward(batch, step)

    def _forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        config = self.config
        images, labels = batch["image"], batch["label"]
        mask = self.batch_mask(batch)
        relevance_pass = forward_for_relevance(self.model, images, config.relevance, config.stage)
        if config.base == "flyp":
            return self._flyp_forward(batch, step, relevance_pass, mask)
        logits = zero_shot_logits(self.model, relevance_pass.pooled, self.head)
        targets = labels if config.target == "label" else logits.detach().argmax(dim=1)
        scores = logits.gather(1, targets.view(-1, 1)).squeeze(1)
        relevance = relevance_from_scores(relevance_pass, scores, config.create_graph)
        terms = self.alignment(relevance, mask, logits)
        loss = config.lambda_align * terms["alignment"] + config.lambda_acc * terms["confidence"]
        return {"loss": loss, **terms}

    def _flyp_forward(
        self, batch: dict[str, Any], step: StepInfo, relevance_pass: Any, mask: Tensor
    ) -> dict[str, Tensor]:
        captions = self.class_captions(batch, step)
        unique = list(dict.fromkeys(captions))
        tokens = self.model.tokenize(unique).to(mask.device, non_blocking=True)
        text = self.model.encode_text(tokens, normalize=True)
        index = torch.tensor([unique.index(c) for c in captions], device=mask.device)
        text_features = text[index]
        image_features = F.normalize(relevance_pass.pooled, dim=-1)
        terms = self.clip_loss(image_features, text_features, self.model.scale())
        scores = self.model.scale() * (image_features * text_features).sum(dim=1)
        relevance = relevance_from_scores(relevance_pass, scores, self.config.create_graph)
        terms.update(self.alignment(relevance, mask))
        loss = terms["contrastive"] + self.config.regularizer_weight * terms["alignment"]
        return {"loss": loss, **terms}


class CFT(RobustViT):
    """Relevance alignment with (weighted) concept masks, BCE terms (CFT)."""

    Config = CFTConfig
    loss_kind: ClassVar[str] = "cft"

    @classmethod
    def batch_keys(cls, config: MethodConfig) -> tuple[str, ...]:
        if isinstance(config, CFTConfig) and config.masks == "parts":
            return ("image", "label", "parts", "part_weights")
        return cls.data_keys

    def batch_mask(self, batch: dict[str, Any]) -> Tensor:
        if self.config.masks == "mask":
            return super().batch_mask(batch)
        missing = [key for key in ("parts", "part_weights") if key not in batch]
        if missing:
            raise StarftError(
                f"method cft with masks=parts needs the batch key(s) {', '.join(missing)}"
            )
        parts, weights = batch["parts"].float(), batch["part_weights"].float()
        images = batch["image"]
        if parts.ndim != 4 or parts.shape[-2:] != images.shape[-2:]:
            raise StarftError(
                f"method cft: batch 'parts' must be [B, P, H, W] with the images' H, W, got "
                f"{tuple(parts.shape)}"
            )
        return masks_from_parts(parts, weights)

"""CaRot: calibrated robust fine-tuning (Oh et al., NeurIPS 2024; repo MLAI-Yonsei/CaRot).

FLYP's contrastive loss plus two regularisers (docs/methods.md):

- orthogonality of the visual projection, ``λ_OC·‖W_vᵀW_v − I‖_F`` (``W_v`` found by module type
  through :func:`starft.models.projections.visual_projection`);
- self-distillation from an EMA teacher, ``λ_SD·[softCE(i→t) + softCE(t→i)]``: the student's
  image->text and text->image logits (student scale) against the teacher's (teacher scale) as
  soft targets, summed over the two directions as released, over the global batch under DDP.

Defaults are the README's ImageNet command (``--l_orth_wv 0.2 --distil_coef 1.5``) and the
release's EMA arguments (``--ema_up_freq 500 --m_sche_src 0.05 --m_sche_tar 0.9
--m_warm_up 0.2``). The README command also passes ``--cross_fnorm 0.05``, a penalty
``‖W_v W_tᵀ‖_F`` the paper does not describe: it is ``lambda_cross`` here, 0 by default (set 0.05
to run the README command exactly). The release skips the distillation term at step 0, where the
teacher still equals the student and the term's gradient is zero; it is computed here (same
update, one uniform code path).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from starft.losses import SelfDistillationLoss, cross_projection_penalty, orthogonality_penalty
from starft.method_configs import CaRotConfig
from starft.methods.base import StepInfo, Task
from starft.methods.ema import EmaTeacher, ema_momentum
from starft.methods.flyp import FLYP
from starft.models import ClipModel
from starft.models.projections import text_projection, visual_projection


class CaRot(FLYP):
    """Contrastive fine-tuning + orthogonal visual projection + EMA self-distillation."""

    Config = CaRotConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: CaRotConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        # Fail before training if the architecture has no projection to regularise.
        if config.lambda_oc > 0 or config.lambda_cross > 0:
            visual_projection(model)
        if config.lambda_cross > 0:
            text_projection(model)
        self.teacher = EmaTeacher(model) if config.lambda_sd > 0 else None
        self.distill_loss = SelfDistillationLoss(rank, world_size)

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        config = self.config
        images = batch["image"]
        captions = self.class_captions(batch, step)
        image_features, (text_features,) = self.encode(images, [captions])
        scale = self.model.scale()
        terms = dict(self.clip_loss(image_features, text_features, scale))
        loss = terms["contrastive"]
        if config.lambda_oc > 0:
            terms["orthogonality"] = orthogonality_penalty(visual_projection(self.model))
            loss = loss + config.lambda_oc * terms["orthogonality"]
        if config.lambda_cross > 0:
            terms["cross_projection"] = cross_projection_penalty(
                visual_projection(self.model), text_projection(self.model)
            )
            loss = loss + config.lambda_cross * terms["cross_projection"]
        if self.teacher is not None:
            teacher_images, teacher_texts, teacher_scale = self.teacher.features(images, captions)
            terms.update(
                self.distill_loss(
                    image_features,
                    text_features,
                    teacher_images,
                    teacher_texts,
                    scale,
                    teacher_scale,
                )
            )
            loss = loss + config.lambda_sd * terms["self_distillation"]
        return {"loss": loss, **terms}

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        super().after_optimizer_step(step)
        if self.teacher is None:
            return
        config = self.config
        momentum = ema_momentum(
            step.step,
            step.total_steps,
            every_steps=config.ema_every_steps,
            momentum=config.ema_momentum,
            momentum_start=config.ema_momentum_start,
            warmup_fraction=config.ema_warmup_fraction,
        )
        if momentum is not None:  # a convex combination: the teacher's scale stays in range
            self.teacher.update(self.model, momentum)

    def training_state(self) -> dict[str, Any]:
        state = super().training_state()
        if self.teacher is not None:
            state["ema_teacher"] = dict(self.teacher.model.state_dict())
        return state

    def load_training_state(self, state: dict[str, Any]) -> None:
        super().load_training_state(state)
        if self.teacher is not None:
            self.teacher.model.load_state_dict(state["ema_teacher"])

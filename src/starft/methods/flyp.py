"""FLYP: fine-tune like you pretrain (contrastive loss on class-name captions)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from starft.data.captions import CaptionSampler
from starft.errors import StarftError
from starft.losses import ClipLoss
from starft.method_configs import FLYPConfig
from starft.methods.base import Method, StepInfo, Task
from starft.models import ClipModel

#: CLIP's (and open_clip's training code's) upper bound of the logit scale: a multiplier of 100.
MAX_LOGIT_SCALE = math.log(100.0)


class FLYP(Method):
    """Contrastive fine-tuning of both towers and the logit scale (Goyal et al., 2023)."""

    Config = FLYPConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: FLYPConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        self.captions = CaptionSampler(
            task.classnames, task.templates, config.template_mode, config.template_index
        )
        self.clip_loss = ClipLoss(rank, world_size)
        if config.freeze_text:
            for _, param in model.text_tower_named_parameters():
                param.requires_grad_(False)

    def class_captions(self, batch: dict[str, Any], step: StepInfo) -> list[str]:
        if self.config.dataset_captions:
            if "caption" not in batch:
                raise StarftError(
                    "method option dataset_captions=true, but the dataset has no caption column"
                )
            return list(batch["caption"])
        return self.captions.sample(batch["label"].tolist(), step.randint)

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        """With ``clamp_logit_scale``, keep the trained logit scale in [0, ln 100] (CLIP's clamp).

        The FLYP, StarFT and CaRot releases never clamp; the paper presets set it false.
        """
        if self.config.clamp_logit_scale:
            self.model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        captions = self.class_captions(batch, step)
        image_features, (text_features,) = self.encode(batch["image"], [captions])
        terms = self.clip_loss(image_features, text_features, self.model.scale())
        return {"loss": terms["contrastive"], **terms}

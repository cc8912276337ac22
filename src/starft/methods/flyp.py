"""FLYP: fine-tune like you pretrain (contrastive loss on class-name captions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from starft.data.captions import CaptionSampler
from starft.errors import StarftError
from starft.losses import ClipLoss
from starft.methods.base import Method, MethodConfig, StepInfo, Task
from starft.models import ClipModel


@dataclass
class FLYPConfig(MethodConfig):
    """``template_mode``: ``random`` (a template per sample, FLYP) or ``fixed``
    (``template_index``).

    ``dataset_captions``: use the dataset's own caption column instead of templates.

    ``freeze_text``: keep the text tower fixed and train the image tower (and the logit scale)
    against it ("locked text"); how the sandbox ViT is pretrained against a pretrained text tower.
    """

    template_mode: str = "random"
    template_index: int = 0
    dataset_captions: bool = False
    freeze_text: bool = False


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

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        captions = self.class_captions(batch, step)
        image_features, (text_features,) = self.encode(batch["image"], [captions])
        terms = self.clip_loss(image_features, text_features, self.model.scale())
        return {"loss": terms["contrastive"], **terms}

"""FT: cross-entropy fine-tuning of the image tower with a zero-shot-initialised linear head.

The head is initialised as WiSE-FT does: weights = s x (template-averaged, normalised class
embeddings), bias 0, applied to *normalised* image features, so before the first step FT predicts
exactly what the zero-shot model predicts. The text tower and the logit scale are frozen (FT never
uses text after initialisation). The head is exported beside the model weights
(``classification_head.safetensors``) and ``starft eval`` uses it when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from starft.method_configs import FTConfig
from starft.methods.base import Method, StepInfo, Task
from starft.models import ClipModel, build_zeroshot_head
from starft.models.heads import LinearHeadClassifier, save_head


class FT(Method):
    """Image tower + linear head trained with cross-entropy (the standard fine-tuning baseline)."""

    Config = FTConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: FTConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        weights = build_zeroshot_head(model, task.classnames, task.eval_templates)
        self.head = nn.Linear(weights.shape[1], weights.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(model.scale().detach() * weights)
            self.head.bias.zero_()
        # Only the image tower and the head are trained.
        model.requires_grad_(False)
        model.image_tower().requires_grad_(True)

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        features = self.model(images=batch["image"], normalize=True)["image_features"]
        loss = self.cross_entropy(features, batch["label"])
        return {"loss": loss, "cross_entropy": loss}

    def cross_entropy(self, features: Tensor, labels: Tensor) -> Tensor:
        """CE of the head on normalised image features (shared by FT's regularised variants)."""
        logits = self.head(features.float())
        return F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)

    def training_state(self) -> dict[str, Any]:
        return {**super().training_state(), "head": dict(self.head.state_dict())}

    def load_training_state(self, state: dict[str, Any]) -> None:
        super().load_training_state(state)
        self.head.load_state_dict(state["head"])

    def classifier(
        self, classnames: Sequence[str] | None = None, templates: Sequence[str] | None = None
    ) -> nn.Module:
        """The trained head; other label spaces get a zero-shot head from the frozen text tower."""
        if classnames is not None and list(classnames) != self.task.classnames:
            return super().classifier(classnames, templates)
        return LinearHeadClassifier(self.model, self.head)

    def export(self, out_dir: str | Path) -> Path:
        out = super().export(out_dir)
        save_head(self.head, self.task.classnames, out)
        return out

"""CAR-FT: context-aware robust fine-tuning (Mao et al., 2022, arXiv 2211.16175).

FT (image tower + zero-shot-initialised linear head, cross-entropy) plus a KL term that keeps the
fine-tuned image features' distribution over *contexts* where the zero-shot model had it
(docs/methods.md)::

    L = CE + β · (1/N) Σ_i KL(p_ctx(θ0; x_i) ‖ p_ctx(θ; x_i)),   p_ctx = softmax(s0 · f(x) W_ctxᵀ)

Context k is a caption template ("a sketch of a {}."); ``W_ctx[k]`` is the normalised mean over
the task's classes of template k's normalised text embeddings, computed once from the zero-shot
model at construction (the text tower never changes in FT). ``f_θ0(x)`` comes from a frozen copy
of the zero-shot image tower run under ``torch.inference_mode``.

Defaults: no official implementation or hyper-parameter table was found (searched code, issue
and web corpora), so β = 1 and the scale ``s0`` is the frozen zero-shot logit scale, the one the
zero-shot head uses; the contexts are the training templates (for ImageNet: OpenAI's 80).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from starft.data import get_templates
from starft.errors import StarftError
from starft.losses import context_kl
from starft.method_configs import CarFTConfig
from starft.methods.base import StepInfo, Task
from starft.methods.ft import FT
from starft.methods.teacher import FrozenTeacher
from starft.models import ClipModel
from starft.models.zeroshot import build_context_head


class CarFT(FT):
    """Cross-entropy fine-tuning + KL to the zero-shot model's context distribution."""

    Config = CarFTConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: CarFTConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        contexts = (
            get_templates(config.context_templates)
            if config.context_templates
            else list(task.templates)
        )
        if len(contexts) < 2:
            raise StarftError(
                f"method carft needs at least 2 context templates, got {len(contexts)} "
                "(set data.templates or method.context_templates)"
            )
        self.teacher = FrozenTeacher(model, cache_text=False)
        weights = build_context_head(model, task.classnames, contexts)
        self.register_buffer("context_weights", weights, persistent=False)

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        images = batch["image"]
        features = self.model(images=images, normalize=True)["image_features"]
        terms = {"cross_entropy": self.cross_entropy(features, batch["label"])}
        terms["context_kl"] = context_kl(
            features,
            self.teacher.image_features(images, batch.get("index")),
            self.context_weights,
            self.teacher.scale,
        )
        loss = terms["cross_entropy"] + self.config.beta * terms["context_kl"]
        return {"loss": loss, **terms}

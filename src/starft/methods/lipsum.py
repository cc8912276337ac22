"""Lipsum-FT: robust fine-tuning with random text guidance (Nam et al., ICLR 2024).

FT (image tower + zero-shot-initialised linear head, cross-entropy) plus an energy-gap term that
keeps the fine-tuned image features' inner products with *random texts* where the zero-shot
model had them (docs/methods.md)::

    L = CE + λ · (1/N) Σ_i (1/2K) ‖s0·f_θ(x_i)Tᵀ − s0·f_θ0(x_i)Tᵀ‖²

``T`` holds the frozen text tower's normalised embeddings of K random texts of L tokens, drawn
afresh every step: ids uniform over the tokenizer's regular vocabulary, laid out as
``SOT ids EOT`` directly as token rows (:mod:`starft.models.tokens`). ``s0`` is the zero-shot
logit scale. Defaults are the release's (``cs-giung/lipsum-ft``, ``scripts/Lipsum-FT.py``):
λ = 1 (``--feat_regularization``), L = 8 (``--token_length``), K = 80 (``--token_k_ways``).

The texts are drawn from the step's generator (seeded by (seed, step)), identically on every
DDP rank, so a resumed or distributed run sees exactly the texts one uninterrupted process would.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from starft.losses import lipsum_energy_loss
from starft.method_configs import LipsumConfig
from starft.methods.base import StepInfo, Task
from starft.methods.ft import FT
from starft.methods.teacher import FrozenTeacher
from starft.models import ClipModel
from starft.models.tokens import token_layout, tokens_from_ids


class Lipsum(FT):
    """Cross-entropy fine-tuning + the zero-shot model's energies on random texts."""

    Config = LipsumConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: LipsumConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        self.layout = token_layout(model)
        # Fails here, not at the first step, if the texts cannot fit the context.
        tokens_from_ids(self.layout, torch.zeros(1, config.text_length, dtype=torch.long))
        self.teacher = FrozenTeacher(model, cache_text=False)

    def random_tokens(self, step: StepInfo) -> Tensor:
        """``[K, context_length]`` token rows of this step's random texts (same on every rank)."""
        shape = (self.config.num_texts, self.config.text_length)
        ids = torch.randint(self.layout.num_regular, shape, generator=step.generator)
        return tokens_from_ids(self.layout, ids)

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        images = batch["image"]
        features = self.model(images=images, normalize=True)["image_features"]
        terms = {"cross_entropy": self.cross_entropy(features, batch["label"])}
        texts = self.teacher.token_features(self.random_tokens(step).to(images.device))
        teacher = self.teacher.image_features(images, batch.get("index"))
        terms["energy_gap"] = lipsum_energy_loss(features, teacher, texts, self.teacher.scale)
        loss = terms["cross_entropy"] + self.config.lambda_lipsum * terms["energy_gap"]
        return {"loss": loss, **terms}

"""StarFT: FLYP plus spurious textual alignment regularisation (Kim et al., IJCAI 2025).

Per sample a descriptor d is drawn from the pool and the spurious caption is
``d.format(clean caption without its final period)``. The student's image features are compared
with the student's embeddings of the spurious captions of the batch, the frozen zero-shot model's
likewise, both at the zero-shot scale s0, and the KL keeps the student's distribution over
spurious captions of *other* classes close to the zero-shot model's (docs/methods.md).

λ decays linearly. The release decays it per epoch, λ_e = λ·(1 − (e+1)/E), which is 0 for the
last epoch: a one-epoch run would be plain FLYP. ``decay=auto`` (the default) therefore uses the
released per-epoch schedule when the run has at least two epochs and per-step decay otherwise;
``decay=epoch`` keeps the released schedule always (with a warning for a one-epoch run).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import Tensor

from starft.data.pools import load_pool, random_suffix_pool, spurious_caption
from starft.losses import StarLoss
from starft.method_configs import StarFTConfig
from starft.methods.base import StepInfo, Task
from starft.methods.flyp import FLYP
from starft.methods.teacher import FrozenTeacher
from starft.models import ClipModel

log = logging.getLogger(__name__)


class StarFT(FLYP):
    """Contrastive fine-tuning + λ·KL(zero-shot ‖ fine-tuned) on spuriosity-injected captions."""

    Config = StarFTConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: StarFTConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        self.descriptors = self._descriptors(model, config)
        self.teacher = FrozenTeacher(model, cache_text=config.teacher_text_cache)
        self.star_loss = StarLoss(config.mask_same_class, rank, world_size)

    @staticmethod
    def _descriptors(model: ClipModel, config: StarFTConfig) -> list[str]:
        if config.suffix == "none":
            return ["{}."]
        pool = load_pool(config.pool)
        if config.suffix == "spurious":
            return pool
        words = _vocabulary_words(model)
        return random_suffix_pool(len(pool), words, num_words=config.random_suffix_words, seed=0)

    def training_state(self) -> dict[str, Any]:
        return {**super().training_state(), "teacher_text_cache": self.teacher.cache_state()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        super().load_training_state(state)
        self.teacher.load_cache_state(state.get("teacher_text_cache", {}))

    def decay_mode(self, step: StepInfo) -> str:
        """The λ schedule in force: ``decay``, with ``auto`` settled by the run's epoch count."""
        if self.config.decay == "auto":
            return "epoch" if step.num_epochs >= 2 else "step"
        return self.config.decay

    def lambda_at(self, step: StepInfo) -> float:
        decay = self.decay_mode(step)
        self._announce_schedule(decay, step)
        lam = self.config.lambda_star
        if decay == "epoch":
            return lam * (1.0 - (step.epoch + 1) / step.num_epochs)
        if decay == "step":
            return lam * (1.0 - (step.step + 1) / max(step.total_steps, 1))
        return lam

    def _announce_schedule(self, decay: str, step: StepInfo) -> None:
        """Say once per run which schedule ``auto`` chose; warn when λ is 0 for the whole run."""
        if getattr(self, "_announced", False) or self.rank != 0:
            return
        self._announced = True
        if decay == "epoch" and step.num_epochs == 1 and self.config.lambda_star > 0:
            warnings.warn(
                "method.decay=epoch (the released per-epoch λ decay) gives λ = 0 for the only "
                "epoch of a 1-epoch run, so StarFT trains as plain FLYP; use method.decay=step "
                "or auto (per-step decay) or train for more epochs",
                UserWarning,
                stacklevel=2,
            )
        elif self.config.decay == "auto":
            log.info("StarFT λ schedule: decay=auto -> %s (%d epoch(s))", decay, step.num_epochs)

    def spurious_captions(self, captions: list[str], step: StepInfo) -> list[str]:
        picks = step.randint(len(self.descriptors), len(captions))
        return [spurious_caption(self.descriptors[i], c) for i, c in zip(picks, captions)]

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        images, labels = batch["image"], batch["label"]
        captions = self.class_captions(batch, step)
        spurious = self.spurious_captions(captions, step)
        lam = self.lambda_at(step)
        if lam == 0.0:
            # λ is exactly 0 (the last epoch under the released decay): the Star term contributes
            # nothing, so skip the teacher and the spurious captions entirely.
            image_features, (text_features,) = self.encode(images, [captions])
            terms = self.clip_loss(image_features, text_features, self.model.scale())
            return {"loss": terms["contrastive"], **terms, "lambda_star": torch.tensor(0.0)}
        image_features, (text_features, spurious_features) = self.encode(
            images, [captions, spurious]
        )
        teacher_images = self.teacher.image_features(images, batch.get("index"))
        teacher_spurious = self.teacher.text_features(spurious).to(image_features.device)
        terms = self.clip_loss(image_features, text_features, self.model.scale())
        terms.update(
            self.star_loss(
                image_features,
                spurious_features,
                teacher_images,
                teacher_spurious,
                labels,
                self.teacher.scale,
            )
        )
        loss = terms["contrastive"] + lam * terms["star"]
        return {"loss": loss, **terms, "lambda_star": torch.tensor(lam)}


def _vocabulary_words(model: ClipModel) -> list[str]:
    """Whole-word alphabetic tokens of the model's vocabulary (for random-token suffixes)."""
    return model.vocabulary_words()

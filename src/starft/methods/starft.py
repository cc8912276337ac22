"""StarFT: FLYP plus spurious textual alignment regularisation (Kim et al., IJCAI 2025).

Per sample a descriptor d is drawn from the pool and the spurious caption is
``d.format(clean caption without its final period)``. The student's image features are compared
with the student's embeddings of the spurious captions of the batch, the frozen zero-shot model's
likewise, both at the zero-shot scale s0, and the KL keeps the student's distribution over
spurious captions of *other* classes close to the zero-shot model's (DESIGN §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from starft.data.pools import load_pool, random_suffix_pool, spurious_caption
from starft.errors import StarftError
from starft.losses import StarLoss
from starft.methods.base import StepInfo, Task
from starft.methods.flyp import FLYP, FLYPConfig
from starft.methods.teacher import FrozenTeacher
from starft.models import ClipModel

SUFFIXES = ("spurious", "random", "none")
DECAYS = ("none", "epoch", "step")


@dataclass
class StarFTConfig(FLYPConfig):
    """StarFT hyper-parameters and the ablation switches of Tables 6-7 of the paper.

    - ``lambda_star``: weight λ of the Star term (paper: 0.5).
    - ``pool``: ``background`` | ``texture`` | ``resolution`` | ``all`` | path to a JSON pool.
    - ``suffix``: ``spurious`` (pool descriptors) | ``random`` (random-token suffixes, as many
      as the pool has) | ``none`` (regularise the clean captions).
    - ``mask_same_class``: drop same-class pairs (diagonal included) from both softmaxes.
    - ``decay``: ``epoch`` (λ·(1−(e+1)/E), as released) | ``step`` (λ·(1−(t+1)/T)) | ``none``.
    - ``teacher_text_cache``: embed each distinct spurious caption once with the frozen teacher
      (exact; ``false`` runs the teacher's text tower every step, for verification).
    """

    template_mode: str = "fixed"
    lambda_star: float = 0.5
    pool: str = "background"
    suffix: str = "spurious"
    mask_same_class: bool = True
    decay: str = "epoch"
    teacher_text_cache: bool = True
    random_suffix_words: int = 4


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
        if config.suffix not in SUFFIXES:
            raise StarftError(f"method.suffix must be one of {SUFFIXES}, got '{config.suffix}'")
        if config.decay not in DECAYS:
            raise StarftError(f"method.decay must be one of {DECAYS}, got '{config.decay}'")
        if config.lambda_star < 0:
            raise StarftError(f"method.lambda_star must be >= 0, got {config.lambda_star}")
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

    def lambda_at(self, step: StepInfo) -> float:
        lam = self.config.lambda_star
        if self.config.decay == "epoch":
            return lam * (1.0 - (step.epoch + 1) / step.num_epochs)
        if self.config.decay == "step":
            return lam * (1.0 - (step.step + 1) / max(step.total_steps, 1))
        return lam

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
        teacher_images = self.teacher.image_features(images)
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

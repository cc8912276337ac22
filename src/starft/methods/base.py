"""What every fine-tuning method is: an ``nn.Module`` that turns a batch into named loss terms.

A method owns the model being trained, any frozen teacher and its loss modules. The training loop
(:mod:`starft.train`) wraps the *method* in DDP, calls ``method(batch, step)`` and back-propagates
``out["loss"]``; every other entry of the returned dict is logged. After training (and for every
per-epoch evaluation) ``method.classifier()`` gives an images -> logits module and
``method.export(dir)`` writes the trained weights in a form the model's own library loads.

Two hooks serve methods that fit something before (or instead of) gradient steps, such as the
linear probe of LP and LP-FT: :meth:`Method.prepare` runs once before the first step of a fresh
(not resumed) run with a :class:`PrepareContext`, and ``trains_by_gradient = False`` tells the loop
to skip the optimisation epochs while still validating, exporting and writing results.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from starft.data.label_space import write_training_classes
from starft.method_configs import MethodConfig
from starft.models import ClipModel, ZeroShotClassifier, build_zeroshot_head, save_model
from starft.utils.distributed import DistInfo


@dataclass
class Task:
    """What a method needs to know about the data: classes and caption templates."""

    classnames: list[str]
    templates: list[str]
    eval_templates: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.eval_templates:
            self.eval_templates = list(self.templates)


@dataclass
class StepInfo:
    """Where training is, for schedules (λ decay, EMA) and per-step randomness.

    ``generator`` is seeded from (seed, step) by the loop, so the captions and descriptors a step
    draws do not depend on whether training was resumed. Methods draw through :meth:`randint`,
    which makes DDP ranks draw exactly what one process with the global batch would.
    """

    step: int
    epoch: int
    steps_per_epoch: int
    total_steps: int
    generator: torch.Generator
    rank: int = 0
    world_size: int = 1

    @classmethod
    def at(
        cls, step: int = 0, total_steps: int = 1, steps_per_epoch: int | None = None, seed: int = 0
    ) -> StepInfo:
        """A single-process step ``step`` of a ``total_steps`` run (one epoch unless
        ``steps_per_epoch``), drawing from the generator the training loop would use there.

        For calling a method outside :func:`starft.train.fit`: ``method(batch, StepInfo.at(0))``.
        """
        from starft.utils.seeding import seeded_generator

        per_epoch = total_steps if steps_per_epoch is None else steps_per_epoch
        return cls(
            step=step,
            epoch=step // max(per_epoch, 1),
            steps_per_epoch=per_epoch,
            total_steps=total_steps,
            generator=seeded_generator(seed, step, 0),
        )

    def randint(self, high: int, size: int) -> list[int]:
        """``size`` uniform integers in ``[0, high)`` for this rank's samples.

        Draws for the whole global batch (``size x world_size``) and keeps this rank's slice.
        """
        draws = torch.randint(high, (size * self.world_size,), generator=self.generator)
        return draws[self.rank * size : (self.rank + 1) * size].tolist()

    @property
    def num_epochs(self) -> int:
        return max(1, math.ceil(self.total_steps / max(self.steps_per_epoch, 1)))


@dataclass
class PrepareContext:
    """What :meth:`Method.prepare` may use: the run's data, device and process layout.

    ``train_set`` is the training data under the *evaluation* transform (no augmentation), for
    feature extraction; ``val_set`` is the run's ID validation set (``data.val``) or None. Every
    rank calls ``prepare`` (pass ``dist`` to :func:`starft.eval.predict` to shard and gather);
    after it the loop copies rank 0's parameters and buffers to every other rank.
    """

    train_set: Dataset
    val_set: Dataset | None
    device: torch.device
    batch_size: int
    num_workers: int = 0
    dist: DistInfo = field(default_factory=DistInfo)
    seed: int = 0
    autocast_dtype: torch.dtype | None = None


class Method(nn.Module, abc.ABC):
    """Base class of all methods; subclasses set ``Config`` and implement ``forward``."""

    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: False for methods fitted entirely in :meth:`prepare` (LP): the loop runs no optimiser step.
    trains_by_gradient: ClassVar[bool] = True
    #: Batch keys ``forward`` reads; ``starft train`` checks the dataset provides them at setup
    #: (a region method adds e.g. ``"mask"`` or ``"boxes"``, see :mod:`starft.data.regions`).
    data_keys: ClassVar[tuple[str, ...]] = ("image", "label")

    @classmethod
    def batch_keys(cls, config: MethodConfig) -> tuple[str, ...]:
        """The batch keys a run with ``config`` reads: :attr:`data_keys` unless an option
        changes them (CFT with part masks reads ``parts`` instead of ``mask``)."""
        return cls.data_keys

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: MethodConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.config = config
        self.rank = rank
        self.world_size = world_size
        if model.logit_bias is not None:
            # Sigmoid (SigLIP) models: every registered loss is a softmax over s·cos, which a
            # shared bias cannot change, so the bias keeps its pretrained value (and DDP sees no
            # parameter that requires a gradient but never gets one).
            model.logit_bias.requires_grad_(False)

    @abc.abstractmethod
    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        """Loss terms of one (micro-)batch; ``"loss"`` is the total to back-propagate."""

    def prepare(self, context: PrepareContext) -> dict[str, Any]:
        """Fit what must exist before the first step (default: nothing).

        Called once per run, before the first step, on every rank; not called when a run resumes
        from a checkpoint (the checkpoint already holds its outcome). Returns a JSON-serialisable
        report, which the loop logs and writes to ``prepare.json`` in the run folder.
        """
        return {}

    # -- what the loop optimises and checkpoints ------------------------------------------------
    def trainable_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Parameters the optimiser updates (frozen teachers excluded)."""
        for name, param in self.named_parameters():
            if param.requires_grad:
                yield name, param

    def training_state(self) -> dict[str, Any]:
        """What a resumed run needs besides the optimiser (default: the trained model's weights).

        Only tensors, numbers, strings and containers, so checkpoints load with
        ``torch.load(weights_only=True)``.
        """
        return {"model": dict(self.model.state_dict())}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        """Called after each optimiser step (EMA teachers, logit-scale clamping); default: none."""

    # -- evaluation and export -------------------------------------------------------------------
    def classifier(
        self, classnames: Sequence[str] | None = None, templates: Sequence[str] | None = None
    ) -> nn.Module:
        """Images -> logits with a zero-shot head rebuilt from the current text tower."""
        classnames = list(classnames) if classnames is not None else self.task.classnames
        templates = list(templates) if templates is not None else self.task.eval_templates
        head = build_zeroshot_head(self.model, classnames, templates)
        return ZeroShotClassifier(self.model, head)

    def export(self, out_dir: str | Path) -> Path:
        """Write the trained model as a folder its library loads (:func:`save_model`).

        ``classnames.json`` beside the weights records the training label space, so
        ``starft eval`` scores a dataset with a subset of those classes over all of them, as
        the run's own validation did.
        """
        out = save_model(self.model, out_dir)
        write_training_classes(out, self.task.classnames)
        return out

    # -- shared helpers --------------------------------------------------------------------------
    def encode(
        self, images: Tensor, caption_lists: Sequence[Sequence[str]]
    ) -> tuple[Tensor, list[Tensor]]:
        """Normalised image features and, per caption list, per-caption text features.

        All captions of all lists are de-duplicated and encoded in ONE text-tower call (each
        distinct caption once per batch); the per-sample features are gathered back by index, so
        gradients flow to every use of a caption.
        """
        unique: dict[str, int] = {}
        for captions in caption_lists:
            for caption in captions:
                unique.setdefault(caption, len(unique))
        device = images.device
        tokens = self.model.tokenize(list(unique)).to(device, non_blocking=True)
        out = self.model(images=images, tokens=tokens, normalize=True)
        text = out["text_features"]
        per_list = [
            text[torch.tensor([unique[c] for c in captions], device=device)]
            for captions in caption_lists
        ]
        return out["image_features"], per_list

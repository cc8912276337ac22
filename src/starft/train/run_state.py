"""What a checkpoint holds of a run, and how the trainer writes and restores it.

:class:`RunState` is the part of :class:`starft.train.loop.Trainer` that saves
``checkpoints/latest.pt`` and resumes from a checkpoint: the method's training state, the optimiser
and scaler, and the run's counters (step, epoch, best metric, history, ...). Saving and restoring
sit side by side so that the two lists of fields stay in step. The file format itself is
:mod:`starft.train.checkpoint`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from starft.config import TrainConfig, to_dict
from starft.methods import Method
from starft.train.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from starft.train.logger import RunLogger
from starft.train.run_folder import RunPlan
from starft.train.teacher_cache import TeacherCaches
from starft.utils.distributed import DistInfo


class RunState:
    """Checkpoint save and resume; the trainer holds every attribute it reads and writes."""

    config: TrainConfig
    info: DistInfo
    out_dir: Path
    device: torch.device
    plan: RunPlan
    method: Method
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    logger: RunLogger | None
    teacher_caches: TeacherCaches
    step: int
    epoch: int
    batch_in_epoch: int
    best_metric: float | None
    history: list[dict[str, Any]]
    prepare_report: dict[str, Any] | None
    metrics_offset: int | None
    nonfinite_skipped: int
    checkpoint_step: int | None

    # The trainer's: read the deferred non-finite check; stop if the weights are non-finite.
    check_nonfinite: Callable[[], None]
    _check_weights: Callable[[str], None]

    def _save_checkpoint(self) -> None:
        self.check_nonfinite()  # a step since the last read may have gone non-finite
        self._check_weights(f"the weights at step {self.step}")  # never checkpoint NaN weights
        self.checkpoint_step = self.step
        self.teacher_caches.save()  # every rank its own, before the checkpoint that relies on it
        if not self.info.is_main:
            return
        assert self.logger is not None
        save_checkpoint(
            self.out_dir / "checkpoints" / "latest.pt",
            {
                "method": self.method.training_state(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "best_metric": self.best_metric,
                "history": self.history,
                "prepare": self.prepare_report,
                "config": to_dict(self.config),
                "metrics_offset": self.logger.offset(),
                "nonfinite_skipped": self.nonfinite_skipped,
            },
        )

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_resumable(state, to_dict(self.config), path)
        self.method.load_training_state(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.best_metric = state["best_metric"]
        self.history = list(state["history"])
        self.prepare_report = state.get("prepare")
        self.metrics_offset = state.get("metrics_offset")
        self.nonfinite_skipped = int(state.get("nonfinite_skipped", 0))
        self.checkpoint_step = self.step
        if self.plan.own_checkpoint:  # another run's checkpoint: its caches stay its own
            self.teacher_caches.load(self.device)

"""The training loop: one function, :func:`fit`, from a :class:`TrainConfig` to saved weights.

A run folder holds::

    config.yaml              the resolved config
    prepare.json             what ``Method.prepare`` fitted before training (LP's probe), if any
    metrics.jsonl            training and validation metrics (TensorBoard in tensorboard/)
    checkpoints/latest.pt    resumable state (atomic; ``--resume`` continues from it)
    teacher_cache/           frozen teachers' cached image features, if cached (docs/performance.md)
    best/  final/            open_clip ``local-dir`` folders (best by ID validation, last epoch)
    results/*.json           the best model's result on the validation set

Batch size is per process: the global batch is ``batch_size x world_size x accum_steps``.
Gradient accumulation sums gradients of micro-batches; contrastive negatives come from each
micro-batch (and from all ranks), not from the whole accumulated batch.

The run folder is created only once every up-front check has passed (config, output folder, data,
model, checkpoint), and a fresh run that fails before its first checkpoint removes it again, so a
bad input never leaves a half-made run behind (``run_folder``). Under DDP, a set-up error on any
rank stops every rank with that rank's message.

A fresh run calls ``method.prepare`` once before the first step (a resumed one does not: its
checkpoint holds the outcome). Methods with ``trains_by_gradient = False`` (LP) skip the
optimisation epochs; validation, best/final export, results and the checkpoint happen as after one
epoch, so resuming a finished run changes nothing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from starft.config import TrainConfig, to_dict
from starft.errors import StarftError
from starft.eval.metric_registry import is_better
from starft.methods import Method, PrepareContext
from starft.models import create_model
from starft.train.console import Console
from starft.train.device_setup import prepare_for_device
from starft.train.distributed import (
    broadcast_module,
    init_distributed,
    raise_on_any_rank,
    resolve_autocast,
    resolve_device,
)
from starft.train.logger import RunLogger
from starft.train.nonfinite import DeferredCheck, weights_finite
from starft.train.optim import (
    MAX_WARMUP_SHARE,
    build_optimizer,
    effective_warmup,
)
from starft.train.run_folder import (
    RunPlan,
    open_run_folder,
    plan_run_folder,
    remove_failed_run,
)
from starft.train.run_state import RunState
from starft.train.setup import (
    build_datasets,
    build_method,
    check_config,
    eval_view,
    steps_per_epoch,
)
from starft.train.steps import StepLoop, wrap_for_training
from starft.train.teacher_cache import setup_teacher_caches
from starft.train.validation import epoch_summary, validate, write_validation_result
from starft.utils.distributed import DistInfo
from starft.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    out_dir: Path
    final_dir: Path
    best_dir: Path | None
    best_metric: float | None
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped_steps: int = 0  # optimiser steps dropped for a non-finite loss or gradient
    main_process: bool = True  # False on the other ranks of a torchrun job (they print nothing)


def fit(
    config: TrainConfig, resume: str | Path | None = None, overwrite: bool = False
) -> FitResult:
    """Train ``config.method`` on ``config.data`` and save best/final weights under ``out_dir``.

    ``resume``: None (a fresh run; an ``out_dir`` that holds a run is refused unless
    ``overwrite``), ``"latest"`` (``out_dir/checkpoints/latest.pt``, which must exist), ``"auto"``
    (that checkpoint if it exists, else a fresh start) or a checkpoint file.
    Works in one process or under ``torchrun`` (DDP; one process per GPU, or gloo on CPU).
    """
    info = init_distributed()
    trainer = Trainer(config, info, resume=resume, overwrite=overwrite)
    try:
        return trainer.run()
    finally:
        trainer.close()


class Trainer(StepLoop, RunState):
    """Holds the state of one run; ``run`` is the whole loop (its steps: ``StepLoop``; its
    checkpoint: ``RunState``)."""

    def __init__(
        self,
        config: TrainConfig,
        info: DistInfo,
        resume: str | Path | None = None,
        overwrite: bool = False,
    ) -> None:
        self.config = config
        self.info = info
        self.out_dir = Path(config.out_dir)
        self.console = Console(enabled=info.is_main)
        self.logger: RunLogger | None = None
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_metric: float | None = None
        self.history: list[dict[str, Any]] = []
        self.prepare_report: dict[str, Any] | None = None
        self.nonfinite_skipped = 0
        self.checkpoint_step: int | None = None  # step of the newest checkpoint on disk
        self.metrics_offset: int | None = None
        self._epoch_loss = [0.0, 0]  # sum of micro-batch losses, count, since the epoch began
        error: Exception | None = None
        try:
            self._build(resume, overwrite)
        except Exception as err:  # every rank must reach the agreement below
            error = err
        raise_on_any_rank(info, error)
        self.ddp: nn.Module = wrap_for_training(self.method, info, self.device)
        self.nonfinite_check = DeferredCheck(self.device)

    def _build(self, resume: str | Path | None, overwrite: bool) -> None:
        """Every up-front check and the run's parts; writes nothing."""
        config, info = self.config, self.info
        self.plan: RunPlan = plan_run_folder(self.out_dir, resume, overwrite)
        self.device = resolve_device(config.device, info)
        self.autocast_dtype = resolve_autocast(config.precision, self.device)
        check_config(config, info)
        torch.manual_seed(config.seed)  # identical model initialisation on every rank
        self.model = create_model(
            config.model.name, config.model.pretrained, cache_dir=config.model.cache_dir
        )
        if config.model.text_tower_from:
            self.model.load_text_tower(create_model(config.model.text_tower_from))
        self.train_set, self.val_set = build_datasets(config, self.model)
        self.method: Method = build_method(config, self.model, self.train_set, info).to(self.device)
        prepare_for_device(self.method, self.device, compile=config.compile)
        self.teacher_caches = setup_teacher_caches(
            config.teacher_cache, self.method, self.train_set, self.out_dir, info.rank
        )
        self.optimizer = build_optimizer(
            self.method.trainable_named_parameters(), config.optim, self.device
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.steps_per_epoch = (
            steps_per_epoch(config, len(self.train_set), info.world_size)
            if self.method.trains_by_gradient
            else 0
        )
        self.total_steps = self.steps_per_epoch * config.optim.epochs
        self.warmup_steps = effective_warmup(config.optim.warmup_steps, self.total_steps)
        if self.plan.checkpoint is not None:
            self._resume(self.plan.checkpoint)

    def close(self) -> None:
        self.console.close()
        if self.logger is not None:
            self.logger.close()

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> FitResult:
        resumed = self.plan.checkpoint is not None
        try:
            if self.info.is_main:
                open_run_folder(self.plan, self.metrics_offset, self.step)
                atomic_write_text(
                    self.out_dir / "config.yaml",
                    yaml.safe_dump(to_dict(self.config), sort_keys=False),
                )
            self.logger = RunLogger(
                self.out_dir,
                self.config.log,
                to_dict(self.config),
                enabled=self.info.is_main,
                resumed_step=self.step if resumed else None,
            )
            return self._run(resumed)
        except BaseException:
            self.close()  # ends the progress bar's line before the error is printed
            if self.info.is_main and not resumed and self.checkpoint_step is None:
                remove_failed_run(self.plan)
            raise

    def _run(self, resumed: bool) -> FitResult:
        if resumed:
            self.console.line(
                f"resuming from step {self.step} of {self.total_steps} (epoch {self.epoch}) "
                f"in {self.plan.checkpoint}"
            )
        else:
            self._prepare()
        log.info(self.teacher_caches.describe())
        if self.total_steps and self.warmup_steps < self.config.optim.warmup_steps:
            self.console.warn(
                f"optim.warmup_steps={self.config.optim.warmup_steps} is more than "
                f"{MAX_WARMUP_SHARE:.0%} of this run's {self.total_steps} steps: warming up over "
                f"{self.warmup_steps} step(s) instead"
            )
        self.method.train()
        if self.method.trains_by_gradient:
            if self.config.log.progress:
                self.console.open_bar(self.total_steps, self.step)
            for epoch in range(self.epoch, self.config.optim.epochs):
                tic = time.perf_counter()
                self.epoch = epoch
                self._train_epoch()
                self.batch_in_epoch = 0
                self.epoch = epoch + 1
                self._end_of_epoch(epoch, tic)
            self.console.close()
        elif self.epoch == 0:  # fitted in prepare: validate, export and checkpoint once
            self.epoch = 1
            self._end_of_epoch(0, time.perf_counter())
        self._check_weights("the final weights")
        final_dir = self.out_dir / "final"
        if self.info.is_main:
            self.method.export(final_dir)
        if self.nonfinite_skipped:
            self.console.warn(
                f"skipped {self.nonfinite_skipped} optimiser step(s) with a non-finite loss or "
                "gradient (optim.on_nonfinite=skip)"
            )
        best_dir = self.out_dir / "best" if self.val_set is not None else None
        self._barrier()
        return FitResult(
            self.out_dir,
            final_dir,
            best_dir,
            self.best_metric,
            self.step,
            self.history,
            skipped_steps=self.nonfinite_skipped,
            main_process=self.info.is_main,
        )

    def _prepare(self) -> None:
        """``method.prepare`` on every rank, then rank 0's state everywhere; log its report."""
        context = PrepareContext(
            train_set=eval_view(self.train_set, self.model.preprocess_val),
            val_set=self.val_set,
            device=self.device,
            batch_size=self.config.data.eval_batch_size,
            num_workers=self.config.data.num_workers,
            dist=self.info,
            seed=self.config.seed,
            autocast_dtype=self.autocast_dtype,
        )
        report = self.method.prepare(context)
        if self.info.world_size > 1 and type(self.method).prepare is not Method.prepare:
            broadcast_module(self.method, src=0)  # ranks may differ by rounding after a fit
        if report:
            self.prepare_report = report
            self.logger.log(self.step, report, prefix="prepare")
            if self.info.is_main:
                atomic_write_json(self.out_dir / "prepare.json", report, indent=2)

    def _stop(self, reason: str) -> None:
        """Raise the same one-line error on every rank; nothing is exported or checkpointed."""
        if self.checkpoint_step is None:
            kept = "no checkpoint was written yet"
        else:
            kept = (
                f"the last good checkpoint is {self.out_dir / 'checkpoints' / 'latest.pt'} "
                f"(step {self.checkpoint_step})"
            )
        error = StarftError(
            f"{reason}; {kept}. Lower optim.lr, set optim.grad_clip, or skip such steps with "
            "optim.on_nonfinite=skip"
        )
        error.all_ranks = True  # type: ignore[attr-defined]  # every rank takes this decision
        raise error

    def _check_weights(self, what: str) -> None:
        params = (p for _, p in self.method.trainable_named_parameters())
        if not weights_finite(params):
            self._stop(f"{what} are non-finite after step {self.step}")

    def _end_of_epoch(self, epoch: int, tic: float) -> None:
        self._check_weights(f"the weights of epoch {epoch}")
        metrics: dict[str, Any] = {}
        if self.val_set is not None:
            metrics, _, _ = self._evaluate()
            self.history.append({"epoch": epoch, **metrics})
            assert self.logger is not None
            self.logger.log(self.step, {"epoch": epoch, **metrics}, prefix="val")
            score = metrics[self.config.select_by]
            if not math.isfinite(score):
                self.console.warn(
                    f"validation {self.config.select_by} is {score} after epoch {epoch}: "
                    "not considered for best/"
                )
            elif is_better(self.config.select_by, score, self.best_metric):
                self.best_metric = score
                if self.info.is_main:
                    self.method.export(self.out_dir / "best")
                    self._write_result(epoch)
        self._save_checkpoint()
        if self.config.log.progress:
            self.console.line(self._epoch_summary(epoch, metrics, time.perf_counter() - tic))
        self._epoch_loss = [0.0, 0]

    def _epoch_summary(self, epoch: int, metrics: dict[str, Any], seconds: float) -> str:
        loss_sum, count = self._epoch_loss
        return epoch_summary(
            epoch,
            self.config.optim.epochs,
            float(loss_sum) / count if count else None,
            metrics,
            self.config.select_by,
            self.nonfinite_skipped,
            seconds,
        )

    def _evaluate(self) -> tuple[dict, dict, Any]:
        assert self.val_set is not None
        outcome = validate(
            self.method,
            self.val_set,
            self.config,
            device=self.device,
            info=self.info,
            autocast_dtype=self.autocast_dtype,
        )
        self._val_outcome = outcome  # written by _write_result if this epoch is the best
        return outcome.metrics, outcome.per_group, outcome.predictions

    def _write_result(self, epoch: int) -> None:
        extra = {"epoch": epoch, "step": self.step, "weights": str(self.out_dir / "best")}
        if self.prepare_report:
            extra["prepare"] = self.prepare_report
        write_validation_result(self.config, self.out_dir, self._val_outcome, extra)

    def _barrier(self) -> None:
        if self.info.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

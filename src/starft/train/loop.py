"""The training loop: one function, :func:`fit`, from a :class:`TrainConfig` to saved weights.

A run folder holds::

    config.yaml              the resolved config
    prepare.json             what ``Method.prepare`` fitted before training (LP's probe), if any
    metrics.jsonl            training and validation metrics (TensorBoard in tensorboard/)
    checkpoints/latest.pt    resumable state (atomic; ``--resume`` continues from it)
    best/  final/            open_clip ``local-dir`` folders (best by ID validation, last epoch)
    results/*.json           the best model's result on the validation set

Batch size is per process: the global batch is ``batch_size x world_size x accum_steps``.
Gradient accumulation sums gradients of micro-batches; contrastive negatives come from each
micro-batch (and from all ranks), not from the whole accumulated batch.

A fresh run calls ``method.prepare`` once before the first step (a resumed one does not: its
checkpoint holds the outcome). Methods with ``trains_by_gradient = False`` (LP) skip the
optimisation epochs; validation, best/final export, results and the checkpoint happen as after one
epoch, so resuming a finished run changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from starft.config import TrainConfig, to_dict
from starft.data import collate_samples
from starft.errors import StarftError
from starft.eval import build_result, evaluate, result_filename, write_predictions_csv, write_result
from starft.methods import Method, PrepareContext, StepInfo
from starft.models import create_model
from starft.train.checkpoint import load_checkpoint, save_checkpoint
from starft.train.distributed import (
    broadcast_module,
    init_distributed,
    resolve_autocast,
    resolve_device,
)
from starft.train.logger import RunLogger
from starft.train.optim import build_optimizer, lr_at, set_lr
from starft.train.sampling import EpochBatchSampler, SeededSamples, seeded_generator
from starft.train.setup import (
    build_datasets,
    build_method,
    check_config,
    eval_view,
    steps_per_epoch,
)
from starft.train.step_window import StepWindow, to_device
from starft.utils.distributed import DistInfo
from starft.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

# Fields that must match between a checkpoint and the config resuming it.
RESUME_FIELDS = ("model", "data", "method", "optim", "seed")


@dataclass
class FitResult:
    out_dir: Path
    final_dir: Path
    best_dir: Path | None
    best_metric: float | None
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)


def fit(config: TrainConfig, resume: str | Path | None = None) -> FitResult:
    """Train ``config.method`` on ``config.data`` and save best/final weights under ``out_dir``.

    ``resume``: a checkpoint file, or ``"auto"`` for ``out_dir/checkpoints/latest.pt`` if present.
    Works in one process or under ``torchrun`` (DDP; one process per GPU, or gloo on CPU).
    """
    info = init_distributed()
    trainer = Trainer(config, info)
    try:
        return trainer.run(resume)
    finally:
        trainer.logger.close()


class Trainer:
    """Holds the state of one run; ``run`` is the whole loop."""

    def __init__(self, config: TrainConfig, info: DistInfo) -> None:
        self.config = config
        self.info = info
        self.out_dir = Path(config.out_dir)
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
        self.ddp: nn.Module = self.method
        gradient = self.method.trains_by_gradient
        if info.world_size > 1 and gradient:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.method,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        self.optimizer = build_optimizer(self.method.trainable_named_parameters(), config.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.steps_per_epoch = (
            steps_per_epoch(config, len(self.train_set), info.world_size) if gradient else 0
        )
        self.total_steps = self.steps_per_epoch * config.optim.epochs
        self.logger = RunLogger(self.out_dir, config.log, to_dict(config), enabled=info.is_main)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_metric: float | None = None
        self.history: list[dict[str, Any]] = []
        self.prepare_report: dict[str, Any] | None = None

    # -- the loop --------------------------------------------------------------------------------
    def run(self, resume: str | Path | None) -> FitResult:
        resumed = resume is not None and self._resume(resume)
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                self.out_dir / "config.yaml", yaml.safe_dump(to_dict(self.config), sort_keys=False)
            )
        if not resumed:
            self._prepare()
        self.method.train()
        if self.method.trains_by_gradient:
            progress = self._progress_bar()
            for epoch in range(self.epoch, self.config.optim.epochs):
                self.epoch = epoch
                self._train_epoch(progress)
                self.batch_in_epoch = 0
                self.epoch = epoch + 1
                self._end_of_epoch(epoch)
            if progress is not None:
                progress.close()
        elif self.epoch == 0:  # fitted in prepare: validate, export and checkpoint once
            self.epoch = 1
            self._end_of_epoch(0)
        final_dir = self.out_dir / "final"
        if self.info.is_main:
            self.method.export(final_dir)
        best_dir = self.out_dir / "best" if self.val_set is not None else None
        self._barrier()
        return FitResult(
            self.out_dir, final_dir, best_dir, self.best_metric, self.step, self.history
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

    def _progress_bar(self) -> Any:
        if not (self.info.is_main and self.config.log.progress):
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.total_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True
        )

    def _loader(self, epoch: int) -> DataLoader:
        accum = self.config.optim.accum_steps
        sampler = EpochBatchSampler(
            len(self.train_set),
            self.config.data.batch_size,
            seed=self.config.seed,
            epoch=epoch,
            rank=self.info.rank,
            world_size=self.info.world_size,
            start_batch=self.batch_in_epoch,
            num_batches=self.steps_per_epoch * accum,
        )
        return DataLoader(
            SeededSamples(self.train_set, self.config.seed),
            batch_sampler=sampler,
            collate_fn=collate_samples,
            num_workers=self.config.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _train_epoch(self, progress: Any) -> None:
        accum = self.config.optim.accum_steps
        window = StepWindow()
        epoch_skipped = 0
        for batch in self._loader(self.epoch):
            micro = self.batch_in_epoch % accum
            self.batch_in_epoch += 1
            last_micro = micro == accum - 1
            info = StepInfo(
                step=self.step,
                epoch=self.epoch,
                steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
                generator=seeded_generator(self.config.seed, self.step, micro),
                rank=self.info.rank,
                world_size=self.info.world_size,
            )
            if batch is None:  # every image of this micro-batch was unreadable and skipped
                skipped = self.config.data.batch_size
            else:
                skipped = batch.pop("num_skipped", 0)
                window.add(self._forward_backward(batch, info, last_micro))
            window.skipped += skipped
            epoch_skipped += skipped
            if last_micro:  # the cycle closes on schedule even if its last micro-batch was empty
                self._optimizer_step(info)
                self._after_step(progress, window)
        if epoch_skipped:
            log.warning("epoch %d: skipped %d unreadable image(s)", self.epoch, epoch_skipped)

    def _forward_backward(
        self, batch: dict[str, Any], info: StepInfo, last_micro: bool
    ) -> dict[str, float]:
        batch = to_device(batch, self.device)
        sync = contextlib.nullcontext()
        if self.info.world_size > 1 and not last_micro:
            sync = self.ddp.no_sync()  # type: ignore[operator]  # accumulate locally
        with sync:
            with self._autocast():
                out = self.ddp(batch, info)
            self.scaler.scale(out["loss"] / self.config.optim.accum_steps).backward()
        return {key: float(value.detach()) for key, value in out.items()}

    def _after_step(self, progress: Any, window: StepWindow) -> None:
        """Progress bar, logging every ``log.every_steps`` and periodic checkpoints."""
        if progress is not None:
            progress.update(1)
            if window.count:
                progress.set_postfix(loss=f"{window.sums['loss'] / window.count:.4f}")
        if self.step % self.config.log.every_steps == 0 or self.step == self.total_steps:
            self.logger.log(
                self.step,
                {
                    **window.means(),
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "epoch": self.epoch,
                    "logit_scale": self.model.scale().item(),
                    "skipped_images": window.skipped,
                    "seconds_per_step": window.seconds_per_step(self.config.optim.accum_steps),
                },
            )
            window.reset()
        every = self.config.checkpoint_every_steps
        if every and self.step % every == 0:
            self._save_checkpoint()

    def _optimizer_step(self, info: StepInfo) -> None:
        optim = self.config.optim
        set_lr(
            self.optimizer,
            lr_at(
                self.step,
                optim.lr,
                optim.warmup_steps,
                self.total_steps,
                optim.schedule,
                steps_per_epoch=self.steps_per_epoch,
                step_gamma=optim.step_gamma,
                step_epochs=optim.step_epochs,
            ),
        )
        if optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for _, p in self.method.trainable_named_parameters()], optim.grad_clip
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_optimizer_step(info)
        self.step += 1

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # -- evaluation, selection, checkpoints ------------------------------------------------------
    def _end_of_epoch(self, epoch: int) -> None:
        if self.val_set is not None:
            metrics, per_group, predictions = self._evaluate()
            self.history.append({"epoch": epoch, **metrics})
            self.logger.log(self.step, {"epoch": epoch, **metrics}, prefix="val")
            score = metrics[self.config.select_by]
            if self.best_metric is None or score > self.best_metric:
                self.best_metric = score
                if self.info.is_main:
                    self.method.export(self.out_dir / "best")
                    self._write_result(metrics, per_group, predictions, epoch)
        self._save_checkpoint()

    def _evaluate(self) -> tuple[dict, dict, Any]:
        assert self.val_set is not None
        self.method.eval()
        try:
            classifier = self.method.classifier()
            return evaluate(
                classifier,
                self.val_set,
                batch_size=self.config.data.eval_batch_size,
                num_workers=self.config.data.num_workers,
                device=self.device,
                dist=self.info,
                autocast_dtype=self.autocast_dtype,
            )
        finally:
            self.method.train()

    def _write_result(self, metrics: dict, per_group: dict, predictions: Any, epoch: int) -> None:
        name = self.config.method["name"]
        dataset = self.config.data.val_dataset or f"{self.config.data.dataset}-val"
        result = build_result(
            model=self.config.model.name,
            method=name,
            dataset=dataset,
            config=to_dict(self.config),
            metrics=metrics,
            per_group=per_group,
            n_samples=metrics["n_samples"],
            extra={
                "epoch": epoch,
                "step": self.step,
                "weights": str(self.out_dir / "best"),
                **({"prepare": self.prepare_report} if self.prepare_report else {}),
            },
        )
        results = self.out_dir / "results"
        write_result(results / result_filename(self.config.model.name, name, dataset), result)
        if self.config.save_predictions:
            write_predictions_csv(results / f"predictions_{dataset}.csv", predictions)

    def _save_checkpoint(self) -> None:
        if not self.info.is_main:
            return
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
            },
        )

    def _resume(self, resume: str | Path) -> bool:
        """Load the checkpoint; False when ``"auto"`` finds none (a fresh start)."""
        path = Path(resume)
        if str(resume) == "auto":
            path = self.out_dir / "checkpoints" / "latest.pt"
            if not path.is_file():
                log.info("no checkpoint at %s: starting from scratch", path)
                return False
        state = load_checkpoint(path)
        saved, current = state["config"], to_dict(self.config)
        for key in RESUME_FIELDS:
            if saved.get(key) != current.get(key):
                raise StarftError(
                    f"cannot resume from '{path}': its '{key}' config differs from this run's "
                    f"(saved {saved.get(key)!r})"
                )
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
        log.info("resumed from %s at step %d (epoch %d)", path, self.step, self.epoch)
        return True

    def _barrier(self) -> None:
        if self.info.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

"""The training loop: one function, :func:`fit`, from a :class:`TrainConfig` to saved weights.

A run folder holds::

    config.yaml              the resolved config
    metrics.jsonl            training and validation metrics (TensorBoard in tensorboard/)
    checkpoints/latest.pt    resumable state (atomic; ``--resume`` continues from it)
    best/  final/            open_clip ``local-dir`` folders (best by ID validation, last epoch)
    results/*.json           the best model's result on the validation set

Batch size is per process: the global batch is ``batch_size x world_size x accum_steps``.
Gradient accumulation sums gradients of micro-batches; contrastive negatives come from each
micro-batch (and from all ranks), not from the whole accumulated batch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from starft.config import TrainConfig, to_dict
from starft.data import collate_samples, create_dataset, get_templates
from starft.errors import StarftError
from starft.eval import build_result, evaluate, result_filename, write_predictions_csv, write_result
from starft.methods import Method, StepInfo, Task, create_method
from starft.models import create_model
from starft.train.checkpoint import load_checkpoint, save_checkpoint
from starft.train.distributed import init_distributed, resolve_autocast, resolve_device
from starft.train.logger import RunLogger
from starft.train.optim import build_optimizer, lr_at, set_lr
from starft.train.sampling import EpochBatchSampler, SeededSamples, seeded_generator
from starft.utils.distributed import DistInfo
from starft.utils.io import atomic_write_text

log = logging.getLogger(__name__)

SELECT_BY = ("top1", "worst_group_acc", "avg_group_acc")
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


def build_task(config: TrainConfig, dataset: Any) -> Task:
    templates = get_templates(config.data.templates) if config.data.templates else dataset.templates
    eval_templates = (
        get_templates(config.data.eval_templates)
        if config.data.eval_templates
        else dataset.templates
    )
    return Task(list(dataset.classnames), list(templates), list(eval_templates))


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
        self._check_config()
        torch.manual_seed(config.seed)  # identical model initialisation on every rank

        data = config.data
        self.model = create_model(
            config.model.name, config.model.pretrained, cache_dir=config.model.cache_dir
        )
        train_tf = self.model.preprocess_train if data.augment else self.model.preprocess_val
        self.train_set = create_dataset(
            data.dataset, **data.train, transform=train_tf, on_bad_image=data.on_bad_image
        )
        self.val_set = (
            create_dataset(
                data.dataset,
                **data.val,
                transform=self.model.preprocess_val,
                on_bad_image=data.on_bad_image,
            )
            if data.val is not None
            else None
        )
        self._check_selection()
        params = {k: v for k, v in config.method.items() if k != "name"}
        self.method: Method = create_method(
            config.method["name"],
            self.model,
            build_task(config, self.train_set),
            params,
            rank=info.rank,
            world_size=info.world_size,
        ).to(self.device)
        self.ddp: nn.Module = self.method
        if info.world_size > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.method,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        self.optimizer = build_optimizer(self.method.trainable_named_parameters(), config.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)

        global_batch = data.batch_size * info.world_size
        micro_per_epoch = len(self.train_set) // global_batch
        self.steps_per_epoch = micro_per_epoch // config.optim.accum_steps
        if self.steps_per_epoch == 0:
            raise StarftError(
                f"data.batch_size={data.batch_size} x {info.world_size} process(es) x "
                f"optim.accum_steps={config.optim.accum_steps} is larger than the training set "
                f"({len(self.train_set)} samples)"
            )
        self.total_steps = self.steps_per_epoch * config.optim.epochs
        self.logger = RunLogger(self.out_dir, config.log, to_dict(config), enabled=info.is_main)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_metric: float | None = None
        self.history: list[dict[str, Any]] = []

    # -- set-up checks ---------------------------------------------------------------------------
    def _check_config(self) -> None:
        c = self.config
        if c.optim.accum_steps < 1:
            raise StarftError(f"optim.accum_steps must be >= 1, got {c.optim.accum_steps}")
        if c.optim.epochs < 1:
            raise StarftError(f"optim.epochs must be >= 1, got {c.optim.epochs}")
        if c.data.batch_size < 1:
            raise StarftError(f"data.batch_size must be >= 1, got {c.data.batch_size}")
        if c.select_by not in SELECT_BY:
            raise StarftError(f"select_by must be one of {SELECT_BY}, got '{c.select_by}'")
        if c.data.on_bad_image == "skip" and self.info.world_size > 1:
            # Skipping changes local batch sizes, which cross-rank feature gathers cannot take.
            raise StarftError(
                "data.on_bad_image=skip works in a single process only; under torchrun, remove "
                "the unreadable files listed by a single-process run first"
            )

    def _check_selection(self) -> None:
        if self.config.select_by != "top1" and (
            self.val_set is None or getattr(self.val_set, "groups", None) is None
        ):
            raise StarftError(
                f"select_by={self.config.select_by} needs a validation set with groups (data.val)"
            )

    # -- the loop --------------------------------------------------------------------------------
    def run(self, resume: str | Path | None) -> FitResult:
        if resume is not None:
            self._resume(resume)
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                self.out_dir / "config.yaml", yaml.safe_dump(to_dict(self.config), sort_keys=False)
            )
        progress = self._progress_bar()
        self.method.train()
        for epoch in range(self.epoch, self.config.optim.epochs):
            self.epoch = epoch
            self._train_epoch(progress)
            self.batch_in_epoch = 0
            self.epoch = epoch + 1
            self._end_of_epoch(epoch)
        if progress is not None:
            progress.close()
        final_dir = self.out_dir / "final"
        if self.info.is_main:
            self.method.export(final_dir)
        best_dir = self.out_dir / "best" if self.val_set is not None else None
        self._barrier()
        return FitResult(
            self.out_dir, final_dir, best_dir, self.best_metric, self.step, self.history
        )

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
        sums: dict[str, float] = {}
        count = 0
        skipped = 0
        tic = time.perf_counter()
        for batch in self._loader(self.epoch):
            micro = self.batch_in_epoch % accum
            self.batch_in_epoch += 1
            if batch is None:  # every image of this micro-batch was unreadable and skipped
                skipped += self.config.data.batch_size
                continue
            skipped += batch.pop("num_skipped", 0)
            batch = _to_device(batch, self.device)
            info = StepInfo(
                step=self.step,
                epoch=self.epoch,
                steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
                generator=seeded_generator(self.config.seed, self.step, micro),
                rank=self.info.rank,
                world_size=self.info.world_size,
            )
            last_micro = micro == accum - 1
            sync = contextlib.nullcontext()
            if self.info.world_size > 1 and not last_micro:
                sync = self.ddp.no_sync()  # type: ignore[operator]
            with sync:
                with self._autocast():
                    out = self.ddp(batch, info)
                self.scaler.scale(out["loss"] / accum).backward()
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            count += 1
            if not last_micro:
                continue
            self._optimizer_step(info)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{sums['loss'] / count:.4f}")
            if self.step % self.config.log.every_steps == 0 or self.step == self.total_steps:
                values = {k: v / count for k, v in sums.items()}
                values.update(
                    lr=self.optimizer.param_groups[0]["lr"],
                    epoch=self.epoch,
                    logit_scale=self.model.scale().item(),
                    skipped_images=skipped,
                    seconds_per_step=(time.perf_counter() - tic) / max(count / accum, 1),
                )
                self.logger.log(self.step, values)
                sums, count, tic = {}, 0, time.perf_counter()
            every = self.config.checkpoint_every_steps
            if every and self.step % every == 0:
                self._save_checkpoint()
        if skipped:
            log.warning("epoch %d: skipped %d unreadable image(s)", self.epoch, skipped)

    def _optimizer_step(self, info: StepInfo) -> None:
        optim = self.config.optim
        set_lr(
            self.optimizer,
            lr_at(self.step, optim.lr, optim.warmup_steps, self.total_steps, optim.schedule),
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
        dataset = f"{self.config.data.dataset}-val"
        result = build_result(
            model=self.config.model.name,
            method=name,
            dataset=dataset,
            config=to_dict(self.config),
            metrics=metrics,
            per_group=per_group,
            n_samples=metrics["n_samples"],
            extra={"epoch": epoch, "step": self.step, "weights": str(self.out_dir / "best")},
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
                "config": to_dict(self.config),
            },
        )

    def _resume(self, resume: str | Path) -> None:
        path = Path(resume)
        if str(resume) == "auto":
            path = self.out_dir / "checkpoints" / "latest.pt"
            if not path.is_file():
                log.info("no checkpoint at %s: starting from scratch", path)
                return
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
        log.info("resumed from %s at step %d (epoch %d)", path, self.step, self.epoch)

    def _barrier(self) -> None:
        if self.info.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }

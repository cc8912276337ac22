"""One epoch of optimiser steps: micro-batches, accumulation, the non-finite check, the update.

:class:`StepLoop` is the part of :class:`starft.train.loop.Trainer` that runs inside an epoch; the
trainer holds the state it uses (model, method, optimiser, counters) and the run around it.

Loss terms stay on the device, summed over the steps between two log rows, and are read on log
steps only, together with the deferred non-finite check (``train.nonfinite``): with the default
``optim.on_nonfinite=stop`` the loop never waits for the device between log steps (``skip``
reads one flag per step, since it decides before each update).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from starft.config import TrainConfig
from starft.data import collate_samples
from starft.methods import Method, StepInfo
from starft.train.console import Console
from starft.train.device_setup import has_batch_norm
from starft.train.logger import RunLogger
from starft.train.nonfinite import DeferredCheck, step_flags, total_grad_norm
from starft.train.optim import lr_at, set_lr
from starft.train.sampling import EpochBatchSampler, SeededSamples, seeded_generator
from starft.train.step_window import StepWindow, TimedIterator, to_device
from starft.utils.distributed import DistInfo


@dataclass
class StepResult:
    """What one optimiser step did: its loss sums (device tensors; None if skipped or empty),
    micro-batches run and images skipped as unreadable."""

    values: dict[str, Tensor] | None
    micro_batches: int
    skipped: int


def _cycles(batches: Iterator[Any], accum: int) -> Iterator[Iterator[Any]]:
    """The micro-batches of each optimiser step, lazily (never more than one batch held here)."""
    for first in batches:
        yield itertools.chain([first], itertools.islice(batches, accum - 1))


def train_loader(
    dataset: Any,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
    start_batch: int = 0,
    num_batches: int | None = None,
) -> DataLoader:
    """The training DataLoader of one epoch (also what ``bench/loader_throughput.py`` times)."""
    sampler = EpochBatchSampler(
        len(dataset),
        batch_size,
        seed=seed,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
        start_batch=start_batch,
        num_batches=num_batches,
    )
    return DataLoader(
        SeededSamples(dataset, seed),
        batch_sampler=sampler,
        collate_fn=collate_samples,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


def wrap_for_training(method: Method, info: DistInfo, device: torch.device) -> nn.Module:
    """The module the step calls: ``method`` itself, or its DDP wrapper under torchrun."""
    if info.world_size > 1 and method.trains_by_gradient:
        return nn.parallel.DistributedDataParallel(
            method,
            device_ids=[device.index] if device.type == "cuda" else None,
            # Only batch norms change buffers in training: else no broadcast every step.
            broadcast_buffers=has_batch_norm(method),
        )
    return method


class StepLoop:
    config: TrainConfig
    info: DistInfo
    device: torch.device
    autocast_dtype: torch.dtype | None
    method: Method
    ddp: nn.Module
    model: Any
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    console: Console
    logger: RunLogger | None
    train_set: Any
    step: int
    epoch: int
    batch_in_epoch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    nonfinite_skipped: int
    nonfinite_check: DeferredCheck
    _epoch_loss: list

    # The trainer's: raise one error on every rank; write checkpoints/latest.pt.
    _stop: Callable[[str], None]
    _save_checkpoint: Callable[[], None]

    def _loader(self, epoch: int) -> DataLoader:
        return train_loader(
            self.train_set,
            self.config.data.batch_size,
            seed=self.config.seed,
            epoch=epoch,
            num_workers=self.config.data.num_workers,
            pin_memory=self.device.type == "cuda",
            rank=self.info.rank,
            world_size=self.info.world_size,
            start_batch=self.batch_in_epoch,
            num_batches=self.steps_per_epoch * self.config.optim.accum_steps,
        )

    def _train_epoch(self) -> None:
        window = StepWindow()
        epoch_skipped = 0
        batches = TimedIterator(self._loader(self.epoch))
        for micro_batches in _cycles(batches, self.config.optim.accum_steps):
            result = self.train_step(micro_batches)
            window.data_wait += batches.take()
            if result.values is not None and result.micro_batches:
                window.add(result.values, result.micro_batches)
                self._epoch_loss[0] += result.values["loss"]
                self._epoch_loss[1] += result.micro_batches
            window.skipped += result.skipped
            epoch_skipped += result.skipped
            self._after_step(window)
        self.check_nonfinite()  # the epoch's last steps, before validation and the checkpoint
        if epoch_skipped:
            self.console.warn(f"epoch {self.epoch}: skipped {epoch_skipped} unreadable image(s)")

    def step_info(self, micro: int = 0) -> StepInfo:
        """Where micro-batch ``micro`` of the current step is (generator: (seed, step, micro))."""
        return StepInfo(
            step=self.step,
            epoch=self.epoch,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            generator=seeded_generator(self.config.seed, self.step, micro),
            rank=self.info.rank,
            world_size=self.info.world_size,
        )

    def train_step(self, micro_batches: Iterable[dict[str, Any] | None]) -> StepResult:
        """One optimiser step: forward and backward of each micro-batch, then the update.

        The single training step of the code base: :func:`starft.train.fit` runs it for every
        step and ``starft bench`` times it. ``micro_batches`` yields ``optim.accum_steps``
        batches (``None``: every image of that micro-batch was unreadable); gradients accumulate
        under the autocast, GradScaler and DDP wrapper of the loop (DDP synchronises on the last
        micro-batch only), then one host read checks the step and the optimiser updates.
        """
        accum = self.config.optim.accum_steps
        cycle: dict[str, Tensor] = {}  # loss terms summed over the micro-batches of the step
        count = skipped = 0
        loss_bad = torch.zeros((), dtype=torch.bool, device=self.device)
        info = self.step_info(0)
        for micro, batch in enumerate(micro_batches):
            self.batch_in_epoch += 1
            info = self.step_info(micro)
            if batch is None:
                skipped += self.config.data.batch_size
                continue
            skipped += batch.pop("num_skipped", 0)
            out = self._forward_backward(batch, info, last_micro=micro == accum - 1)
            for key, value in out.items():
                cycle[key] = cycle[key] + value if key in cycle else value
            count += 1
            loss_bad = loss_bad | ~torch.isfinite(out["loss"])
        # The step closes on schedule even if its last micro-batch was empty.
        values = self._optimizer_step(info, loss_bad, cycle)
        return StepResult(values if count else None, count, skipped)

    def _forward_backward(
        self, batch: dict[str, Any], info: StepInfo, last_micro: bool
    ) -> dict[str, Tensor]:
        """Loss terms of one micro-batch, detached and left on the device (read once per step)."""
        batch = to_device(batch, self.device)
        sync = contextlib.nullcontext()
        if self.info.world_size > 1 and not last_micro:
            sync = self.ddp.no_sync()  # type: ignore[operator]  # accumulate locally
        with sync:
            with self._autocast():
                out = self.ddp(batch, info)
            self.scaler.scale(out["loss"] / self.config.optim.accum_steps).backward()
        return {key: value.detach().float() for key, value in out.items()}

    def _after_step(self, window: StepWindow) -> None:
        """Progress bar, logging every ``log.every_steps`` and periodic checkpoints."""
        self.console.update()
        if self.step % self.config.log.every_steps == 0 or self.step == self.total_steps:
            assert self.logger is not None
            self.check_nonfinite()
            means = window.means()  # the window's one read of the loss terms
            if "loss" in means:
                self.console.show_loss(means["loss"])
            self.logger.log(
                self.step,
                {
                    **means,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "epoch": self.epoch,
                    "logit_scale": self.model.scale().item(),
                    "skipped_images": window.skipped,
                    "nonfinite_skipped": self.nonfinite_skipped,
                    "seconds_per_step": window.seconds_per_step(self.config.optim.accum_steps),
                    "data_wait_share": window.data_wait_share(),
                },
            )
            window.reset()
        every = self.config.checkpoint_every_steps
        if every and self.step % every == 0:
            self._save_checkpoint()

    def _optimizer_step(
        self, info: StepInfo, loss_bad: Tensor, cycle: dict[str, Tensor]
    ) -> dict[str, float] | None:
        """Check the step (one host read), then update; the step's loss sums, or None if skipped."""
        optim = self.config.optim
        set_lr(
            self.optimizer,
            lr_at(
                self.step,
                optim.lr,
                self.warmup_steps,
                self.total_steps,
                optim.schedule,
                steps_per_epoch=self.steps_per_epoch,
                step_gamma=optim.step_gamma,
                step_epochs=optim.step_epochs,
            ),
        )
        params = [p for _, p in self.method.trainable_named_parameters()]
        norm = None
        if optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
        elif not self.scaler.is_enabled():
            norm = total_grad_norm(params)
        if self.scaler.is_enabled():
            norm = None  # fp16 overflows are routine: GradScaler skips those steps itself
        if optim.on_nonfinite == "skip":  # decide now: one read of the two flags
            flags = step_flags(loss_bad, norm, self.info.world_size).tolist()
            if flags[0] or flags[1]:
                self.nonfinite_skipped += 1
                if self.scaler.is_enabled() and optim.grad_clip is not None:
                    self.scaler.update()  # unscale_ ran: close the scaler's cycle
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                return None
        else:  # stop: noted on the device, read on the next log step or checkpoint
            self.nonfinite_check.record(loss_bad, norm, self.step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_optimizer_step(info)
        self.step += 1
        return cycle

    def check_nonfinite(self) -> None:
        """Read the deferred check (free if no step ran since the last read); stop on a hit."""
        found = self.nonfinite_check.take(self.info.world_size)
        if found is None:
            return
        step, what = found
        self._stop(
            f"non-finite {what} at step {step + 1} of {self.total_steps} "
            f"(epoch {step // max(self.steps_per_epoch, 1)}): training stopped"
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # -- evaluation, selection, checkpoints ------------------------------------------------------

"""Bookkeeping between two log rows of the training loop: running means and step timing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch


class StepWindow:
    """Running means of the loss terms (and skipped images) between two log rows."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.skipped = 0
        self.data_wait = 0.0  # seconds the loop spent blocked on the data loader
        self.tic = time.perf_counter()

    def add(self, values: dict[str, torch.Tensor], count: int = 1) -> None:
        """``values``: sums over ``count`` micro-batches (one optimiser step's worth), left on
        the device: adding them reads nothing."""
        for key, value in values.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += count

    def means(self) -> dict[str, float]:
        """The window's mean of every term: one read from the device for all of them."""
        if not self.count:
            return {}
        keys = list(self.sums)
        read = torch.stack([self.sums[k].float().reshape(()) for k in keys]).tolist()
        return {key: value / self.count for key, value in zip(keys, read, strict=True)}

    def seconds_per_step(self, accum_steps: int) -> float:
        return (time.perf_counter() - self.tic) / max(self.count / accum_steps, 1)

    def data_wait_share(self) -> float:
        """Share of the window's wall time spent waiting for batches (0: data never starved)."""
        elapsed = time.perf_counter() - self.tic
        return min(self.data_wait / elapsed, 1.0) if elapsed > 0 else 0.0


class TimedIterator(Iterator[Any]):
    """Wraps an iterator and adds up the wall time spent inside its ``next`` (host clock only).

    Around a DataLoader this is the time the training loop was blocked waiting for data: with
    enough workers prefetching it stays near 0. ``take()`` returns the total since the last call.
    """

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._it = iter(iterable)
        self._waited = 0.0

    def __next__(self) -> Any:
        tic = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self._waited += time.perf_counter() - tic

    def take(self) -> float:
        waited, self._waited = self._waited, 0.0
        return waited


#: Batch fields that stay on the host: dataset row ids are bookkeeping (cache keys), and reading
#: them on the host costs no device synchronisation. They travel as numpy arrays, which DDP's
#: input scatter (it moves every tensor of the batch to the GPU) leaves alone.
HOST_KEYS = frozenset({"index"})


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a batch dict moved to ``device``, also inside lists (``boxes``); strings and
    :data:`HOST_KEYS` stay."""

    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=True)
        if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            return [item.to(device, non_blocking=True) for item in value]
        return value

    def host(value: Any) -> Any:
        return value.numpy() if isinstance(value, torch.Tensor) else value

    return {key: host(value) if key in HOST_KEYS else move(value) for key, value in batch.items()}

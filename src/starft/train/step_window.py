"""Bookkeeping between two log rows of the training loop: running means and step timing."""

from __future__ import annotations

import time
from typing import Any

import torch


class StepWindow:
    """Running means of the loss terms (and skipped images) between two log rows."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.skipped = 0
        self.tic = time.perf_counter()

    def add(self, values: dict[str, float], count: int = 1) -> None:
        """``values``: sums over ``count`` micro-batches (one optimiser step's worth)."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += count

    def means(self) -> dict[str, float]:
        return {key: value / self.count for key, value in self.sums.items()} if self.count else {}

    def seconds_per_step(self, accum_steps: int) -> float:
        return (time.perf_counter() - self.tic) / max(self.count / accum_steps, 1)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a batch dict moved to ``device``, also inside lists (``boxes``); strings stay."""

    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=True)
        if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            return [item.to(device, non_blocking=True) for item in value]
        return value

    return {key: move(value) for key, value in batch.items()}

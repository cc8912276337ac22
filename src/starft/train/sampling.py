"""Data order and augmentation randomness as pure functions of (seed, epoch, index).

That is what makes ``--resume`` exact: a resumed run re-creates the epoch's permutation, skips the
micro-batches already consumed and draws the same augmentation for every sample, without having
saved any RNG or DataLoader state. It also makes single-process and DDP runs see the same global
batches: micro-batch m of epoch e is ``perm[m·B·W : (m+1)·B·W]`` and rank r takes its r-th slice
of B samples, so a 2-rank run with batch B equals a 1-process run with batch 2B.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from starft.utils.seeding import mix_seed, seeded_generator

__all__ = ["EpochBatchSampler", "SeededSamples", "mix_seed", "seeded_generator"]


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields this rank's micro-batches of ``(epoch, index)`` keys for one epoch.

    ``drop_last`` semantics: only full global batches are used, so every rank gets the same local
    batch size (needed to gather features across ranks).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        num_batches: int | None = None,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.start_batch = start_batch
        full = num_samples // (batch_size * world_size)
        self.num_batches = full if num_batches is None else min(num_batches, full)

    def __len__(self) -> int:
        return max(0, self.num_batches - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        perm = torch.randperm(self.num_samples, generator=seeded_generator(self.seed, self.epoch))
        global_batch = self.batch_size * self.world_size
        for m in range(self.start_batch, self.num_batches):
            start = m * global_batch + self.rank * self.batch_size
            indices = perm[start : start + self.batch_size].tolist()
            yield [(self.epoch, i) for i in indices]


class SeededSamples(Dataset):
    """Wraps a dataset so that sample ``(epoch, index)`` is drawn with its own fixed RNG seed.

    Random augmentations (torchvision transforms use the global torch RNG) then depend only on the
    seed, the epoch and the index, not on the worker or the order samples were loaded in.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, epoch, index))
            return self.dataset[index]

"""The minimal distributed primitives evaluation and training share.

``torchrun`` is the only launcher we support. A single process (``world_size == 1``) never touches
``torch.distributed``, so everything works without a process group and without gloo/NCCL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch.distributed as torch_dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the one process that logs, shows progress bars and writes files."""
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank/world size from the initialised process group, else a single process (0 of 1)."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return DistInfo()
    rank = torch_dist.get_rank()
    # The process group does not know node-local ranks; torchrun exports LOCAL_RANK. Without it
    # (e.g. a single-node mp.spawn launch) the global rank is the local rank.
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return DistInfo(rank=rank, world_size=torch_dist.get_world_size(), local_rank=local_rank)


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """Indices of ``range(n)`` that ``rank`` handles: strided, no padding, no duplicates.

    Unlike ``DistributedSampler`` we never pad the last shard with repeated samples, since repeats
    would be counted twice in every metric. Shards may therefore differ in length by one.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return list(range(rank, n, world_size))


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for a single process).

    Objects are pickled; with NCCL the caller must have set the current CUDA device first
    (``torch.cuda.set_device(local_rank)``), as ``all_gather_object`` stages through it.
    """
    if info.world_size == 1:
        return [obj]
    out: list[Any] = [None] * info.world_size
    torch_dist.all_gather_object(out, obj)
    return out

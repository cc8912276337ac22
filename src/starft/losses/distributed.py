"""Gathering features across ranks for losses that need the global batch.

Contrastive and Star losses use *local loss + gather with gradients*: each rank computes the loss
rows of its own samples against the columns of every rank's samples. ``all_gather`` from
``torch.distributed.nn`` sends gradients back to the rank that owns each column, so after DDP
averages parameter gradients the result equals the gradient of the single-process loss over the
global batch (each rank's loss is the local-row mean; their average is the global mean when local
batches have equal size, which the training loop guarantees with ``drop_last``).

With ``world_size == 1`` nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gather_with_grad(tensor: Tensor, world_size: int) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, differentiably."""
    if world_size == 1:
        return tensor
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(tensor), dim=0)


def gather_no_grad(tensor: Tensor, world_size: int) -> Tensor:
    """Gather ``tensor`` from all ranks along dim 0, without gradient (teacher outputs, labels)."""
    if world_size == 1:
        return tensor
    import torch.distributed as dist

    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)

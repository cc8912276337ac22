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


class _AllGatherCat(torch.autograd.Function):
    """``cat(all_gather(x))`` whose backward sums every rank's gradient into the owner's slice.

    Built on public collectives (``torch.distributed.nn.functional.all_gather`` is deprecated);
    the backward uses ``all_reduce`` + slicing rather than ``reduce_scatter``, which gloo lacks.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        world_size, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rank, ctx.size = rank, tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def gather_with_grad(tensor: Tensor, world_size: int) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, differentiably."""
    if world_size == 1:
        return tensor
    return _AllGatherCat.apply(tensor)


def gather_no_grad(tensor: Tensor, world_size: int) -> Tensor:
    """Gather ``tensor`` from all ranks along dim 0, without gradient (teacher outputs, labels)."""
    if world_size == 1:
        return tensor
    import torch.distributed as dist

    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)

"""Non-finite losses, gradients and weights: found once per optimiser step, then stop or skip.

``optim.on_nonfinite=stop`` (default) ends the run at the first optimiser step whose loss or
gradient is NaN/Inf, naming the step; ``skip`` drops that step's update and counts it. Weights
that are non-finite are never exported, selected or checkpointed.

The check costs one host read per optimiser step, shared with the read of the step's loss values
(there is no read per micro-batch). Under DDP the flags are all-reduced, so every rank takes the
same decision.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

ACTIONS = ("stop", "skip")


def total_grad_norm(params: Iterable[nn.Parameter]) -> Tensor | None:
    """L2 norm over every gradient (NaN/Inf if any entry is), or None without gradients."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    return torch.nn.utils.get_total_norm(grads)


def step_flags(loss_bad: Tensor, grad_norm: Tensor | None, world_size: int) -> Tensor:
    """``[loss non-finite, gradient non-finite]`` as 0/1 floats, agreed by every rank."""
    grad_bad = (
        torch.zeros((), device=loss_bad.device)
        if grad_norm is None
        else (~torch.isfinite(grad_norm)).float().to(loss_bad.device)
    )
    flags = torch.stack([loss_bad.float(), grad_bad])
    if world_size > 1:
        import torch.distributed as dist

        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


def weights_finite(params: Iterable[nn.Parameter]) -> bool:
    flags = [torch.isfinite(p.detach()).all() for p in params]
    return bool(torch.stack(flags).all()) if flags else True


def what_failed(loss_bad: bool, grad_bad: bool) -> str:
    if loss_bad:
        return "loss"
    return "gradient" if grad_bad else "value"

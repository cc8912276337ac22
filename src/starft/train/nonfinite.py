"""Non-finite losses, gradients and weights: found once per optimiser step, then stop or skip.

``optim.on_nonfinite=stop`` (default) ends the run at the first optimiser step whose loss or
gradient is NaN/Inf, naming the step; ``skip`` drops that step's update and counts it. Weights
that are non-finite are never exported, selected or checkpointed.

With ``stop`` nothing is read per step: :class:`DeferredCheck` keeps, on the device, the first
non-finite step since its last read, and the loop reads it together with the logged loss means on
log steps, before a checkpoint and at the end of an epoch, then stops naming that step (the steps
run in between are lost work, never saved weights: a checkpoint reads the check first). Under DDP
that read is one all-reduce (every rank then takes the same decision), on those occasions only.
``skip`` has to decide before each update, so it costs one host read per optimiser step (and one
2-element all-reduce under DDP); both share the read with no other sync (none per micro-batch).
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


#: No non-finite step recorded: the code of a step is ``-(2 * step + kind)`` (kind 0 loss, 1
#: gradient), so the maximum code is the earliest step, a loss preferred to a gradient at a tie.
_NONE = -(2**62)


class DeferredCheck:
    """The first non-finite optimiser step since the last :meth:`take`, kept on the device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pending = 0  # steps recorded since the last take (host count: no read needed)
        self._code = torch.full((), _NONE, dtype=torch.int64, device=device)
        self._none = self._code.clone()

    def record(self, loss_bad: Tensor, grad_norm: Tensor | None, step: int) -> None:
        """Note optimiser step ``step`` (0-based) without reading anything from the device."""
        code = torch.where(loss_bad.to(self.device), -2 * step, self._none)
        if grad_norm is not None:
            grad_bad = ~torch.isfinite(grad_norm.to(self.device))
            code = torch.where(grad_bad & (code == _NONE), -(2 * step + 1), code)
        self._code = torch.maximum(self._code, code)
        self.pending += 1

    def take(self, world_size: int = 1) -> tuple[int, str] | None:
        """``(step, "loss" | "gradient")`` of the first non-finite step recorded (agreed by every
        rank), or None; resets. Free when nothing was recorded since the last call."""
        if not self.pending:
            return None
        code = self._code.clone()
        if world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(code, op=dist.ReduceOp.MAX)
        self.pending = 0
        self._code.fill_(_NONE)
        value = int(code.item())
        if value == _NONE:
            return None
        return (-value) // 2, "loss" if (-value) % 2 == 0 else "gradient"


def weights_finite(params: Iterable[nn.Parameter]) -> bool:
    flags = [torch.isfinite(p.detach()).all() for p in params]
    return bool(torch.stack(flags).all()) if flags else True

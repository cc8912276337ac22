"""Online group DRO (Sagawa et al., 2020, Algorithm 1) and per-group loss statistics.

The robust loss is ``Σ_g q_g · L_g`` with ``L_g`` the mean loss of group g in the batch and ``q``
a distribution over groups updated by exponentiated gradient ascent, ``q_g <- q_g·exp(η·L_g)``,
renormalised (groups absent from a batch keep their factor 1). ``q`` is kept as log-weights.

Ordering: the released code updates ``q`` with the batch's group losses and then weights that same
batch with the new ``q``. Here ``forward`` weights the batch with the current ``q`` and records the
group losses; :meth:`GroupDROLoss.update` (called once per optimiser step) applies the update from
everything recorded since the last one. This lags the update by one step, and makes it well
defined under gradient accumulation and DDP (the statistics are summed over micro-batches and
ranks, so every rank keeps the same ``q``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from starft.errors import StarftError


def group_sums(losses: Tensor, groups: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Per-group sums of ``losses`` ``[N]`` and sample counts, both ``[num_groups]``."""
    sums = losses.new_zeros(num_groups).index_add(0, groups, losses)
    counts = torch.bincount(groups, minlength=num_groups).to(losses.dtype)
    return sums, counts


class GroupDROLoss(nn.Module):
    """``Σ_g q_g·L_g`` over the groups of the batch, with ``q`` updated by :meth:`update`.

    ``num_groups`` 0 grows the table to the largest group id seen (a new group starts with the
    weight the others had at the start); :meth:`resize` fixes it from the training set.
    """

    def __init__(self, num_groups: int = 0, step_size: float = 0.01, world_size: int = 1) -> None:
        super().__init__()
        if step_size < 0:
            raise ValueError(f"step_size must be >= 0, got {step_size}")
        self.step_size = step_size
        self.world_size = world_size
        self.register_buffer("log_weights", torch.zeros(num_groups))
        self.register_buffer("pending_sums", torch.zeros(num_groups))
        self.register_buffer("pending_counts", torch.zeros(num_groups))
        self.fixed = num_groups > 0

    def resize(self, num_groups: int) -> None:
        """Start over with ``num_groups`` groups of equal weight."""
        device = self.log_weights.device
        self.log_weights = torch.zeros(num_groups, device=device)
        self.pending_sums = torch.zeros(num_groups, device=device)
        self.pending_counts = torch.zeros(num_groups, device=device)
        self.fixed = num_groups > 0

    @property
    def weights(self) -> Tensor:
        """The current ``q`` (sums to 1)."""
        return torch.softmax(self.log_weights, dim=0)

    def _grow(self, needed: int) -> None:
        extra = needed - self.log_weights.numel()
        if extra <= 0:
            return
        if self.fixed:
            raise StarftError(
                f"group id {needed - 1} is outside the {self.log_weights.numel()} groups of the "
                "training set"
            )
        self.log_weights = torch.cat([self.log_weights, self.log_weights.new_zeros(extra)])
        self.pending_sums = torch.cat([self.pending_sums, self.pending_sums.new_zeros(extra)])
        self.pending_counts = torch.cat([self.pending_counts, self.pending_counts.new_zeros(extra)])

    def forward(self, losses: Tensor, groups: Tensor) -> dict[str, Tensor]:
        """Robust loss of per-sample ``losses`` ``[n]`` with group ids ``groups`` ``[n]``.

        Under DDP the local group sums are divided by the *global* group counts and scaled by the
        world size, so the mean of the ranks' gradients is the single-process gradient.
        """
        groups = groups.long()
        if groups.numel() and int(groups.min()) < 0:
            raise StarftError(
                "group DRO: a sample has no group (id -1); the dataset has no groups "
                "(use method.groups=discovery with a discovery file)"
            )
        self._grow(int(groups.max()) + 1 if groups.numel() else 0)
        size = self.log_weights.numel()
        sums, counts = group_sums(losses.float(), groups, size)
        total_counts = counts.clone()
        if self.world_size > 1:
            dist.all_reduce(total_counts)
        with torch.no_grad():
            self.pending_sums += sums.detach()
            self.pending_counts += counts
        group_loss = sums * self.world_size / total_counts.clamp(min=1)
        robust = (self.weights.detach() * group_loss).sum()
        return {"robust": robust, "worst_group_loss": (sums / counts.clamp(min=1)).max().detach()}

    @torch.no_grad()
    def update(self) -> None:
        """``q_g <- q_g·exp(η·L_g)``, renormalised, from the losses recorded since the last one."""
        sums, counts = self.pending_sums.clone(), self.pending_counts.clone()
        if self.world_size > 1:
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        mean = sums / counts.clamp(min=1)  # absent groups: 0, factor exp(0) = 1
        logs = self.log_weights + self.step_size * mean
        self.log_weights.copy_(logs - torch.logsumexp(logs, dim=0))
        self.pending_sums.zero_()
        self.pending_counts.zero_()

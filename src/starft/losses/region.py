"""RaVL's region-aware loss as a module (global-batch aware), returning two named terms."""

from __future__ import annotations

from torch import Tensor, nn

from starft.losses.distributed import gather_no_grad, gather_with_grad
from starft.losses.functional import region_text_losses_local

RAVL_TEMPERATURE = 0.07


class RegionAwareLoss(nn.Module):
    """Region→text ``L_R`` and text→region ``L_A`` with spurious regions only as negatives.

    ``temperature`` is RaVL's fixed τ (0.07), not the model's learned scale. Under DDP the local
    rows are compared with every rank's regions and texts; every rank must pad its regions to the
    same M (``valid`` marks the real ones).
    """

    def __init__(
        self,
        temperature: float = RAVL_TEMPERATURE,
        reduction: str = "mean",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.temperature = temperature
        self.reduction = reduction
        self.rank = rank
        self.world_size = world_size

    def forward(
        self,
        region_features: Tensor,
        text_features: Tensor,
        labels: Tensor,
        spurious: Tensor,
        valid: Tensor | None = None,
    ) -> dict[str, Tensor]:
        if valid is None:
            valid = spurious.new_ones(spurious.shape, dtype=spurious.dtype).bool()
        loss_r, loss_a = region_text_losses_local(
            region_features,
            text_features,
            labels,
            spurious,
            valid,
            gather_with_grad(region_features, self.world_size),
            gather_with_grad(text_features, self.world_size),
            gather_no_grad(labels, self.world_size),
            gather_no_grad(spurious, self.world_size),
            gather_no_grad(valid, self.world_size),
            offset=self.rank * region_features.shape[0],
            temperature=self.temperature,
            reduction=self.reduction,
        )
        return {"region_to_text": loss_r, "text_to_region": loss_a}

"""StarFT's spurious textual alignment regulariser as a module (global-batch aware)."""

from __future__ import annotations

from torch import Tensor, nn

from starft.losses.distributed import gather_no_grad, gather_with_grad
from starft.losses.functional import star_regularization_local


class StarLoss(nn.Module):
    """KL(teacher ‖ student) over masked spurious-caption logits; returns ``{"star": t}``.

    The local rows (this rank's images) are compared with the spurious captions of the whole global
    batch, so the same-class mask and the negatives cover every rank's samples.
    """

    def __init__(self, mask_same_class: bool = True, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.mask_same_class = mask_same_class
        self.rank = rank
        self.world_size = world_size

    def forward(
        self,
        image_features: Tensor,
        spurious_text_features: Tensor,
        teacher_image_features: Tensor,
        teacher_spurious_text_features: Tensor,
        labels: Tensor,
        logit_scale: Tensor | float,
    ) -> dict[str, Tensor]:
        loss = star_regularization_local(
            image_features,
            gather_with_grad(spurious_text_features, self.world_size),
            teacher_image_features,
            gather_no_grad(teacher_spurious_text_features, self.world_size),
            labels,
            gather_no_grad(labels, self.world_size),
            logit_scale,
            mask_same_class=self.mask_same_class,
        )
        return {"star": loss}

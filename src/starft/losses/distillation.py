"""CaRot's self-distillation loss as a module that owns its distributed gather."""

from __future__ import annotations

from torch import Tensor, nn

from starft.losses.distributed import gather_no_grad, gather_with_grad
from starft.losses.functional import self_distillation_loss_local


class SelfDistillationLoss(nn.Module):
    """Soft-CE of student image<->text logits against an EMA teacher's -> ``{"self_distillation"}``.

    Like :class:`~starft.losses.ClipLoss`, the local rows are compared with the columns of the
    global batch: student features are gathered with gradients, teacher features without, so
    under DDP the mean of the ranks' losses (and DDP's averaged gradients) equal one process
    over the global batch.
    """

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.rank = rank
        self.world_size = world_size

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        teacher_image_features: Tensor,
        teacher_text_features: Tensor,
        logit_scale: Tensor | float,
        teacher_logit_scale: Tensor | float,
    ) -> dict[str, Tensor]:
        loss = self_distillation_loss_local(
            image_features,
            text_features,
            gather_with_grad(image_features, self.world_size),
            gather_with_grad(text_features, self.world_size),
            teacher_image_features,
            teacher_text_features,
            gather_no_grad(teacher_image_features, self.world_size),
            gather_no_grad(teacher_text_features, self.world_size),
            logit_scale,
            teacher_logit_scale,
        )
        return {"self_distillation": loss}

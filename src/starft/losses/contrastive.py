"""CLIP / FLYP contrastive loss as a module that owns its distributed gather."""

from __future__ import annotations

from torch import Tensor, nn

from starft.losses.distributed import gather_with_grad
from starft.losses.functional import clip_contrastive_loss_local


class ClipLoss(nn.Module):
    """Symmetric image-text contrastive loss over the global batch -> ``{"contrastive": t}``."""

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.rank = rank
        self.world_size = world_size

    def forward(
        self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor
    ) -> dict[str, Tensor]:
        all_images = gather_with_grad(image_features, self.world_size)
        all_texts = gather_with_grad(text_features, self.world_size)
        offset = self.rank * image_features.shape[0]
        loss = clip_contrastive_loss_local(
            image_features, text_features, all_images, all_texts, logit_scale, offset
        )
        return {"contrastive": loss}

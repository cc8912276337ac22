"""RaVL stage 2: FLYP plus the region-aware loss, with discovered spurious regions as negatives.

L = L_C + w·(L_R + L_A). The training regions of every image (a k x k grid or the samples' boxes)
are embedded by the trained model through ``region_features``; a region is spurious when a frozen
copy of the starting model puts it nearest a medoid of a cluster that ``starft discover`` kept
(``method.discovery``). In L_R (region -> text) and L_A (text -> region) an image is represented by
its best non-spurious region (the max over them), and spurious regions of the whole batch appear
only in the denominators; τ is RaVL's fixed 0.07, not the model's scale. Without a discovery
file no region is spurious and the term only pulls each image's best region to its caption.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from starft.errors import StarftError
from starft.losses import RegionAwareLoss
from starft.method_configs import RaVLConfig
from starft.methods.base import StepInfo, Task
from starft.methods.flyp import FLYP
from starft.methods.spurious_regions import SpuriousRegions, pad_regions
from starft.models import ClipModel


class RaVL(FLYP):
    """Contrastive fine-tuning + RaVL's region-aware loss."""

    Config = RaVLConfig

    def __init__(
        self,
        model: ClipModel,
        task: Task,
        config: RaVLConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(model, task, config, rank, world_size)
        self.regions = SpuriousRegions(model, config.discovery, config.regions)
        if world_size > 1 and not isinstance(self.regions.spec, int):
            # The DDP region loss needs the same region count on every rank; boxes vary per image.
            raise StarftError(
                "method ravl: regions=boxes runs on one process only; use regions=grid:K under DDP"
            )
        self.region_loss = RegionAwareLoss(config.temperature, rank=rank, world_size=world_size)

    def region_terms(
        self, batch: dict[str, Any], text_features: Tensor
    ) -> tuple[dict[str, Tensor], Tensor]:
        """``L_R``, ``L_A`` of the batch and the spurious share of its regions."""
        images = batch["image"]
        boxes = self.regions.boxes(batch)
        counts = [len(b) for b in boxes]
        spurious_flat = self.regions.flags(images, boxes)
        features = self.model.region_features(images, boxes, method=self.config.region_method)
        regions, valid = pad_regions(features, counts)
        spurious, _ = pad_regions(spurious_flat[:, None].float(), counts)
        terms = self.region_loss(
            regions, text_features, batch["label"], spurious[..., 0].bool(), valid
        )
        share = (
            spurious_flat.float().mean() if spurious_flat.numel() else spurious_flat.new_zeros(())
        )
        return terms, share.float()

    def forward(self, batch: dict[str, Any], step: StepInfo) -> dict[str, Tensor]:
        captions = self.class_captions(batch, step)
        image_features, (text_features,) = self.encode(batch["image"], [captions])
        terms = self.clip_loss(image_features, text_features, self.model.scale())
        region, spurious_share = self.region_terms(batch, text_features)
        region_loss = region["region_to_text"] + region["text_to_region"]
        return {
            **terms,
            **region,
            "loss": terms["contrastive"] + self.config.region_weight * region_loss,
            "spurious_regions": spurious_share.detach(),
        }

"""Training regions of a batch and which of them are spurious, for RaVL stage 2 and baselines.

Regions are a k x k grid of the model input (``grid:K``) or the samples' ``boxes`` field. With a
discovery file, each region is embedded by a *frozen* copy of the model at the start of training
(the model discovery ran on; the region method discovery used) and assigned to the nearest medoid
(:class:`~starft.discovery.assign.SpuriousMedoids`): the split never moves while the trained model
does. Without one, no region is spurious.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from starft.discovery.assign import SpuriousMedoids
from starft.discovery.inputs import grid_pixel_boxes, parse_regions
from starft.errors import StarftError
from starft.methods.teacher import FrozenTeacher
from starft.models import ClipModel


def pad_regions(features: Tensor, counts: list[int]) -> tuple[Tensor, Tensor]:
    """``[sum K_i, D]`` region rows -> ``[B, M, D]`` (zeros past K_i) and ``valid`` ``[B, M]``."""
    batch, width = len(counts), max(counts, default=0)
    padded = features.new_zeros(batch, width, features.shape[-1])
    valid = torch.zeros(batch, width, dtype=torch.bool, device=features.device)
    start = 0
    for i, count in enumerate(counts):
        padded[i, :count] = features[start : start + count]
        valid[i, :count] = True
        start += count
    return padded, valid


class SpuriousRegions(nn.Module):
    """Boxes of a batch's training regions and their spurious flags (a frozen assigner)."""

    def __init__(self, model: ClipModel, discovery: str, regions: str) -> None:
        super().__init__()
        self.spec = parse_regions(regions)
        self.image_size = tuple(model.image_size)
        self.medoids = SpuriousMedoids.load(discovery) if discovery else None
        self.teacher: FrozenTeacher | None = None
        if self.medoids is not None:
            self.medoids.check_dim(model.embed_dim)
            self.teacher = FrozenTeacher(model, cache_text=False)

    def boxes(self, batch: dict[str, Any]) -> list[Tensor]:
        """One ``[K_i, 4]`` pixel-box tensor per image of the batch."""
        images = batch["image"]
        if isinstance(self.spec, int):
            grid = grid_pixel_boxes(self.spec, self.image_size).to(images.device)
            return [grid] * images.shape[0]
        if "boxes" not in batch:
            raise StarftError(
                "regions=boxes, but the batch has no 'boxes' field (build the dataset with its "
                "boxes, e.g. fields=boxes, or use grid:K regions)"
            )
        return [torch.as_tensor(b, dtype=torch.float32).to(images.device) for b in batch["boxes"]]

    def flags(self, images: Tensor, boxes: list[Tensor]) -> Tensor:
        """``[sum K_i]`` bool: each region's nearest medoid is a discovered cluster's."""
        total = sum(len(b) for b in boxes)
        if self.medoids is None or self.teacher is None or total == 0:
            return torch.zeros(total, dtype=torch.bool, device=images.device)
        with torch.inference_mode():
            embedded = self.teacher.model.region_features(
                images, boxes, method=self.medoids.region_method
            )
            flags = self.medoids.is_spurious(embedded)
        return flags.clone()

    def image_flags(self, batch: dict[str, Any]) -> Tensor:
        """``[B]`` bool: the image has at least one spurious region."""
        boxes = self.boxes(batch)
        flags = self.flags(batch["image"], boxes)
        counts = [len(b) for b in boxes]
        owner = torch.repeat_interleave(
            torch.arange(len(counts), device=flags.device),
            torch.tensor(counts, device=flags.device),
        )
        out = torch.zeros(len(counts), dtype=torch.bool, device=flags.device)
        return out.index_put_((owner[flags],), torch.ones_like(owner[flags], dtype=torch.bool))

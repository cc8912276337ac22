"""Region (box) embeddings: the crop-and-encode reference and helpers for the fast paths.

A box is ``(x1, y1, x2, y2)`` in pixel coordinates of the *model input* (the preprocessed image
tensor), continuous coordinates as in ``torchvision.ops.roi_align(aligned=True)``: the image
covers ``[0, W] x [0, H]``.

* Crop-and-encode (any backbone): each box is resampled to the model's input size and encoded on
  its own. The resampling is ``roi_align`` on the image with adaptive sampling (an area-averaging
  bilinear crop-and-resize), so all boxes go through the image tower in batches.
* The fast paths (one pass of the image tower per image) live in the backends: RoIAlign on a
  ModifiedResNet's layer3 followed by layer4 and the attention pool; pooled patch tokens, final
  norm and projection for ViTs. :func:`roi_tokens` resamples a ViT's token grid inside the boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from starft.errors import StarftError

if TYPE_CHECKING:
    from starft.models.protocol import ClipModel


def check_boxes(images: Tensor, boxes: Sequence[Tensor]) -> list[Tensor]:
    """``boxes`` as float tensors on the images' device, or a one-line error naming the box."""
    if images.ndim != 4:
        raise StarftError(f"region features need images [B, 3, H, W], got {tuple(images.shape)}")
    if len(boxes) != images.shape[0]:
        raise StarftError(f"got boxes for {len(boxes)} images but {images.shape[0]} images")
    height, width = images.shape[-2:]
    out = []
    for i, box in enumerate(boxes):
        box = torch.as_tensor(box, dtype=torch.float32).to(images.device)
        if box.ndim != 2 or box.shape[1] != 4:
            raise StarftError(f"boxes of image {i} must be [K, 4], got {tuple(box.shape)}")
        bad = (
            ~torch.isfinite(box).all(dim=1)
            | (box[:, 2] <= box[:, 0])
            | (box[:, 3] <= box[:, 1])
            | (box[:, :2] < 0).any(dim=1)
            | (box[:, 2] > width)
            | (box[:, 3] > height)
        )
        if bad.any():
            k = int(bad.nonzero()[0])
            raise StarftError(
                f"box {k} of image {i} {box[k].tolist()} is not (x1, y1, x2, y2) with "
                f"0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}"
            )
        out.append(box)
    return out


def _rois(boxes: Sequence[Tensor]) -> Tensor:
    """``[K, 5]`` rows ``(image index, x1, y1, x2, y2)`` for ``torchvision.ops.roi_align``."""
    rows = [
        torch.cat([torch.full((len(b), 1), float(i), device=b.device, dtype=b.dtype), b], dim=1)
        for i, b in enumerate(boxes)
    ]
    return torch.cat(rows) if rows else torch.zeros(0, 5)


def roi_resample(
    maps: Tensor, boxes: Sequence[Tensor], output_size: tuple[int, int], spatial_scale: float
) -> Tensor:
    """``[K, C, oh, ow]``: every box of ``maps [B, C, h, w]`` resampled (RoIAlign, aligned)."""
    from torchvision.ops import roi_align

    rois = _rois(boxes).to(device=maps.device, dtype=maps.dtype)
    return roi_align(
        maps, rois, output_size, spatial_scale=spatial_scale, sampling_ratio=-1, aligned=True
    )


def crop_and_encode(model: ClipModel, images: Tensor, boxes: Sequence[Tensor]) -> Tensor:
    """Unnormalised features of every box, each resampled to the input size and encoded alone."""
    crops = roi_resample(images, boxes, model.image_size, spatial_scale=1.0)
    if crops.shape[0] == 0:
        return images.new_zeros(0, model.embed_dim)
    chunk = max(64, images.shape[0])  # as many crops per pass as the caller's batch of images
    return torch.cat(
        [model.encode_image(crops[i : i + chunk]) for i in range(0, crops.shape[0], chunk)]
    )


def roi_tokens(
    tokens: Tensor, grid: tuple[int, int], boxes: Sequence[Tensor], image_size: tuple[int, int]
) -> Tensor:
    """Patch tokens ``[B, N, D]`` on a ``grid`` resampled inside each box: ``[K, gh*gw, D]``.

    Each box is resampled to the full token grid (RoIAlign on the token map, a token being the
    value at its patch centre), so a box covering the whole image returns the tokens themselves.
    """
    batch, count, dim = tokens.shape
    gh, gw = grid
    if count != gh * gw:
        raise StarftError(f"{count} patch tokens do not form a {gh}x{gw} grid")
    maps = tokens.transpose(1, 2).reshape(batch, dim, gh, gw)
    scale_y, scale_x = gh / image_size[0], gw / image_size[1]
    if abs(scale_y - scale_x) > 1e-6:
        # roi_align has one spatial scale: rescale the x coordinates to the y scale.
        boxes = [
            b * torch.tensor([scale_x / scale_y, 1, scale_x / scale_y, 1]).to(b) for b in boxes
        ]
    pooled = roi_resample(maps, boxes, (gh, gw), spatial_scale=scale_y)
    return pooled.flatten(2).transpose(1, 2)

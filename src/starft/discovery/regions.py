"""Regions as boxes: k x k grids; crops of PIL images or image tensors resized to a model's size.

Boxes are ``(x0, y0, x1, y1)`` in *normalised* image coordinates (fractions of width and height),
so the same boxes apply to an original image of any size and to a preprocessed tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from starft.errors import StarftError


def grid_boxes(k: int = 2) -> Tensor:
    """The ``k*k`` cells of a k x k grid, row by row, ``[k², 4]`` (RaVL's quadrants for k = 2)."""
    if not isinstance(k, int) or k < 1:
        raise StarftError(f"grid regions: k must be an integer >= 1, got {k!r}")
    edges = torch.arange(k + 1, dtype=torch.float64) / k
    rows = [(edges[c], edges[r], edges[c + 1], edges[r + 1]) for r in range(k) for c in range(k)]
    return torch.tensor(rows, dtype=torch.float64)


def check_boxes(boxes: Tensor) -> Tensor:
    """``[M, 4]`` float boxes with ``0 <= x0 < x1 <= 1`` and ``0 <= y0 < y1 <= 1``."""
    boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
        raise StarftError(f"regions: boxes must have shape [M >= 1, 4], got {tuple(boxes.shape)}")
    x0, y0, x1, y1 = boxes.unbind(1)
    bad = ~((x0 >= 0) & (y0 >= 0) & (x1 <= 1) & (y1 <= 1) & (x0 < x1) & (y0 < y1))
    if bad.any():
        box = [round(v, 4) for v in boxes[int(bad.nonzero()[0])].tolist()]
        raise StarftError(f"regions: box {box} is not (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1 ...")
    return boxes


def pixel_box(box: Tensor, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel bounds covering the box (at least one pixel each way)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    left, top = (
        min((math.floor(x0 * width)), width - 1),
        min((math.floor(y0 * height)), height - 1),
    )
    right = max((math.ceil(x1 * width)), left + 1)
    bottom = max((math.ceil(y1 * height)), top + 1)
    return left, top, right, bottom


def crop_image(image: Image.Image, boxes: Tensor, size: tuple[int, int]) -> list[Image.Image]:
    """Crop every box from an untransformed PIL image and resize it to ``size`` (width, height)."""
    width, height = image.size
    return [
        image.crop(pixel_box(box, width, height)).resize(size, Image.Resampling.BICUBIC)
        for box in check_boxes(boxes)
    ]


def crop_tensor(images: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop boxes from a batch ``[B, C, H, W]`` and resize each to ``size`` (height, width).

    ``boxes`` is ``[M, 4]`` (same boxes for every image) and the result ``[B, M, C, h, w]``.
    Bilinear with antialiasing, so a downscaled crop is not aliased.
    """
    boxes = check_boxes(boxes)
    height, width = images.shape[-2:]
    crops = []
    for box in boxes:
        left, top, right, bottom = pixel_box(box, width, height)
        patch = images[..., top:bottom, left:right]
        crops.append(
            F.interpolate(patch, size=size, mode="bilinear", antialias=True, align_corners=False)
        )
    return torch.stack(crops, dim=1)

"""Regions as boxes: k x k grids, and the pixels a box covers (for showing crops).

``grid_boxes`` gives *normalised* ``(x0, y0, x1, y1)`` cells (fractions of width and height), so
one grid applies to an image of any size; discovery scales them to the model input's pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from starft.errors import StarftError


def grid_boxes(k: int = 2) -> Tensor:
    """The ``k*k`` cells of a k x k grid, row by row, ``[k², 4]`` (RaVL's quadrants for k = 2)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise StarftError(f"grid regions: k must be an integer >= 1, got {k!r}")
    edges = torch.arange(k + 1, dtype=torch.float64) / k
    rows = [(edges[c], edges[r], edges[c + 1], edges[r + 1]) for r in range(k) for c in range(k)]
    return torch.tensor(rows, dtype=torch.float64)


def pixel_bounds(box: Tensor, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer ``(left, top, right, bottom)`` covering a pixel box, at least one pixel each way,
    clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    left = min(max(math.floor(x0), 0), width - 1)
    top = min(max(math.floor(y0), 0), height - 1)
    right = min(max(math.ceil(x1), left + 1), width)
    bottom = min(max(math.ceil(y1), top + 1), height)
    return left, top, right, bottom

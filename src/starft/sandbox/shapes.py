"""Object geometry: the canonical signed distance of every shape and its placement in an image.

Each shape is a signed-distance function (SDF) in a canonical frame, tabulated once per process
on a fine grid (:func:`sdf_table`); placing an object (:func:`place_object`) looks every pixel
up in that table through the inverse rotation and scale, which keeps the per-image cost to a
few vectorised numpy operations. Shapes are keyed by their word; the sandbox world
(:mod:`starft.sandbox.world`) maps attribute ids to words.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Every shape is defined in a canonical frame where it fits inside the unit circle, so any
# rotation of an object of radius r placed r pixels from the border stays inside the image.

_SDF_EXTENT = 1.25  # the canonical SDF table covers [-E, E]^2 ...
_SDF_CELLS = 256  # ... with this many cells a side (0.01 units: sub-pixel at 64 px)


def _segments_sdf(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Exact signed distance to a closed polygon (negative inside).

    A loop over edges with whole-grid operations: cheap (it runs once per shape and process)
    and light on memory, unlike one (edges x points) broadcast.
    """
    dist = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(vertices, np.roll(vertices, -1, axis=0)):
        ex, ey = bx - ax, by - ay
        rx, ry = px - ax, py - ay
        t = np.clip((rx * ex + ry * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        np.minimum(dist, np.hypot(rx - ex * t, ry - ey * t), out=dist)
        if ay != by:  # even-odd crossing test along +x for the sign
            straddle = (ay > py) != (by > py)
            inside ^= straddle & (px < ax + (py - ay) * ex / ey)
    return np.where(inside, -dist, dist)


def _box_sdf(px: np.ndarray, py: np.ndarray, hx: float, hy: float) -> np.ndarray:
    qx, qy = np.abs(px) - hx, np.abs(py) - hy
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _regular(n: int, radius: float, start: float) -> np.ndarray:
    angles = start + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], -1)


def _star_vertices() -> np.ndarray:
    outer = _regular(5, 0.98, -np.pi / 2)
    inner = _regular(5, 0.42, -np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], 1).reshape(-1, 2)


def _heart_vertices() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    points = np.stack([x, y], -1)
    points -= (points.max(0) + points.min(0)) / 2
    return points * (0.97 / np.hypot(points[:, 0], points[:, 1]).max())


def _arrow_vertices() -> np.ndarray:
    return np.array(
        [
            [-0.95, -0.2],
            [0.2, -0.2],
            [0.2, -0.55],
            [0.98, 0.0],
            [0.2, 0.55],
            [0.2, 0.2],
            [-0.95, 0.2],
        ]
    )


ShapeSdf = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Canonical SDFs. "diamond" is a tall rhombus, not a rotated square, so that the two stay
# distinguishable under random rotation; "moon" is a crescent (a circle minus a shifted circle).
SHAPES: dict[str, ShapeSdf] = {
    "circle": lambda x, y: np.hypot(x, y) - 0.8,
    "square": lambda x, y: _box_sdf(x, y, 0.64, 0.64),
    "triangle": lambda x, y: _segments_sdf(x, y, _regular(3, 0.98, -np.pi / 2)),
    "star": lambda x, y: _segments_sdf(x, y, _star_vertices()),
    "heart": lambda x, y: _segments_sdf(x, y, _heart_vertices()),
    "cross": lambda x, y: np.minimum(_box_sdf(x, y, 0.86, 0.27), _box_sdf(x, y, 0.27, 0.86)),
    "ring": lambda x, y: np.abs(np.hypot(x, y) - 0.7) - 0.22,
    "diamond": lambda x, y: _segments_sdf(
        x, y, np.array([[0.0, -0.98], [0.58, 0.0], [0.0, 0.98], [-0.58, 0.0]])
    ),
    "moon": lambda x, y: np.maximum(np.hypot(x, y) - 0.9, 0.72 - np.hypot(x - 0.42, y + 0.12)),
    "arrow": lambda x, y: _segments_sdf(x, y, _arrow_vertices()),
}


@functools.cache
def canonical_grid() -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates ``(x, y)`` of the canonical tables, each ``(_SDF_CELLS,)*2``.

    Every per-cell table (the SDF, the part labels of :mod:`starft.sandbox.layers`) is laid out
    on this grid, so one lookup index (:attr:`PlacedObject.cells`) serves them all.
    """
    centres = (np.arange(_SDF_CELLS) + 0.5) * (2 * _SDF_EXTENT / _SDF_CELLS) - _SDF_EXTENT
    px, py = np.meshgrid(centres, centres)
    px.flags.writeable = False
    py.flags.writeable = False
    return px, py


@functools.cache
def sdf_table(name: str) -> np.ndarray:
    """The flattened canonical SDF of shape ``name`` on a _SDF_CELLS² grid (float32)."""
    px, py = canonical_grid()
    return SHAPES[name](px, py).astype(np.float32).ravel()


@dataclass(frozen=True)
class Grid:
    """Per-size constants shared by every image of that size."""

    size: int
    axis: np.ndarray  # pixel centres 0.5 .. size-0.5
    centred: np.ndarray  # pixel centres in units of the side, -0.5 .. 0.5
    light: np.ndarray  # (size, size, 1) gentle top-right to bottom-left illumination falloff
    hatch: np.ndarray  # diagonal hatching lines for sketches, 0/1


@functools.cache
def pixel_grid(size: int) -> Grid:
    """The constants of ``size`` x ``size`` images, computed once per size."""
    axis = np.arange(size, dtype=np.float32) + 0.5
    centred = axis / size - 0.5
    period = max(3, round(size / 12))
    diag = (np.arange(size)[:, None] + np.arange(size)[None, :]) % period
    return Grid(
        size=size,
        axis=axis,
        centred=centred,
        light=(1.0 + 0.12 * (centred[None, :] - centred[:, None]))[..., None],
        hatch=(diag == 0).astype(np.float32),
    )


@dataclass
class PlacedObject:
    """One placed object: its signed distance in pixels and its light-facing gradient.

    ``cells`` is the canonical-table cell each pixel looked up: other per-cell tables (part
    labels) are read through it, so they follow the object's pose without new geometry.
    """

    d: np.ndarray  # (S, S) signed distance in pixels, negative inside
    facing: np.ndarray  # (S, S) in about [-1, 1]: +1 on the side facing the light
    radius: float
    cells: np.ndarray  # (S, S) flat index into the canonical tables


def place_object(name: str, grid: Grid, rng: np.random.Generator) -> PlacedObject:
    """Random scale (35-65% of the side), rotation and position fully inside the image."""
    size = grid.size
    radius = size * rng.uniform(0.35, 0.65) / 2
    margin = radius + 0.75
    cx, cy = rng.uniform(margin, size - margin, size=2)
    angle = rng.uniform(0.0, 2 * np.pi)
    light = rng.uniform(0.0, 2 * np.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    dx = (grid.axis - cx)[None, :]
    dy = (grid.axis - cy)[:, None]
    scale = _SDF_CELLS / (2 * _SDF_EXTENT * radius)  # pixels -> table cells
    offset = _SDF_CELLS / 2
    # Inverse rotation of the pixel grid into the canonical frame, then a nearest-cell lookup.
    iu = (dx * (cos * scale) + dy * (sin * scale)) + offset
    iv = (dy * (cos * scale) - dx * (sin * scale)) + offset
    np.clip(iu, 0, _SDF_CELLS - 1, out=iu)
    np.clip(iv, 0, _SDF_CELLS - 1, out=iv)
    cells = iv.astype(np.intp) * _SDF_CELLS + iu.astype(np.intp)
    d = sdf_table(name).take(cells)
    d *= radius
    facing = dx * (math.cos(light) / radius) + dy * (math.sin(light) / radius)
    return PlacedObject(d=d, facing=facing, radius=radius, cells=cells)

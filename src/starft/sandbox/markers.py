"""Markers: small glyphs in one cell of a region grid, never on the object, with their boxes.

A marker is the sandbox's controllable spurious feature (RaVL's setting): which images carry one
is decided per class (:mod:`starft.sandbox.contingency`), where it goes is drawn here from the
image's own *marker* stream, ``default_rng((seed, MARKER_STREAM, 2, index))`` (four words, so it
never coincides with a render stream ``(seed, index)`` or a table stream ``(seed, _, 1)``). The
base image is drawn first and left untouched outside the glyph's pixels, so a marked image equals
its unmarked twin wherever there is no marker, and the object's masks are unchanged.

Placement: a square box of ``side`` x the image side (whatever the grid), in a cell chosen
uniformly among the cells with room for it ``clearance`` x the image side away from the object,
at a uniform position among that cell's clear ones (the object's signed distance, replayed, is the
test, so the shadow a photo drops is kept clear too).
Glyph kinds, colours and the grid are data (``resources/sandbox/markers.json``); outlines are code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.shapes import PlacedObject
from starft.sandbox.styles import coverage, to_uint8

_MARKERS = "markers.json"
MARKER_STREAM = 0x3A4CE
_MIN_SIDE = 5  # a glyph smaller than this is a smudge, not a recognisable mark


def _bar(u: np.ndarray, v: np.ndarray, hu: float, hv: float) -> np.ndarray:
    qu, qv = np.abs(u) - hu, np.abs(v) - hv
    return np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0)) + np.minimum(np.maximum(qu, qv), 0.0)


def _plus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.minimum(_bar(u, v, 0.62, 0.2), _bar(u, v, 0.2, 0.62))


def _xmark(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a, b = (u + v) / math.sqrt(2), (v - u) / math.sqrt(2)
    return _plus(a * 0.8, b * 0.8) / 0.8  # rotated 45 degrees, arms stretched to the corners


# Glyph outlines in a canonical box [-1, 1]^2 (signed distance in box half-sides, negative
# inside). They stay within 0.7 of the centre so the 1 px outline fits inside the box.
GLYPHS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "plus": _plus,
    "dot": lambda u, v: np.hypot(u, v) - 0.55,
    "xmark": _xmark,
}


@dataclass(frozen=True)
class MarkerStyle:
    """The marker settings of ``markers.json``: grid, box side and clearance, glyph colours."""

    grid: int
    side: float
    clearance: float
    outline: np.ndarray  # (3,) float32 in [0, 1]
    colours: dict[str, np.ndarray]  # kind -> (3,) float32 in [0, 1]


def _rgb(value: Any, where: str) -> np.ndarray:
    if not (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(c, int) and 0 <= c <= 255 for c in value)
    ):
        raise StarftError(f"sandbox {_MARKERS}: {where} must be [r, g, b] with ints 0-255")
    return np.array(value, np.float32) / 255.0


@functools.cache
def marker_style() -> MarkerStyle:
    """``markers.json``, checked once: every kind has a glyph, numbers are in range."""
    data = read_sandbox_json(_MARKERS)
    grid, side, clearance = data.get("grid"), data.get("side"), data.get("clearance")
    if not isinstance(grid, int) or grid < 1:
        raise StarftError(f"sandbox {_MARKERS}: 'grid' must be an integer >= 1")
    if not isinstance(side, (int, float)) or not 0 < side <= 1:
        raise StarftError(f"sandbox {_MARKERS}: 'side' must lie in (0, 1]")
    if not isinstance(clearance, (int, float)) or not 0 <= clearance < 0.5:
        raise StarftError(f"sandbox {_MARKERS}: 'clearance' must lie in [0, 0.5)")
    kinds = data.get("kinds")
    if not isinstance(kinds, dict) or not kinds:
        raise StarftError(f"sandbox {_MARKERS}: 'kinds' must map glyph names to colours")
    unknown = [kind for kind in kinds if kind not in GLYPHS]
    if unknown:
        raise StarftError(
            f"sandbox {_MARKERS}: no glyph for kind '{unknown[0]}' (known: {', '.join(GLYPHS)})"
        )
    return MarkerStyle(
        grid=grid,
        side=float(side),
        clearance=float(clearance),
        outline=_rgb(data.get("outline_rgb"), "'outline_rgb'"),
        colours={
            kind: _rgb(entry.get("rgb"), f"kind '{kind}' rgb") for kind, entry in kinds.items()
        },
    )


def marker_kinds() -> list[str]:
    """The marker kinds, in id order (a box's label is its kind's index here)."""
    return list(marker_style().colours)


def check_marker(kind: str, grid: int, size: int) -> int:
    """The side in pixels of a ``kind`` marker (the same for every grid) that must fit a cell of
    a ``grid`` x ``grid`` grid on a ``size`` image."""
    if kind not in marker_style().colours:
        raise StarftError(f"unknown marker kind '{kind}' (known: {', '.join(marker_kinds())})")
    if not isinstance(grid, int) or grid < 1:
        raise StarftError(f"marker grid must be an integer >= 1, got {grid!r}")
    side = max(_MIN_SIDE, round(size * marker_style().side))
    cell = size // grid
    if side > cell:
        raise StarftError(
            f"a marker grid of {grid} at {size} px has {cell} px cells, smaller than the "
            f"{side} px marker"
        )
    return side


def marker_stream(seed: int, index: int) -> np.random.Generator:
    """The marker generator of row ``index`` of a dataset rendered with ``seed``."""
    return np.random.default_rng((seed, MARKER_STREAM, 2, index))


def place_marker(
    obj: PlacedObject, kind: str, grid: int, rng: np.random.Generator
) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of a marker box clear of ``obj``; raises when no cell has room.

    A cell is chosen uniformly among those with at least one clear position for the box inside
    it, then the position uniformly among that cell's clear positions.
    """
    size = obj.d.shape[0]
    side = check_marker(kind, grid, size)
    clear = 0.5 + marker_style().clearance * size  # coverage is 0 where d >= 0.5
    # fits[y, x]: the box with top-left pixel (x, y) keeps ``clear`` from the object.
    windows = np.lib.stride_tricks.sliding_window_view(obj.d, (side, side))
    fits = windows.min(axis=(2, 3)) >= clear
    edges = [round(size * j / grid) for j in range(grid + 1)]
    cells = []
    for row in range(grid):
        for col in range(grid):
            y0, y1 = edges[row], edges[row + 1] - side + 1  # top-left rows keeping it inside
            x0, x1 = edges[col], edges[col + 1] - side + 1
            ys, xs = np.nonzero(fits[y0:y1, x0:x1])
            if len(ys):
                cells.append((x0 + xs, y0 + ys))
    if not cells:
        raise StarftError(
            f"no cell of a {grid}x{grid} marker grid has room clear of the object "
            f"(object radius {obj.radius:.1f} px in a {size} px image): use a finer grid"
        )
    xs, ys = cells[int(rng.integers(len(cells)))]
    pick = int(rng.integers(len(xs)))
    return int(xs[pick]), int(ys[pick]), side


def draw_marker(image: np.ndarray, kind: str, x0: int, y0: int, side: int) -> None:
    """Draw a ``kind`` glyph into the uint8 ``image`` box in place; other pixels keep their
    bytes."""
    style = marker_style()
    centres = (np.arange(side, dtype=np.float32) + 0.5) * (2.0 / side) - 1.0
    u, v = np.meshgrid(centres, centres)
    d = GLYPHS[kind](u, v) * (side / 2)  # canonical half-sides -> pixels
    fill, ink = coverage(d), coverage(d - 1.0)  # the outline is the glyph grown by 1 px
    box = image[y0 : y0 + side, x0 : x0 + side]
    base = box.astype(np.float32) / 255.0
    outlined = base + (style.outline - base) * ink[..., None]
    drawn = outlined + (style.colours[kind] - outlined) * fill[..., None]
    box[...] = np.where((ink > 0)[..., None], to_uint8(drawn), box)


def xyxy(x0: int, y0: int, side: int) -> np.ndarray:
    """The float32 ``[x0, y0, x1, y1]`` pixel-edge box of a marker (torchvision's XYXY)."""
    return np.array([x0, y0, x0 + side, y0 + side], np.float32)

"""Exact object, scene and part masks of sandbox images, replayed from each image's own stream.

:func:`~starft.sandbox.world.render` places the object before drawing anything else, so the
object of row ``i`` is recovered by replaying that one draw (:func:`row_object`): no pixel is
read and nothing is re-rendered. From the placed object:

- the **object mask** is the anti-aliased coverage the styles blend with (soft), or coverage
  >= 0.5, i.e. the pixel centre inside the shape (binary); the **scene mask** is its complement;
- **part masks** look a per-cell part label up through the same canonical cells as the signed
  distance (:attr:`~starft.sandbox.shapes.PlacedObject.cells`), so parts follow the object's pose
  exactly. The parts of a shape partition its mask (they sum to it).

The part table (names, weights, regions) is data: ``resources/sandbox/parts.json``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.shapes import PlacedObject, canonical_grid, sdf_table
from starft.sandbox.styles import coverage
from starft.sandbox.world import replay_object, row_stream, vocabulary

_PARTS = "parts.json"
_MIN_SHARE = 0.02  # a part covering less of its shape is a typo in the table, not a part
MASK_MODES = ("soft", "binary")


@dataclass(frozen=True)
class ShapeParts:
    """The parts of one shape: names and weights in slot order, and the canonical label table."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    labels: np.ndarray  # flat int8 part index per canonical cell (read-only)


def _quantity(of: Any, x: np.ndarray, y: np.ndarray, where: str) -> np.ndarray:
    if isinstance(of, list):
        if len(of) != 2 or not all(isinstance(v, (int, float)) for v in of):
            raise StarftError(f"sandbox {_PARTS}: {where}: a direction must be [dx, dy]")
        norm = math.hypot(*of)
        if norm == 0:
            raise StarftError(f"sandbox {_PARTS}: {where}: the direction is zero")
        return x * (of[0] / norm) + y * (of[1] / norm)
    quantities = {
        "x": lambda: x,
        "y": lambda: y,
        "abs_x": lambda: np.abs(x),
        "abs_y": lambda: np.abs(y),
        "radius": lambda: np.hypot(x, y),
        "chebyshev": lambda: np.maximum(np.abs(x), np.abs(y)),
    }
    if of not in quantities:
        raise StarftError(
            f"sandbox {_PARTS}: {where}: unknown quantity {of!r} "
            f"(known: {', '.join(quantities)} or a direction [dx, dy])"
        )
    return quantities[of]()


def _region(conditions: Any, x: np.ndarray, y: np.ndarray, where: str) -> np.ndarray:
    if not isinstance(conditions, list) or not conditions:
        raise StarftError(f"sandbox {_PARTS}: {where}: 'where' must be a non-empty list")
    region = np.ones(x.shape, dtype=bool)
    for condition in conditions:
        if not isinstance(condition, dict) or "of" not in condition:
            raise StarftError(f"sandbox {_PARTS}: {where}: each condition needs 'of'")
        bounds = {key: condition[key] for key in ("min", "max") if key in condition}
        extra = set(condition) - {"of", "min", "max"}
        if not bounds or extra:
            raise StarftError(
                f"sandbox {_PARTS}: {where}: a condition has 'of' and 'min' and/or 'max' only"
            )
        value = _quantity(condition["of"], x, y, where)
        if "min" in bounds:
            region &= value >= float(bounds["min"])
        if "max" in bounds:
            region &= value <= float(bounds["max"])
    return region


def _parse(shape: str, entries: Any) -> ShapeParts:
    where = f"shape '{shape}'"
    if not isinstance(entries, list) or not entries:
        raise StarftError(f"sandbox {_PARTS}: {where}: parts must be a non-empty list")
    x, y = canonical_grid()
    labels = np.full(x.shape, -1, dtype=np.int8)
    inside = sdf_table(shape).reshape(x.shape) <= 0
    names: list[str] = []
    weights: list[float] = []
    for slot, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not (isinstance(name, str) and name.isalpha() and name.islower()):
            raise StarftError(f"sandbox {_PARTS}: {where}: part {slot} needs a lowercase 'name'")
        if name in names:
            raise StarftError(f"sandbox {_PARTS}: {where}: part '{name}' is listed twice")
        weight = entry.get("weight")
        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise StarftError(f"sandbox {_PARTS}: {where}: part '{name}' needs a weight > 0")
        part_where = f"{where} part '{name}'"
        if "where" in entry:
            region = _region(entry["where"], x, y, part_where)
        elif slot != len(entries) - 1:
            raise StarftError(f"sandbox {_PARTS}: {part_where} has no 'where' but is not last")
        else:
            region = np.ones(x.shape, dtype=bool)
        region &= labels < 0  # the first matching part wins
        share = (region & inside).sum() / inside.sum()
        if share < _MIN_SHARE:
            raise StarftError(
                f"sandbox {_PARTS}: {part_where} covers {share:.1%} of the shape "
                f"(at least {_MIN_SHARE:.0%} required)"
            )
        labels[region] = slot
        names.append(name)
        weights.append(float(weight))
    if "where" in entries[-1]:
        raise StarftError(f"sandbox {_PARTS}: {where}: the last part must take the rest (no where)")
    labels = labels.ravel()
    labels.flags.writeable = False
    return ShapeParts(names=tuple(names), weights=tuple(weights), labels=labels)


@functools.cache
def _part_table() -> dict[str, ShapeParts]:
    table = read_sandbox_json(_PARTS).get("parts")
    if not isinstance(table, dict):
        raise StarftError(f"sandbox {_PARTS}: 'parts' must map shape words to part lists")
    shapes = vocabulary("shape")
    unknown = sorted(set(table) - set(shapes))
    missing = [shape for shape in shapes if shape not in table]
    if unknown or missing:
        what = f"unknown shape '{unknown[0]}'" if unknown else f"no parts for '{missing[0]}'"
        raise StarftError(f"sandbox {_PARTS}: {what}")
    return {shape: _parse(shape, table[shape]) for shape in shapes}


def shape_parts(shape: str) -> ShapeParts:
    """The parts of shape word ``shape`` (names, weights, canonical labels)."""
    table = _part_table()
    if shape not in table:
        raise StarftError(f"no sandbox shape '{shape}' (known: {', '.join(table)})")
    return table[shape]


def part_names() -> dict[str, tuple[str, ...]]:
    """Part names of every shape word, in slot order (slot ``p`` of a sample's ``parts``)."""
    return {shape: parts.names for shape, parts in _part_table().items()}


def max_parts() -> int:
    """The most parts any shape has (the padded ``P`` of a dataset's ``parts`` field)."""
    return max(len(parts.names) for parts in _part_table().values())


def _check_mode(mode: str) -> None:
    if mode not in MASK_MODES:
        raise StarftError(f"mask mode must be one of {', '.join(MASK_MODES)}, got {mode!r}")


def object_mask(obj: PlacedObject, mode: str = "soft") -> np.ndarray:
    """(S, S) float32 object mask: the drawn coverage, or its pixels with coverage >= 0.5."""
    _check_mode(mode)
    soft = coverage(obj.d)
    return soft if mode == "soft" else (soft >= 0.5).astype(np.float32)


def part_masks(shape: str, obj: PlacedObject, mode: str = "soft") -> np.ndarray:
    """(P_shape, S, S) float32 masks of the parts of ``shape``; they sum to the object mask."""
    mask = object_mask(obj, mode)
    parts = shape_parts(shape)
    labels = parts.labels.take(obj.cells)
    slots = np.arange(len(parts.names), dtype=np.int8)[:, None, None]
    return (labels[None] == slots) * mask[None]


def row_object(attrs: Mapping[str, int], seed: int, index: int, size: int) -> PlacedObject:
    """The object of row ``index`` of a table rendered with ``seed`` (replayed, not rendered)."""
    return replay_object(attrs, row_stream(seed, index), size)


def object_fields(
    attrs: Mapping[str, int],
    seed: int,
    index: int,
    size: int,
    fields: frozenset[str],
    mode: str = "soft",
) -> dict[str, np.ndarray]:
    """The requested mask fields of one row: ``mask``, ``scene_mask``, ``parts`` (padded to
    :func:`max_parts`) with ``part_weights`` (0 for padding)."""
    obj = row_object(attrs, seed, index, size)
    out: dict[str, np.ndarray] = {}
    mask = object_mask(obj, mode)
    if "mask" in fields:
        out["mask"] = mask
    if "scene_mask" in fields:
        out["scene_mask"] = 1.0 - mask
    if "parts" in fields:
        shape = vocabulary("shape")[attrs["shape"]]
        own = part_masks(shape, obj, mode)
        padded = np.zeros((max_parts(), size, size), np.float32)
        padded[: len(own)] = own
        weights = np.zeros(max_parts(), np.float32)
        weights[: len(own)] = shape_parts(shape).weights
        out["parts"] = padded
        out["part_weights"] = weights
    return out

"""The sandbox world: independent attributes and a fast procedural renderer.

Real CLIP weights and ImageNet are out of reach, so the project pretrains a tiny CLIP on a world
whose images are made of four *independent* attributes (``shape``, ``colour``, ``scene``,
``style``) and then fine-tunes it on a narrow task where the scene is correlated with the shape.
Because every attribute is known exactly, robustness can be measured along each axis separately.

Design choices, and why:

- **Vocabularies are data** (``resources/sandbox/world.json``): captions, templates and class names
  all read the same words, and each word is a single BPE token, so the text tower sees one token
  per attribute value.
- **Every image is a pure function of its attributes and a numpy Generator.** ``render_table``
  seeds image ``i`` with ``default_rng((seed, start + i))``, so any slice, worker or process
  renders the same pixels and two splits with different seeds never share an image.
- **Speed:** a dataset renders every image once at construction, so the renderer must be cheap
  (≲1 ms per 64 px image on one core). Shapes are signed-distance tables computed once per
  process and *looked up* per image through the inverse rotation/scale; scenes are crops of a
  wide texture strip rendered once per (scene, size). Per image that leaves a few dozen
  vectorised numpy operations and no per-pixel Python loop.
- **Signed distances** give anti-aliased edges, outlines (cartoon, sketch), rim shading and drop
  shadows (photo) from the same array, which keeps a white object visible on snow and a green
  one on grass: the shape must stay recognisable in every scene and style, since that is what the
  domain-shift tests measure.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from PIL import Image, ImageFilter

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json

ATTRIBUTES = ("shape", "colour", "scene", "style")
_WORLD = "world.json"
MIN_SIZE = 16  # smaller images lose the shape entirely (blurry divides the side by 4)

# ----------------------------------------------------------------------------- vocabularies


@functools.cache
def _world() -> dict[str, Any]:
    """world.json, checked once: the renderer has code for every word it names."""
    data = read_sandbox_json(_WORLD)
    known = {"shape": _SHAPES, "scene": _TEXTURES, "style": _STYLES}
    for attribute in ATTRIBUTES:
        words = data.get(attribute)
        if not isinstance(words, list) or not words:
            raise StarftError(f"sandbox {_WORLD}: '{attribute}' must be a non-empty list")
        for word in words:
            if not (isinstance(word, str) and word.isalpha() and word.islower()):
                raise StarftError(
                    f"sandbox {_WORLD}: {attribute} word {word!r} is not one lowercase word"
                )
        if len(set(words)) != len(words):
            raise StarftError(f"sandbox {_WORLD}: '{attribute}' lists a word twice")
        missing = [word for word in words if attribute in known and word not in known[attribute]]
        if missing:
            raise StarftError(f"sandbox {_WORLD}: no renderer for {attribute} '{missing[0]}'")
    for table, attribute in (("colour_rgb", "colour"), ("scene_palette", "scene")):
        missing = [word for word in data[attribute] if word not in data.get(table, {})]
        if missing:
            raise StarftError(f"sandbox {_WORLD}: '{table}' has no entry for '{missing[0]}'")
    return data


def vocabulary(attribute: str) -> list[str]:
    """The words of one attribute, in id order (a fresh list)."""
    _check_attribute(attribute)
    return list(_world()[attribute])


def _check_attribute(attribute: str) -> None:
    if attribute not in ATTRIBUTES:
        raise StarftError(
            f"unknown sandbox attribute '{attribute}' (known: {', '.join(ATTRIBUTES)})"
        )


@functools.cache
def _sizes() -> dict[str, int]:
    return {attribute: len(_world()[attribute]) for attribute in ATTRIBUTES}


@functools.cache
def _colour_rgb() -> np.ndarray:
    """(colours, 3) float32 fill colours in [0, 1]."""
    data = _world()
    return np.array([data["colour_rgb"][w] for w in data["colour"]], np.float32) / 255.0


# ----------------------------------------------------------------------------- attribute tables


@dataclass(frozen=True, eq=False)
class AttributeTable:
    """Attribute ids of ``n`` images, one read-only int64 array per attribute.

    A table is the whole description of a dataset's images: with a seed it determines every
    pixel, so datasets, task distributions and tests are all written in terms of tables.
    ``table[i]`` is the dict of image ``i``; ``table["scene"]`` is a whole column.
    """

    shape: np.ndarray
    colour: np.ndarray
    scene: np.ndarray
    style: np.ndarray

    def __post_init__(self) -> None:
        sizes = _sizes()
        length = None
        for attribute in ATTRIBUTES:
            column = np.array(getattr(self, attribute), dtype=np.int64, copy=True)
            if column.ndim != 1:
                raise StarftError(f"attribute table: '{attribute}' must be one-dimensional")
            if length is None:
                length = len(column)
            elif len(column) != length:
                raise StarftError(
                    f"attribute table: '{attribute}' has {len(column)} rows, expected {length}"
                )
            if column.size and (column.min() < 0 or column.max() >= sizes[attribute]):
                raise StarftError(
                    f"attribute table: '{attribute}' ids must lie in [0, {sizes[attribute]})"
                )
            column.flags.writeable = False
            object.__setattr__(self, attribute, column)

    def __len__(self) -> int:
        return len(self.shape)

    @overload
    def __getitem__(self, key: str) -> np.ndarray: ...

    @overload
    def __getitem__(self, key: int) -> dict[str, int]: ...

    def __getitem__(self, key: str | int) -> np.ndarray | dict[str, int]:
        """A column by attribute name, or the attributes of one image by index."""
        if isinstance(key, str):
            _check_attribute(key)
            return getattr(self, key)
        index = operator.index(key)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} rows")
        return {attribute: int(getattr(self, attribute)[index]) for attribute in ATTRIBUTES}

    def subset(self, indices: Sequence[int] | np.ndarray) -> AttributeTable:
        """The rows ``indices`` (in that order, repeats allowed) as a new table."""
        rows = np.asarray(indices, dtype=np.int64)
        return AttributeTable(**{a: getattr(self, a)[rows] for a in ATTRIBUTES})

    def words(self, index: int) -> dict[str, str]:
        """The attribute words of image ``index`` (for captions, logs and group names)."""
        return {a: _world()[a][value] for a, value in self[index].items()}

    @classmethod
    def concatenate(cls, tables: Iterable[AttributeTable]) -> AttributeTable:
        """Rows of several tables, in order."""
        tables = list(tables)
        return cls(**{a: np.concatenate([getattr(t, a) for t in tables]) for a in ATTRIBUTES})


FixedSpec = int | Sequence[int] | np.ndarray


def sample_attributes(n: int, rng: np.random.Generator, **fixed: FixedSpec) -> AttributeTable:
    """``n`` rows whose attributes are independent and uniform unless fixed.

    ``fixed`` maps an attribute to one id (``style=0``), a sequence of allowed ids drawn uniformly
    (``style=[0, 2, 3]``; a list, tuple, range or set) or a per-row ``np.ndarray`` of length
    ``n`` (taken as is). The type decides, not the length, so a list of ``n`` allowed ids is never
    mistaken for a column. Attributes are drawn in :data:`ATTRIBUTES` order, one call each.
    """
    if not isinstance(n, int) or n < 0:
        raise StarftError(f"sample_attributes: n must be an integer >= 0, got {n!r}")
    unknown = sorted(set(fixed) - set(ATTRIBUTES))
    if unknown:
        raise StarftError(
            f"sample_attributes: unknown attribute '{unknown[0]}' (known: {', '.join(ATTRIBUTES)})"
        )
    sizes = _sizes()
    columns: dict[str, np.ndarray] = {}
    for attribute in ATTRIBUTES:
        spec = fixed.get(attribute)
        count = sizes[attribute]
        if spec is None:
            columns[attribute] = rng.integers(count, size=n)
        elif isinstance(spec, np.ndarray):
            if spec.shape != (n,):
                raise StarftError(
                    f"sample_attributes: the '{attribute}' array has shape {spec.shape}, "
                    f"expected ({n},)"
                )
            columns[attribute] = spec
        elif isinstance(spec, (int, np.integer)):
            columns[attribute] = np.full(n, int(spec), dtype=np.int64)
        else:
            allowed = np.unique(np.asarray(list(spec), dtype=np.int64))
            if allowed.size == 0:
                raise StarftError(f"sample_attributes: no allowed '{attribute}' ids given")
            columns[attribute] = allowed[rng.integers(allowed.size, size=n)]
    return AttributeTable(**columns)


def balanced_ids(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ids in ``[0, count)`` with class sizes differing by at most one, in random order.

    Evaluation sets use this for their label so per-class accuracy is not at the mercy of
    multinomial noise.
    """
    return rng.permutation(np.arange(n, dtype=np.int64) % count)


# ----------------------------------------------------------------------------- shapes
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


_ShapeSdf = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Canonical SDFs. "diamond" is a tall rhombus, not a rotated square, so that the two stay
# distinguishable under random rotation; "moon" is a crescent (a circle minus a shifted circle).
_SHAPES: dict[str, _ShapeSdf] = {
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
def _sdf_table(shape: int) -> np.ndarray:
    """The flattened canonical SDF of shape id ``shape`` on a _SDF_CELLS² grid (float32)."""
    name = _world()["shape"][shape]
    centres = (np.arange(_SDF_CELLS) + 0.5) * (2 * _SDF_EXTENT / _SDF_CELLS) - _SDF_EXTENT
    px, py = np.meshgrid(centres, centres)
    return _SHAPES[name](px, py).astype(np.float32).ravel()


@dataclass(frozen=True)
class _Grid:
    """Per-size constants shared by every image of that size."""

    size: int
    axis: np.ndarray  # pixel centres 0.5 .. size-0.5
    centred: np.ndarray  # pixel centres in units of the side, -0.5 .. 0.5
    light: np.ndarray  # (size, size, 1) gentle top-right to bottom-left illumination falloff
    hatch: np.ndarray  # diagonal hatching lines for sketches, 0/1


@functools.cache
def _grid(size: int) -> _Grid:
    axis = np.arange(size, dtype=np.float32) + 0.5
    centred = axis / size - 0.5
    period = max(3, round(size / 12))
    diag = (np.arange(size)[:, None] + np.arange(size)[None, :]) % period
    return _Grid(
        size=size,
        axis=axis,
        centred=centred,
        light=(1.0 + 0.12 * (centred[None, :] - centred[:, None]))[..., None],
        hatch=(diag == 0).astype(np.float32),
    )


@dataclass
class _Object:
    """One placed object: its signed distance in pixels and its light-facing gradient."""

    d: np.ndarray  # (S, S) signed distance in pixels, negative inside
    facing: np.ndarray  # (S, S) in about [-1, 1]: +1 on the side facing the light
    radius: float


def _place_object(shape: int, grid: _Grid, rng: np.random.Generator) -> _Object:
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
    d = _sdf_table(shape).take(cells)
    d *= radius
    facing = dx * (math.cos(light) / radius) + dy * (math.sin(light) / radius)
    return _Object(d=d, facing=facing, radius=radius)


# ----------------------------------------------------------------------------- scenes
# A scene is a crop of a texture strip (size x 6*size) drawn once per (scene, size) from a fixed
# seed. Crops keep vertical structure (sky gradient, trunks) and vary by offset, mirror and tint.

_STRIP = 6
_SCENE_SEED = 0x5CE7E


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, cell_y: float, cell_x: float
) -> np.ndarray:
    """Value noise in [0, 1] with feature sizes ``cell_y`` x ``cell_x`` pixels (bicubic)."""
    rows = max(2, math.ceil(height / cell_y) + 2)
    cols = max(2, math.ceil(width / cell_x) + 2)
    coarse = rng.random((rows, cols), dtype=np.float32)
    image = Image.fromarray(coarse).resize(  # float32 -> PIL mode "F"
        (width, height), Image.Resampling.BICUBIC, box=(0.5, 0.5, cols - 1.5, rows - 1.5)
    )
    noise = np.asarray(image, dtype=np.float32)
    low, high = noise.min(), noise.max()
    return (noise - low) / max(high - low, 1e-6)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of colours (3,) or images (H, W, 3) by weights (H, W)."""
    return a + (b - a) * t[..., None]


def _water(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    period = h / 6.5
    wobble = 0.3 * period * np.sin(2 * np.pi * x / (h * 0.8) + 3 * _smooth_noise(rng, h, w, h, h))
    waves = np.sin(2 * np.pi * (y + wobble) / period)
    crest = np.clip((waves - 0.55) / 0.45, 0, 1) ** 1.5
    body = _mix(p["base"], p["shade"], 0.7 * _smooth_noise(rng, h, w, h / 3, h / 2))
    return _mix(body, p["accent"], 0.8 * crest)


def _grass(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    blade = max(2, round(h / 10))
    streaks = np.repeat(rng.random((h // blade + 2, w), dtype=np.float32), blade, axis=0)
    shifts = rng.integers(0, blade, size=w)
    rows = np.arange(h)[:, None] + shifts[None, :]
    streaks = np.take_along_axis(streaks, rows, axis=0)
    columns = rng.random(w, dtype=np.float32)[None, :]
    value = 0.55 * streaks + 0.45 * columns
    low = _mix(p["shade"], p["base"], np.clip(2 * value, 0, 1))
    return _mix(low, p["accent"], np.clip(2 * value - 1, 0, 1))


def _sand(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ripples = 0.5 + 0.5 * np.sin(
        2 * np.pi * (y + 0.15 * x) / (h / 4) + 4 * _smooth_noise(rng, h, w, h / 2, h / 2)
    )
    img = _mix(p["base"], p["shade"], 0.6 * ripples)
    img = img * (1 + 0.05 * rng.standard_normal((h, w, 1), dtype=np.float32))
    grains = (rng.random((h, w), dtype=np.float32) < 0.05).astype(np.float32)
    return _mix(img, p["accent"], 0.8 * grains)


def _snow(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    drifts = _smooth_noise(rng, h, w, h / 2.5, h / 1.5)
    img = _mix(p["base"], p["shade"], np.clip(1.6 * drifts - 0.5, 0, 1))
    flakes = (rng.random((h, w), dtype=np.float32) < 0.02).astype(np.float32)
    return _mix(img, p["accent"], flakes)


def _sky(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    gradient = np.broadcast_to(np.linspace(0, 1, h, dtype=np.float32)[:, None], (h, w))
    img = _mix(p["base"], p["shade"], gradient)
    clouds = _smooth_noise(rng, h, w, h / 5, h / 2.2) * 0.7
    clouds += _smooth_noise(rng, h, w, h / 10, h / 8) * 0.3
    return _mix(img, p["accent"], np.clip((clouds - 0.55) * 4.5, 0, 1))


def _forest(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    leaves = _smooth_noise(rng, h, w, h / 10, h / 10)
    img = _mix(p["shade"], p["base"], leaves)
    x = np.arange(w, dtype=np.float32)
    trunks = np.zeros(w, np.float32)
    position = rng.uniform(0, h / 5)
    while position < w:
        width = rng.uniform(h / 14, h / 8)
        trunks = np.maximum(trunks, np.clip(width / 2 + 0.5 - np.abs(x - position), 0, 1))
        position += rng.uniform(h / 4.5, h / 2.5)
    bark = 0.8 + 0.3 * np.repeat(rng.random((h // 3 + 1, w), dtype=np.float32), 3, 0)[:h]
    trunk = p["accent"] * bark[..., None]
    return _mix(img, trunk, np.broadcast_to(trunks[None, :], (h, w)))


def _brick(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    brick_h, brick_w = h / 8, h / 4
    mortar = max(1.0, h / 40)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    row = np.floor(y / brick_h)
    xs = x + (row % 2) * (brick_w / 2)
    column = np.floor(xs / brick_w)
    tone = rng.random((int(row.max()) + 1, int(column.max()) + 1), dtype=np.float32)
    img = _mix(p["base"], p["shade"], tone[row.astype(int), column.astype(int)] * 0.8)
    img = img * (1 + 0.06 * rng.standard_normal((h, w, 1), dtype=np.float32))
    dist = np.minimum(
        np.minimum(y % brick_h, brick_h - y % brick_h),
        np.minimum(xs % brick_w, brick_w - xs % brick_w),
    )
    joint = np.clip(mortar / 2 + 0.5 - dist, 0, 1)
    return _mix(img, p["accent"], joint)


def _night(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    gradient = np.broadcast_to(np.linspace(0, 1, h, dtype=np.float32)[:, None], (h, w))
    img = _mix(p["shade"], p["base"], gradient)
    stars = rng.random((h, w), dtype=np.float32)
    dots = (stars < 0.012) * rng.uniform(0.4, 1.0, (h, w)).astype(np.float32)
    big = stars < 0.002
    dots[1:] = np.maximum(dots[1:], big[:-1])
    dots[:, 1:] = np.maximum(dots[:, 1:], big[:, :-1])
    return _mix(img, p["accent"], dots)


_Texture = Callable[[dict[str, np.ndarray], np.random.Generator, int, int], np.ndarray]
_TEXTURES: dict[str, _Texture] = {
    "water": _water,
    "grass": _grass,
    "sand": _sand,
    "snow": _snow,
    "sky": _sky,
    "forest": _forest,
    "brick": _brick,
    "night": _night,
}


@functools.cache
def _scene_strip(scene: int, size: int) -> np.ndarray:
    """The (size, _STRIP*size, 3) float32 texture strip of scene id ``scene``; read-only."""
    data = _world()
    name = data["scene"][scene]
    palette = {
        key: np.asarray(value, np.float32) / 255.0
        for key, value in data["scene_palette"][name].items()
    }
    rng = np.random.default_rng((_SCENE_SEED, scene, size))
    strip = np.clip(_TEXTURES[name](palette, rng, size, _STRIP * size), 0, 1).astype(np.float32)
    strip.flags.writeable = False
    return strip


@functools.cache
def _smooth_strip(scene: int, size: int) -> np.ndarray:
    """The scene strip blurred once for paintings (per-image blurring cost a third of a
    painting's time); blurring commutes with the per-crop gain, so the crops are the same."""
    strip = _blur(_scene_strip(scene, size), size / 40)
    strip.flags.writeable = False
    return strip


@functools.cache
def _scene_palette(scene: int) -> np.ndarray:
    """(3, 3) float32 base, shade and accent colours of scene id ``scene`` in [0, 1]."""
    data = _world()
    entry = data["scene_palette"][data["scene"][scene]]
    return np.array([entry["base"], entry["shade"], entry["accent"]], np.float32) / 255.0


@dataclass
class _Backdrop:
    """A scene crop and the same-tinted palette it was painted from (cartoons flatten to it)."""

    image: np.ndarray  # (S, S, 3) float32
    palette: np.ndarray  # (3, 3) float32


def _scene_crop(scene: int, size: int, rng: np.random.Generator, smooth: bool = False) -> _Backdrop:
    """A random window of the scene strip, maybe mirrored, with a mild brightness/tint jitter.

    ``smooth`` crops the pre-blurred strip instead (same random draws, same window).
    """
    strip = (_smooth_strip if smooth else _scene_strip)(scene, size)
    offset = int(rng.integers(strip.shape[1] - size + 1))
    crop = strip[:, offset : offset + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, size=3).astype(np.float32)
    return _Backdrop(image=crop * gain, palette=_scene_palette(scene) * gain)


# ----------------------------------------------------------------------------- styles


def _coverage(d: np.ndarray) -> np.ndarray:
    """Anti-aliased object coverage in [0, 1] from a pixel signed distance."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _line(d: np.ndarray, width: float) -> np.ndarray:
    """An anti-aliased line of ``width`` pixels centred on the object's edge."""
    return np.clip(width / 2 + 0.5 - np.abs(d), 0.0, 1.0)


def _shift(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` moved ``k`` pixels right and down (zeros enter): a drop shadow."""
    out = np.zeros_like(mask)
    out[k:, k:] = mask[:-k, :-k]
    return out


def _shaded(bg: np.ndarray, obj: _Object, rgb: np.ndarray, grid: _Grid) -> np.ndarray:
    """The lit object over its scene: drop shadow, rim darkening and a light-facing gradient.

    The dark rim and the shadow keep the silhouette visible when the object has the scene's
    colour (white on snow, green on grass).
    """
    alpha = _coverage(obj.d)
    k = max(1, round(grid.size / 40))
    shadow = 0.5 * (_shift(alpha, k) + _shift(alpha, k + 1))
    bg = bg * (1.0 - 0.45 * shadow)[..., None]
    rim = np.clip(1.0 + obj.d / max(1.5, obj.radius * 0.18), 0.0, 1.0)
    shade = 0.9 - 0.32 * rim + 0.14 * obj.facing
    img = _mix(bg, rgb * shade[..., None], alpha)
    img *= grid.light
    return img


def _photo(
    scene: _Backdrop, obj: _Object, rgb: np.ndarray, rng: np.random.Generator, grid: _Grid
) -> np.ndarray:
    """Soft shading and a mild sensor noise."""
    img = _shaded(scene.image, obj, rgb, grid)
    img += 0.025 * rng.standard_normal(img.shape, dtype=np.float32)
    return img


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_THIRDS = np.full(3, 1 / 3, np.float32)


def _sketch(
    scene: _Backdrop, obj: _Object, rgb: np.ndarray, rng: np.random.Generator, grid: _Grid
) -> np.ndarray:
    """Pencil on paper: the scene's stronger edges, a hatched object with a dark outline, no colour.

    The scene survives through its edges (waves, bricks, trunks, clouds) and a light pencil tone
    for dark scenes (night, forest); pixel-level grain is cut by a threshold so that a speckled
    scene does not turn into a grey mess.
    """
    lum = scene.image @ _LUMA
    # Edges of a 2x2-smoothed luminance: lines and outlines survive, single-pixel grain fades.
    soft = lum.copy()
    soft[1:, 1:] = 0.25 * (lum[1:, 1:] + lum[:-1, 1:] + lum[1:, :-1] + lum[:-1, :-1])
    edges = np.zeros_like(lum)
    edges[:, 1:] += np.abs(np.diff(soft, axis=1))
    edges[1:, :] += np.abs(np.diff(soft, axis=0))
    ink = np.clip((edges - 0.04) * 4.0, 0.0, 0.6)
    paper = 0.96 - ink - 0.2 * (1.0 - lum)
    inside = 0.97 - 0.3 * grid.hatch
    value = paper + (inside - paper) * _coverage(obj.d)
    value *= 1.0 - 0.9 * _line(obj.d, max(1.0, grid.size / 40))
    value += 0.02 * rng.standard_normal(value.shape, dtype=np.float32)
    return np.repeat(value[..., None], 3, axis=2)


def _cartoon(
    scene: _Backdrop, obj: _Object, rgb: np.ndarray, rng: np.random.Generator, grid: _Grid
) -> np.ndarray:
    """Flat colours: the scene snapped to its own three colours, a flat object, and a
    thick dark outline.

    Snapping to the scene palette (rather than posterising each channel) keeps each scene's hues:
    per-channel posterising turned sand pink.
    """
    # Nearest palette colour: argmin |x - p|^2 = argmin (|p|^2 - 2 x.p), one small matmul.
    palette = scene.palette
    score = (palette * palette).sum(-1) - 2.0 * (scene.image @ palette.T)
    flat = palette[score.argmin(-1)]
    img = _mix(flat, rgb, _coverage(obj.d))
    return _mix(img, np.full(3, 0.06, np.float32), _line(obj.d, max(1.5, grid.size / 20)))


def _painting(
    scene: _Backdrop, obj: _Object, rgb: np.ndarray, rng: np.random.Generator, grid: _Grid
) -> np.ndarray:
    """Smoothed, slightly saturated colours under brush strokes of one random direction."""
    # The scene arrives pre-smoothed (see _smooth_strip); the object is not blurred, so its
    # silhouette keeps a crisp (anti-aliased) edge under the strokes.
    img = _shaded(scene.image, obj, rgb, grid)
    mean = (img @ _THIRDS)[..., None]
    img = mean + 1.2 * (img - mean)
    # Brush strokes: a random table sampled in a frame rotated to the stroke direction, long
    # along the stroke and a couple of pixels across, so its values form streaks. Mostly a
    # brightness change, with a little per-channel variation for paint colour.
    angle = rng.uniform(0.0, np.pi)
    along_scale = 5.0  # strokes a fifth of the image long ...
    across_scale = grid.size / max(1.5, grid.size / 32)  # ... and about two pixels wide
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = grid.centred[None, :], grid.centred[:, None]
    along = (x * (cos * along_scale) + (y * (sin * along_scale) + 8.0)).astype(np.intp)
    across = (y * (cos * across_scale) + (32.0 - x * (sin * across_scale))).astype(np.intp)
    cells = (across % 64) * 16 + along % 16
    table = 0.18 * (rng.random((64 * 16, 1), dtype=np.float32) - 0.5)
    table = table + 0.025 * rng.standard_normal((64 * 16, 3), dtype=np.float32)
    table += 1.0
    img *= table.take(cells, axis=0)
    return img


def _blurry(
    scene: _Backdrop, obj: _Object, rgb: np.ndarray, rng: np.random.Generator, grid: _Grid
) -> np.ndarray:
    """A photo downsampled 4x (box filter) and upsampled again (bilinear)."""
    size = grid.size
    small = max(1, size // 4)
    photo = Image.fromarray(_to_uint8(_photo(scene, obj, rgb, rng, grid)))
    low = photo.resize((small, small), Image.Resampling.BOX)
    return np.asarray(low.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0


def _blur(img: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a float image in [0, 1] (through 8-bit PIL, which is fast)."""
    blurred = Image.fromarray(_to_uint8(img)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, np.float32) / 255.0


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


_Style = Callable[[_Backdrop, _Object, np.ndarray, np.random.Generator, _Grid], np.ndarray]
_STYLES: dict[str, _Style] = {
    "photo": _photo,
    "sketch": _sketch,
    "cartoon": _cartoon,
    "painting": _painting,
    "blurry": _blurry,
}


# ----------------------------------------------------------------------------- rendering


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size < MIN_SIZE:
        raise StarftError(f"sandbox image size must be an integer >= {MIN_SIZE}, got {size!r}")


def _ids(attrs: Mapping[str, int]) -> tuple[int, int, int, int]:
    sizes = _sizes()
    ids = []
    for attribute in ATTRIBUTES:
        if attribute not in attrs:
            raise StarftError(f"sandbox render: attribute '{attribute}' is missing")
        value = operator.index(attrs[attribute])
        if not 0 <= value < sizes[attribute]:
            raise StarftError(
                f"sandbox render: {attribute} id {value} outside [0, {sizes[attribute]})"
            )
        ids.append(value)
    return ids[0], ids[1], ids[2], ids[3]


def render(attrs: Mapping[str, int], rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One image (uint8, size x size x 3) of the object and scene described by ``attrs``.

    All randomness (placement, scene crop, noise, strokes) comes from ``rng`` in a fixed order,
    so the same attributes and generator state give the same pixels.
    """
    _check_size(size)
    shape, colour, scene, style = _ids(attrs)
    style_fn = _STYLES[_world()["style"][style]]
    grid = _grid(size)
    obj = _place_object(shape, grid, rng)
    backdrop = _scene_crop(scene, size, rng, smooth=style_fn is _painting)
    return _to_uint8(style_fn(backdrop, obj, _colour_rgb()[colour], rng, grid))


def render_table(
    table: AttributeTable,
    seed: int,
    size: int = 64,
    start: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Images of every row (uint8, N x size x size x 3); row ``i`` uses ``default_rng((seed,
    start + i))``.

    Seeding per row, not per call, makes any slice render identically to the same rows of the
    whole table, which is what lets datasets render in chunks and tests compare splits by image
    hash. ``out`` (an existing uint8 array of the right shape) avoids a copy when filling a
    larger buffer chunk by chunk.
    """
    _check_size(size)
    if seed < 0 or start < 0:
        raise StarftError(f"render_table: seed and start must be >= 0, got {seed}, {start}")
    shape = (len(table), size, size, 3)
    if out is None:
        out = np.empty(shape, np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise StarftError(f"render_table: out must be uint8 {shape}, got {out.dtype} {out.shape}")
    for i in range(len(table)):
        row = {attribute: int(getattr(table, attribute)[i]) for attribute in ATTRIBUTES}
        out[i] = render(row, np.random.default_rng((seed, start + i)), size)
    return out

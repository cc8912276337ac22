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

This module holds what the world *is* (vocabularies, attribute tables, sampling) and the render
entry points, which map attribute ids to the renderers of :mod:`starft.sandbox.shapes` (object
geometry), :mod:`starft.sandbox.scenes` (background textures) and :mod:`starft.sandbox.styles`
(how object and scene are drawn); those know words, not ids, and never read world.json.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.scenes import TEXTURES, Backdrop, crop_scene, paint_strip
from starft.sandbox.shapes import SHAPES, Grid, PlacedObject, place_object
from starft.sandbox.shapes import pixel_grid as _grid
from starft.sandbox.styles import SMOOTH_SCENE_STYLES, STYLES, blur, coverage, to_uint8

ATTRIBUTES = ("shape", "colour", "scene", "style")
_WORLD = "world.json"
MIN_SIZE = 16  # smaller images lose the shape entirely (blurry divides the side by 4)

# ----------------------------------------------------------------------------- vocabularies


@functools.cache
def _world() -> dict[str, Any]:
    """world.json, checked once: the renderer has code for every word it names."""
    data = read_sandbox_json(_WORLD)
    known = {"shape": SHAPES, "scene": TEXTURES, "style": STYLES}
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


# ----------------------------------------------------------------------------- ids to renderers


def _place_object(shape: int, grid: Grid, rng: np.random.Generator) -> PlacedObject:
    """Shape id ``shape`` at a random scale, rotation and position on ``grid``."""
    return place_object(_world()["shape"][shape], grid, rng)


@functools.cache
def _scene_strip(scene: int, size: int) -> np.ndarray:
    """The (size, 6*size, 3) float32 texture strip of scene id ``scene``; read-only."""
    data = _world()
    name = data["scene"][scene]
    return paint_strip(name, data["scene_palette"][name], scene, size)


@functools.cache
def _smooth_strip(scene: int, size: int) -> np.ndarray:
    """The scene strip blurred once for paintings (per-image blurring cost a third of a
    painting's time); blurring commutes with the per-crop gain, so the crops are the same."""
    strip = blur(_scene_strip(scene, size), size / 40)
    strip.flags.writeable = False
    return strip


@functools.cache
def _scene_palette(scene: int) -> np.ndarray:
    """(3, 3) float32 base, shade and accent colours of scene id ``scene`` in [0, 1]."""
    data = _world()
    entry = data["scene_palette"][data["scene"][scene]]
    return np.array([entry["base"], entry["shade"], entry["accent"]], np.float32) / 255.0


def _scene_crop(scene: int, size: int, rng: np.random.Generator, smooth: bool = False) -> Backdrop:
    """A random window of the scene strip, maybe mirrored, with a mild brightness/tint jitter.

    ``smooth`` crops the pre-blurred strip instead (same random draws, same window).
    """
    strip = (_smooth_strip if smooth else _scene_strip)(scene, size)
    return crop_scene(strip, _scene_palette(scene), rng)


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
    return _render(attrs, rng, size)[0]


def _render(
    attrs: Mapping[str, int], rng: np.random.Generator, size: int
) -> tuple[np.ndarray, PlacedObject]:
    """The image and the object drawn in it (what :func:`replay_object` must reproduce)."""
    _check_size(size)
    shape, colour, scene, style = _ids(attrs)
    style_name = _world()["style"][style]
    style_fn = STYLES[style_name]
    grid = _grid(size)
    # The object is placed FIRST from the image's generator: replay_object relies on it, so
    # any new draw must come after this line or every mask stops matching its image.
    obj = _place_object(shape, grid, rng)
    backdrop = _scene_crop(scene, size, rng, smooth=style_name in SMOOTH_SCENE_STYLES)
    return to_uint8(style_fn(backdrop, obj, _colour_rgb()[colour], rng, grid)), obj


def replay_object(
    attrs: Mapping[str, int], rng: np.random.Generator, size: int = 64
) -> PlacedObject:
    """The object :func:`render` draws for ``attrs`` and a generator in the same state.

    Placement is the first use of the image's generator, so replaying it costs one lookup and
    no scene or style work: masks and parts come from here, never from the pixels.
    """
    _check_size(size)
    shape = _ids(attrs)[0]
    return _place_object(shape, _grid(size), rng)


def row_stream(seed: int, index: int) -> np.random.Generator:
    """The generator of row ``index`` of a table rendered with ``seed`` (see render_table)."""
    return np.random.default_rng((seed, index))


def render_table(
    table: AttributeTable,
    seed: int,
    size: int = 64,
    start: int = 0,
    out: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> np.ndarray:
    """Images of every row (uint8, N x size x size x 3); row ``i`` uses ``default_rng((seed,
    start + i))``.

    Seeding per row, not per call, makes any slice render identically to the same rows of the
    whole table, which is what lets datasets render in chunks and tests compare splits by image
    hash. ``out`` (an existing uint8 array of the right shape) avoids a copy when filling a
    larger buffer chunk by chunk. ``masks`` (float32 N x size x size), when given, receives the
    anti-aliased coverage of the object each image actually drew.
    """
    _check_size(size)
    if seed < 0 or start < 0:
        raise StarftError(f"render_table: seed and start must be >= 0, got {seed}, {start}")
    shape = (len(table), size, size, 3)
    if out is None:
        out = np.empty(shape, np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise StarftError(f"render_table: out must be uint8 {shape}, got {out.dtype} {out.shape}")
    if masks is not None and (masks.shape != shape[:3] or masks.dtype != np.float32):
        raise StarftError(
            f"render_table: masks must be float32 {shape[:3]}, got {masks.dtype} {masks.shape}"
        )
    for i in range(len(table)):
        row = {attribute: int(getattr(table, attribute)[i]) for attribute in ATTRIBUTES}
        out[i], obj = _render(row, row_stream(seed, start + i), size)
        if masks is not None:
            masks[i] = coverage(obj.d)
    return out

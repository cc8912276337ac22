"""Image styles: how an object and its scene are drawn (photo, sketch, cartoon, painting, blurry).

A style turns a scene crop, a placed object and its fill colour into a float RGB image; all its
randomness (noise, strokes) comes from the image's generator. Styles are keyed by their word;
the sandbox world (:mod:`starft.sandbox.world`) maps style ids to them. Also home to the float
to 8-bit conversion and the blur that the renderer and the painting backdrop share.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from starft.sandbox.scenes import Backdrop, mix
from starft.sandbox.shapes import Grid, PlacedObject


def coverage(d: np.ndarray) -> np.ndarray:
    """Anti-aliased object coverage in [0, 1] from a pixel signed distance (the soft mask)."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _line(d: np.ndarray, width: float) -> np.ndarray:
    """An anti-aliased line of ``width`` pixels centred on the object's edge."""
    return np.clip(width / 2 + 0.5 - np.abs(d), 0.0, 1.0)


def _shift(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` moved ``k`` pixels right and down (zeros enter): a drop shadow."""
    out = np.zeros_like(mask)
    out[k:, k:] = mask[:-k, :-k]
    return out


def _shaded(bg: np.ndarray, obj: PlacedObject, rgb: np.ndarray, grid: Grid) -> np.ndarray:
    """The lit object over its scene: drop shadow, rim darkening and a light-facing gradient.

    The dark rim and the shadow keep the silhouette visible when the object has the scene's
    colour (white on snow, green on grass).
    """
    alpha = coverage(obj.d)
    k = max(1, round(grid.size / 40))
    shadow = 0.5 * (_shift(alpha, k) + _shift(alpha, k + 1))
    bg = bg * (1.0 - 0.45 * shadow)[..., None]
    rim = np.clip(1.0 + obj.d / max(1.5, obj.radius * 0.18), 0.0, 1.0)
    shade = 0.9 - 0.32 * rim + 0.14 * obj.facing
    img = mix(bg, rgb * shade[..., None], alpha)
    img *= grid.light
    return img


def _photo(
    scene: Backdrop, obj: PlacedObject, rgb: np.ndarray, rng: np.random.Generator, grid: Grid
) -> np.ndarray:
    """Soft shading and a mild sensor noise."""
    img = _shaded(scene.image, obj, rgb, grid)
    img += 0.025 * rng.standard_normal(img.shape, dtype=np.float32)
    return img


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_THIRDS = np.full(3, 1 / 3, np.float32)


def _sketch(
    scene: Backdrop, obj: PlacedObject, rgb: np.ndarray, rng: np.random.Generator, grid: Grid
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
    value = paper + (inside - paper) * coverage(obj.d)
    value *= 1.0 - 0.9 * _line(obj.d, max(1.0, grid.size / 40))
    value += 0.02 * rng.standard_normal(value.shape, dtype=np.float32)
    return np.repeat(value[..., None], 3, axis=2)


def _cartoon(
    scene: Backdrop, obj: PlacedObject, rgb: np.ndarray, rng: np.random.Generator, grid: Grid
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
    img = mix(flat, rgb, coverage(obj.d))
    return mix(img, np.full(3, 0.06, np.float32), _line(obj.d, max(1.5, grid.size / 20)))


def _painting(
    scene: Backdrop, obj: PlacedObject, rgb: np.ndarray, rng: np.random.Generator, grid: Grid
) -> np.ndarray:
    """Smoothed, slightly saturated colours under brush strokes of one random direction."""
    # The scene arrives pre-smoothed (see world._smooth_strip); the object is not blurred, so its
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
    scene: Backdrop, obj: PlacedObject, rgb: np.ndarray, rng: np.random.Generator, grid: Grid
) -> np.ndarray:
    """A photo downsampled 4x (box filter) and upsampled again (bilinear)."""
    size = grid.size
    small = max(1, size // 4)
    photo = Image.fromarray(to_uint8(_photo(scene, obj, rgb, rng, grid)))
    low = photo.resize((small, small), Image.Resampling.BOX)
    return np.asarray(low.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0


def blur(img: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a float image in [0, 1] (through 8-bit PIL, which is fast)."""
    blurred = Image.fromarray(to_uint8(img)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8 (rounded to nearest, clipped)."""
    return np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


_Style = Callable[[Backdrop, PlacedObject, np.ndarray, np.random.Generator, Grid], np.ndarray]
STYLES: dict[str, _Style] = {
    "photo": _photo,
    "sketch": _sketch,
    "cartoon": _cartoon,
    "painting": _painting,
    "blurry": _blurry,
}

# Styles whose scene is cropped from the strip blurred once (world._smooth_strip) rather than
# from the sharp one: the crop's random draws and window are the same either way.
SMOOTH_SCENE_STYLES = frozenset({"painting"})

"""Scene backgrounds: procedural textures, the wide strip each scene is painted on, and crops.

A scene image is a random crop of a texture strip painted once per (scene, size) from a fixed
seed, so per image a scene costs one slice and a tint. Scenes are keyed by their word and take
their colours as arguments; the sandbox world (:mod:`starft.sandbox.world`) maps attribute ids
to words and palettes and caches the strips.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

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


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of colours (3,) or images (H, W, 3) by weights (H, W)."""
    return a + (b - a) * t[..., None]


def _water(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    period = h / 6.5
    wobble = 0.3 * period * np.sin(2 * np.pi * x / (h * 0.8) + 3 * _smooth_noise(rng, h, w, h, h))
    waves = np.sin(2 * np.pi * (y + wobble) / period)
    crest = np.clip((waves - 0.55) / 0.45, 0, 1) ** 1.5
    body = mix(p["base"], p["shade"], 0.7 * _smooth_noise(rng, h, w, h / 3, h / 2))
    return mix(body, p["accent"], 0.8 * crest)


def _grass(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    blade = max(2, round(h / 10))
    streaks = np.repeat(rng.random((h // blade + 2, w), dtype=np.float32), blade, axis=0)
    shifts = rng.integers(0, blade, size=w)
    rows = np.arange(h)[:, None] + shifts[None, :]
    streaks = np.take_along_axis(streaks, rows, axis=0)
    columns = rng.random(w, dtype=np.float32)[None, :]
    value = 0.55 * streaks + 0.45 * columns
    low = mix(p["shade"], p["base"], np.clip(2 * value, 0, 1))
    return mix(low, p["accent"], np.clip(2 * value - 1, 0, 1))


def _sand(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ripples = 0.5 + 0.5 * np.sin(
        2 * np.pi * (y + 0.15 * x) / (h / 4) + 4 * _smooth_noise(rng, h, w, h / 2, h / 2)
    )
    img = mix(p["base"], p["shade"], 0.6 * ripples)
    img = img * (1 + 0.05 * rng.standard_normal((h, w, 1), dtype=np.float32))
    grains = (rng.random((h, w), dtype=np.float32) < 0.05).astype(np.float32)
    return mix(img, p["accent"], 0.8 * grains)


def _snow(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    drifts = _smooth_noise(rng, h, w, h / 2.5, h / 1.5)
    img = mix(p["base"], p["shade"], np.clip(1.6 * drifts - 0.5, 0, 1))
    flakes = (rng.random((h, w), dtype=np.float32) < 0.02).astype(np.float32)
    return mix(img, p["accent"], flakes)


def _sky(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    gradient = np.broadcast_to(np.linspace(0, 1, h, dtype=np.float32)[:, None], (h, w))
    img = mix(p["base"], p["shade"], gradient)
    clouds = _smooth_noise(rng, h, w, h / 5, h / 2.2) * 0.7
    clouds += _smooth_noise(rng, h, w, h / 10, h / 8) * 0.3
    return mix(img, p["accent"], np.clip((clouds - 0.55) * 4.5, 0, 1))


def _forest(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    leaves = _smooth_noise(rng, h, w, h / 10, h / 10)
    img = mix(p["shade"], p["base"], leaves)
    x = np.arange(w, dtype=np.float32)
    trunks = np.zeros(w, np.float32)
    position = rng.uniform(0, h / 5)
    while position < w:
        width = rng.uniform(h / 14, h / 8)
        trunks = np.maximum(trunks, np.clip(width / 2 + 0.5 - np.abs(x - position), 0, 1))
        position += rng.uniform(h / 4.5, h / 2.5)
    bark = 0.8 + 0.3 * np.repeat(rng.random((h // 3 + 1, w), dtype=np.float32), 3, 0)[:h]
    trunk = p["accent"] * bark[..., None]
    return mix(img, trunk, np.broadcast_to(trunks[None, :], (h, w)))


def _brick(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    brick_h, brick_w = h / 8, h / 4
    mortar = max(1.0, h / 40)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    row = np.floor(y / brick_h)
    xs = x + (row % 2) * (brick_w / 2)
    column = np.floor(xs / brick_w)
    tone = rng.random((int(row.max()) + 1, int(column.max()) + 1), dtype=np.float32)
    img = mix(p["base"], p["shade"], tone[row.astype(int), column.astype(int)] * 0.8)
    img = img * (1 + 0.06 * rng.standard_normal((h, w, 1), dtype=np.float32))
    dist = np.minimum(
        np.minimum(y % brick_h, brick_h - y % brick_h),
        np.minimum(xs % brick_w, brick_w - xs % brick_w),
    )
    joint = np.clip(mortar / 2 + 0.5 - dist, 0, 1)
    return mix(img, p["accent"], joint)


def _night(p: dict[str, np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    gradient = np.broadcast_to(np.linspace(0, 1, h, dtype=np.float32)[:, None], (h, w))
    img = mix(p["shade"], p["base"], gradient)
    stars = rng.random((h, w), dtype=np.float32)
    dots = (stars < 0.012) * rng.uniform(0.4, 1.0, (h, w)).astype(np.float32)
    big = stars < 0.002
    dots[1:] = np.maximum(dots[1:], big[:-1])
    dots[:, 1:] = np.maximum(dots[:, 1:], big[:, :-1])
    return mix(img, p["accent"], dots)


Texture = Callable[[dict[str, np.ndarray], np.random.Generator, int, int], np.ndarray]
TEXTURES: dict[str, Texture] = {
    "water": _water,
    "grass": _grass,
    "sand": _sand,
    "snow": _snow,
    "sky": _sky,
    "forest": _forest,
    "brick": _brick,
    "night": _night,
}


def paint_strip(
    name: str, colours: Mapping[str, Sequence[int]], seed: int, size: int
) -> np.ndarray:
    """The (size, _STRIP*size, 3) float32 texture strip of scene ``name``; read-only.

    ``colours`` is the scene's palette (sRGB 0-255 by role: base, shade, accent) and ``seed``
    (the scene id) picks the strip's fixed random stream, one per (scene, size).
    """
    palette = {key: np.asarray(value, np.float32) / 255.0 for key, value in colours.items()}
    rng = np.random.default_rng((_SCENE_SEED, seed, size))
    strip = np.clip(TEXTURES[name](palette, rng, size, _STRIP * size), 0, 1).astype(np.float32)
    strip.flags.writeable = False
    return strip


@dataclass
class Backdrop:
    """A scene crop and the same-tinted palette it was painted from (cartoons flatten to it)."""

    image: np.ndarray  # (S, S, 3) float32
    palette: np.ndarray  # (3, 3) float32


def crop_scene(strip: np.ndarray, palette: np.ndarray, rng: np.random.Generator) -> Backdrop:
    """A random window of a scene strip, maybe mirrored, with a mild brightness/tint jitter.

    The window is square (the strip's height); ``palette`` is the scene's (3, 3) base, shade and
    accent colours in [0, 1], tinted with the crop.
    """
    size = strip.shape[0]
    offset = int(rng.integers(strip.shape[1] - size + 1))
    crop = strip[:, offset : offset + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, size=3).astype(np.float32)
    return Backdrop(image=crop * gain, palette=palette * gain)

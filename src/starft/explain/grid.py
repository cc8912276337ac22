"""The side-by-side picture: one row per image, the image (and its mask), then each model's map.

Drawn with matplotlib's object API on the Agg canvas (never ``pyplot``) and written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from starft.utils.io import atomic_write_bytes

OVERLAY_ALPHA = 0.5


def write_grid(
    path: str | Path,
    images: np.ndarray,
    maps: dict[str, np.ndarray],
    masks: np.ndarray | None = None,
    row_labels: Sequence[str] | None = None,
    captions: dict[str, Sequence[str]] | None = None,
) -> Path:
    """``images`` ``[N, H, W, 3]`` in [0, 1]; ``maps[label]`` ``[N, H, W]`` in [0, 1] (same H, W
    after resizing by the caller); ``masks`` ``[N, H, W]`` or None; ``captions[label]`` a line
    under each of that model's panels (e.g. its prediction). Returns the PNG path."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    columns = ["image", *(["mask"] if masks is not None else []), *maps]
    rows = images.shape[0]
    size = 1.6
    fig = Figure(figsize=(size * len(columns), size * rows + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, len(columns), squeeze=False))
    jet = colormaps["jet"]
    for r in range(rows):
        panels: list[np.ndarray] = [images[r]]
        if masks is not None:
            panels.append(np.repeat(masks[r][..., None], 3, axis=2).clip(0, 1))
        for label in maps:
            heat = jet(maps[label][r])[..., :3]
            panels.append((1 - OVERLAY_ALPHA) * images[r] + OVERLAY_ALPHA * heat)
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel.clip(0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=7)
            label = columns[c]
            if captions is not None and label in maps and label in captions:
                ax.set_xlabel(captions[label][r], fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)

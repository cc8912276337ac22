"""A contact sheet of sandbox images with their object mask, parts and a marker with its box.

``starft sandbox sheet --out docs/img/sandbox_contact_sheet.png`` writes the picture that
docs/sandbox.md shows: one row per shape (every style and several scenes), and per image four
panels: the image, the soft object mask over it, its named parts in colour, and the same image
with a marker and its ground-truth box. Everything is drawn through the same code the datasets
use (replayed masks, ``SandboxDataset`` with a marker plan), so the sheet shows what a sample
holds.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from starft.sandbox.datasets import SandboxDataset
from starft.sandbox.fields import MarkerPlan
from starft.sandbox.layers import object_mask, part_masks, row_object
from starft.sandbox.markers import marker_kinds
from starft.sandbox.world import AttributeTable
from starft.utils.io import atomic_write_bytes

_PART_COLOURS = np.array([[255, 60, 60], [60, 200, 255], [255, 220, 40]], np.float32)
_PANELS = ("image", "object mask", "parts", "marker + box")


def _table(rows: int) -> AttributeTable:
    i = np.arange(rows)
    return AttributeTable(shape=i % 10, colour=(i * 3 + 1) % 8, scene=(i * 5 + 2) % 8, style=i % 5)


def _overlay(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    base = image.astype(np.float32)
    return (base + (colour - base) * alpha[..., None]).round().astype(np.uint8)


def contact_sheet(rows: int = 10, size: int = 64, scale: int = 2, seed: int = 0) -> Image.Image:
    """The sheet as a PIL image: ``rows`` images, four panels each, labelled."""
    table = _table(rows)
    base = SandboxDataset(table, label_attribute="shape", seed=seed, image_size=size)
    kinds = marker_kinds()
    marked = [
        SandboxDataset(
            table,
            label_attribute="shape",
            seed=seed,
            image_size=size,
            markers=MarkerPlan(kind=kind, grid=4, present=np.ones(rows, bool)),
        )
        for kind in kinds
    ]
    tile, label_h, margin = size * scale, 14, 4
    columns = len(_PANELS)
    width = columns * (tile + margin) + margin + 150
    height = rows * (tile + margin) + margin + label_h
    sheet = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(_PANELS):
        draw.text((margin + c * (tile + margin), 2), title, fill=(0, 0, 0))
    for r in range(rows):
        attrs = table[r]
        words = table.words(r)
        obj = row_object(attrs, seed, r, size)
        image = base.images[r]
        mask = object_mask(obj)
        parts = part_masks(words["shape"], obj)
        tinted = image.copy()
        for p, part in enumerate(parts):
            tinted = _overlay(tinted, _PART_COLOURS[p % len(_PART_COLOURS)], 0.75 * part)
        kind_ds = marked[r % len(kinds)]
        x0, y0, x1, y1 = kind_ds.marker_boxes[r]
        boxed = Image.fromarray(kind_ds.images[r]).resize((tile, tile), Image.Resampling.NEAREST)
        ImageDraw.Draw(boxed).rectangle(
            [x0 * scale - 1, y0 * scale - 1, x1 * scale, y1 * scale], outline=(255, 0, 0)
        )
        panels = [
            Image.fromarray(image),
            Image.fromarray(_overlay(image, np.array([255, 0, 255], np.float32), 0.6 * mask)),
            Image.fromarray(tinted),
            boxed,
        ]
        top = label_h + margin + r * (tile + margin)
        for c, panel in enumerate(panels):
            panel = panel.resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(panel, (margin + c * (tile + margin), top))
        names = base.part_names[words["shape"]]
        text = [
            f"{words['shape']} / {words['style']}",
            f"{words['colour']} on {words['scene']}",
            "parts: " + ", ".join(names),
            "(red, blue, yellow)",
            f"marker: {kinds[r % len(kinds)]}",
        ]
        for line, value in enumerate(text):
            draw.text((columns * (tile + margin) + margin, top + 4 + 14 * line), value, fill=0)
    return sheet


def write_contact_sheet(path: str | Path, rows: int = 10, seed: int = 0) -> Path:
    """Render :func:`contact_sheet` to a PNG at ``path`` (atomically)."""
    buffer = io.BytesIO()
    contact_sheet(rows=rows, seed=seed).save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)

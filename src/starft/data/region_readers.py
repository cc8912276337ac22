"""Region fields from files: a folder of mask PNGs beside the images, box columns of a CSV.

Mask folder: the mask of image ``<root>/a/b.jpg`` is ``<mask_root>/a/b.png`` (the image's path
relative to its root, with the suffix ``.png``), the layout of ImageNet-S
(``train-semi-segmentation/<wnid>/<name>.png`` beside ``train/<wnid>/<name>.JPEG``). Formats:

* ``binary``: any non-zero pixel (in any channel) is foreground (1.0);
* ``soft``: the grey level / 255, a soft mask in [0, 1];
* ``class_id``: ImageNet-S class-id PNGs, id = R + 256·G; 0 is background, 1000 is "ignore"
  (ambiguous pixels), every other id is foreground. Ignored pixels count as background.

Boxes in a CSV: one cell per image, boxes separated by ``;``, each ``x1 y1 x2 y2`` in pixels of the
image file, optionally followed by an integer class label (default: the row's label); an empty
cell means no boxes, e.g. ``"10 12 40 52; 30 5 60 20 3"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from starft.errors import StarftError

MASK_FORMATS = ("binary", "soft", "class_id")
IGNORE_ID = 1000


def read_mask_png(path: str | Path, mask_format: str = "binary") -> Tensor:
    """A float32 ``[H, W]`` mask in [0, 1] from a PNG in one of :data:`MASK_FORMATS`."""
    if mask_format not in MASK_FORMATS:
        raise StarftError(
            f"mask_format must be one of {', '.join(MASK_FORMATS)}, got '{mask_format}'"
        )
    try:
        with Image.open(path) as image:
            if mask_format == "class_id":
                rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
                ids = rgb[..., 0] + 256 * rgb[..., 1]
                mask = (ids != 0) & (ids != IGNORE_ID)
            elif mask_format == "soft":
                mask = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
            else:
                pixels = np.asarray(image)
                mask = pixels != 0 if pixels.ndim == 2 else (pixels[..., :3] != 0).any(axis=-1)
    except (OSError, ValueError, SyntaxError) as error:
        raise StarftError(f"cannot read mask '{path}': {error}".replace("\n", " ")) from None
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))


def parse_boxes(text: str, default_label: int, where: str) -> tuple[Tensor, Tensor]:
    """``"x1 y1 x2 y2 [label]; ..."`` -> (boxes ``[K, 4]`` float32, labels ``[K]`` int64)."""
    boxes: list[list[float]] = []
    labels: list[int] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        fields = part.split()
        try:
            if len(fields) not in (4, 5):
                raise ValueError
            coords = [float(v) for v in fields[:4]]
            label = int(fields[4]) if len(fields) == 5 else default_label
        except ValueError:
            raise StarftError(
                f"{where}: box '{part}' is not 'x1 y1 x2 y2' or 'x1 y1 x2 y2 label'"
            ) from None
        if not (coords[2] > coords[0] and coords[3] > coords[1]) or label < 0:
            raise StarftError(f"{where}: box '{part}' needs x2 > x1, y2 > y1 and a label >= 0")
        boxes.append(coords)
        labels.append(label)
    return (
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.long),
    )


class RegionFiles:
    """Per-sample mask files and/or boxes of a dataset, read into region fields on demand."""

    def __init__(
        self,
        *,
        mask_paths: Sequence[Path] | None = None,
        mask_format: str = "binary",
        boxes: Sequence[tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        if mask_format not in MASK_FORMATS:
            raise StarftError(
                f"mask_format must be one of {', '.join(MASK_FORMATS)}, got '{mask_format}'"
            )
        self.mask_paths = None if mask_paths is None else list(mask_paths)
        self.mask_format = mask_format
        self.boxes = None if boxes is None else list(boxes)

    @property
    def keys(self) -> tuple[str, ...]:
        mask = ("mask",) if self.mask_paths is not None else ()
        return (*mask, *(("boxes", "box_labels") if self.boxes is not None else ()))

    def read(self, index: int, image: Image.Image) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.mask_paths is not None:
            path = self.mask_paths[index]
            if not path.is_file():
                raise StarftError(f"mask file '{path}' does not exist (sample {index})")
            mask = read_mask_png(path, self.mask_format)
            if tuple(mask.shape) != (image.height, image.width):
                raise StarftError(
                    f"mask '{path}' is {mask.shape[1]}x{mask.shape[0]} but its image is "
                    f"{image.width}x{image.height}"
                )
            out["mask"] = mask
        if self.boxes is not None:
            out["boxes"], out["box_labels"] = self.boxes[index]
        return out


def mask_paths(
    mask_root: str | Path, image_paths: Sequence[str], image_root: str | Path
) -> list[Path]:
    """``mask_root/<image path relative to image_root>.png`` per image."""
    mask_root, image_root = Path(mask_root), Path(image_root)
    if not mask_root.is_dir():
        raise StarftError(f"mask folder '{mask_root}' does not exist or is not a folder")
    out = []
    for path in image_paths:
        try:
            relative = Path(path).relative_to(image_root)
        except ValueError:
            raise StarftError(
                f"image '{path}' is not under '{image_root}', so its mask path is undefined"
            ) from None
        out.append(mask_root / relative.with_suffix(".png"))
    return out

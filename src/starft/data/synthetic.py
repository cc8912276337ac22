"""A procedurally generated, deterministic classification dataset for tests, benchmarks and demos.

Each class has a fixed look, a coarse grid of colours that depends only on the class index (not on
``seed``); each sample adds Gaussian pixel noise drawn from a generator seeded by ``(seed, index)``.
So a sample is a pure function of ``(seed, index)``, any worker can draw any sample in any order,
and two datasets with different seeds are independent train/test draws of the same task. With
groups, each group paints a coloured frame around the image: a nuisance attribute independent of
the class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from starft.data.base import ClassificationDataset, Transform
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

GRID = 4  # class pattern resolution: GRID x GRID colour cells
_CLASS_SEED = 0x5EED_C1A5  # fixed streams so class/group looks never depend on the sample seed
_GROUP_SEED = 0x5EED_6A0B


class SyntheticDataset(ClassificationDataset):
    """``num_samples`` RGB images of ``image_size`` pixels; the label of index ``i`` is
    ``i % num_classes`` and its group (with ``num_groups > 0``) is ``(i // num_classes) %
    num_groups``, so classes and groups are balanced and uncorrelated."""

    fixed_images = True  # row i's pixels come from default_rng((seed, i)): the same every read

    def __init__(
        self,
        num_classes: int = 10,
        num_samples: int = 200,
        *,
        image_size: int = 32,
        seed: int = 0,
        transform: Transform | None = None,
        classnames: Sequence[str] | None = None,
        templates: TemplateSpec | None = None,
        num_groups: int = 0,
        noise: float = 0.1,
        on_bad_image: str = "error",
    ) -> None:
        for name, value, low in (
            ("num_classes", num_classes, 1),
            ("num_samples", num_samples, 1),
            ("image_size", image_size, GRID),
            ("num_groups", num_groups, 0),
            ("seed", seed, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise StarftError(
                    f"synthetic dataset: {name} must be an integer >= {low}, got {value!r}"
                )
        if noise < 0:
            raise StarftError(f"synthetic dataset: noise must be >= 0, got {noise!r}")
        if classnames is not None and len(classnames) != num_classes:
            raise StarftError(
                f"synthetic dataset: {len(classnames)} class names for num_classes={num_classes}"
            )
        self.seed = seed
        self.image_size = image_size
        self.noise = float(noise)
        # Only the GRID x GRID grids are stored (full-size patterns for 1000 classes at 224 px
        # would take 600 MB); one fancy-indexing gather per sample upsamples them.
        self._grids = np.stack([_class_grid(c) for c in range(num_classes)])
        cells = (np.arange(image_size) * GRID) // image_size
        self._rows, self._cols = cells[:, None], cells[None, :]
        self._frame = max(1, image_size // 8)
        self._group_colours = [_group_colour(g) for g in range(num_groups)]
        indices = range(num_samples)
        super().__init__(
            classnames=classnames or [f"class_{k}" for k in range(num_classes)],
            labels=[i % num_classes for i in indices],
            templates=templates,
            groups=[(i // num_classes) % num_groups for i in indices] if num_groups else None,
            group_names=[f"group_{g}" for g in range(num_groups)] if num_groups else None,
            transform=transform,
            # Accepted so every dataset takes the same common arguments; generated images are
            # never unreadable, so the policy never triggers.
            on_bad_image=on_bad_image,
        )

    def read_image(self, index: int) -> Image.Image:
        """Class pattern, group frame, then noise from ``default_rng((seed, index))``; uint8 RGB."""
        pixels = self._grids[self.labels[index]][self._rows, self._cols]  # a new array
        if self.groups is not None:
            colour, width = self._group_colours[self.groups[index]], self._frame
            pixels[:width], pixels[-width:] = colour, colour
            pixels[:, :width], pixels[:, -width:] = colour, colour
        if self.noise > 0:
            rng = np.random.default_rng((self.seed, index))
            pixels += self.noise * rng.standard_normal(pixels.shape, dtype=np.float32)
        np.clip(pixels, 0.0, 1.0, out=pixels)
        return Image.fromarray((pixels * 255.0 + 0.5).astype(np.uint8))  # HxWx3 uint8 -> RGB


def _class_grid(label: int) -> np.ndarray:
    return np.random.default_rng((_CLASS_SEED, label)).random((GRID, GRID, 3), dtype=np.float32)


def _group_colour(group: int) -> np.ndarray:
    return np.random.default_rng((_GROUP_SEED, group)).random(3, dtype=np.float32)

"""The sandbox as a classification dataset: one attribute is the label, images are pre-rendered.

Why pre-render: a training run reads every image many times (epochs, evaluation), and on CPU the
model is the bottleneck only if image loading is nearly free. Rendering the whole table once at
construction (about 0.5 ms an image on one core) and serving ``PIL.Image.fromarray`` views costs
``n * size² * 3`` bytes (300 MB for 50k images at 64 px) and makes every later access cheap and
identical across workers (the array is shared copy-on-write by forked DataLoader workers).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from starft.data.base import ClassificationDataset, Transform
from starft.data.templates import TemplateSpec
from starft.errors import StarftError
from starft.sandbox.captions import caption
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.world import ATTRIBUTES, AttributeTable, render_table, vocabulary

logger = logging.getLogger(__name__)

_CHUNK = 4096  # images rendered per render_table call (bounds the progress-log granularity)
_TASKS = "tasks.json"


def default_templates(label_attribute: str) -> list[str]:
    """The zero-shot/FLYP templates of a label attribute (``resources/sandbox/tasks.json``)."""
    templates = read_sandbox_json(_TASKS)["templates"]
    if label_attribute not in templates:
        raise StarftError(
            f"no sandbox templates for label attribute '{label_attribute}' "
            f"(known: {', '.join(ATTRIBUTES)})"
        )
    return list(templates[label_attribute])


def group_names(group_by: Sequence[str]) -> list[str]:
    """Names of every combination of ``group_by`` values, in group-id order (``"circle|water"``)."""
    words = [vocabulary(attribute) for attribute in group_by]
    return ["|".join(combo) for combo in itertools.product(*words)]


def group_ids(table: AttributeTable, group_by: Sequence[str]) -> np.ndarray:
    """Mixed-radix group id of each row over ``group_by`` (the last attribute varies fastest)."""
    ids = np.zeros(len(table), dtype=np.int64)
    for attribute in group_by:
        ids = ids * len(vocabulary(attribute)) + table[attribute]
    return ids


class SandboxDataset(ClassificationDataset):
    """Images of an :class:`AttributeTable` labelled by one attribute.

    ``seed`` selects the rendering streams (row ``i`` is drawn with ``default_rng((seed, i))``),
    so two datasets with the same table and seed hold identical pixels and different seeds never
    share an image. ``group_by`` makes every combination of those attributes a group
    (``"circle|water"``). With ``with_captions=True`` each sample carries a fresh pretraining
    caption drawn from the global torch RNG, which the training loop seeds per (seed, epoch,
    index): captions change every epoch yet a run is reproducible. ``minority_groups`` (group ids)
    is set by tasks whose groups have a majority/minority split.
    """

    def __init__(
        self,
        table: AttributeTable,
        *,
        label_attribute: str,
        seed: int,
        image_size: int = 64,
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        group_by: Sequence[str] | None = None,
        with_captions: bool = False,
        on_bad_image: str = "error",
        name: str = "sandbox",
        minority_groups: Sequence[int] | None = None,
    ) -> None:
        if label_attribute not in ATTRIBUTES:
            raise StarftError(
                f"{name}: label_attribute must be one of {', '.join(ATTRIBUTES)}, "
                f"got '{label_attribute}'"
            )
        if not isinstance(seed, int) or seed < 0:
            raise StarftError(f"{name}: seed must be an integer >= 0, got {seed!r}")
        if len(table) == 0:
            raise StarftError(f"{name}: the attribute table is empty")
        group_by = None if group_by is None else tuple(group_by)
        if group_by is not None:
            unknown = [a for a in group_by if a not in ATTRIBUTES]
            if not group_by or unknown or len(set(group_by)) != len(group_by):
                raise StarftError(
                    f"{name}: group_by must name distinct attributes of {', '.join(ATTRIBUTES)}, "
                    f"got {group_by}"
                )
        super().__init__(
            classnames=vocabulary(label_attribute),
            labels=table[label_attribute].tolist(),
            templates=default_templates(label_attribute) if templates is None else templates,
            groups=None if group_by is None else group_ids(table, group_by).tolist(),
            group_names=None if group_by is None else group_names(group_by),
            transform=transform,
            # Accepted so every dataset takes the same arguments; rendered images never fail.
            on_bad_image=on_bad_image,
        )
        self.name = name
        self.table = table
        self.label_attribute = label_attribute
        self.seed = seed
        self.image_size = image_size
        self.group_by = group_by
        self.with_captions = with_captions
        self.minority_groups: list[int] | None = (
            None if minority_groups is None else sorted(int(g) for g in minority_groups)
        )
        if self.minority_groups is not None and self.group_names is None:
            raise StarftError(f"{name}: minority_groups given but the dataset has no groups")
        self.images = self._render()

    def _render(self) -> np.ndarray:
        """Every image, rendered once, in chunks (any chunking gives the same pixels)."""
        size, count = self.image_size, len(self.table)
        images = np.empty((count, size, size, 3), np.uint8)
        started = time.perf_counter()
        for start in range(0, count, _CHUNK):
            stop = min(start + _CHUNK, count)
            rows = self.table.subset(np.arange(start, stop))
            render_table(rows, self.seed, size, start=start, out=images[start:stop])
            if count > _CHUNK:
                logger.info("%s: rendered %d/%d images", self.name, stop, count)
        logger.debug(
            "%s: %d images of %d px in %.1f s",
            self.name,
            count,
            size,
            time.perf_counter() - started,
        )
        images.flags.writeable = False
        return images

    def __repr__(self) -> str:
        groups = "" if self.group_names is None else f", groups={len(self.group_names)}"
        return (
            f"SandboxDataset(name={self.name!r}, n={len(self)}, label={self.label_attribute!r}, "
            f"classes={self.num_classes}{groups}, seed={self.seed}, size={self.image_size})"
        )

    def read_image(self, index: int) -> Image.Image:
        """The pre-rendered image ``index`` as an RGB PIL image."""
        return Image.fromarray(self.images[index])

    def attributes(self, index: int) -> dict[str, int]:
        """All four attribute ids of sample ``index``."""
        return self.table[index]

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        """The sample dict; with captions, a caption drawn from the (seeded) global torch RNG."""
        sample = super().__getitem__(index)
        if sample is not None and self.with_captions:
            rng = np.random.default_rng(int(torch.randint(2**62, (1,)).item()))
            sample["caption"] = caption(self.table[sample["index"]], rng)
        return sample

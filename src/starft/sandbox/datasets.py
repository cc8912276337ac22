"""The sandbox as a classification dataset: one attribute is the label, images are pre-rendered.

Why pre-render: a training run reads every image many times (epochs, evaluation), and on CPU the
model is the bottleneck only if image loading is nearly free. Rendering the whole table once at
construction (about 0.5 ms an image on one core) and serving ``PIL.Image.fromarray`` views costs
``n * size² * 3`` bytes (300 MB for 50k images at 64 px) and makes every later access cheap and
identical across workers (the array is shared copy-on-write by forked DataLoader workers).

Region fields (masks, parts, marker boxes; :mod:`starft.sandbox.fields`) are not stored: a mask
is replayed per sample from the row's own stream (:mod:`starft.sandbox.layers`), which costs a
lookup, and marker boxes are kept from the render (one small row each).
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
from starft.sandbox.fields import FIELD_KEYS, MarkerPlan, check_mask_mode, parse_fields
from starft.sandbox.layers import object_fields, part_names, row_object
from starft.sandbox.markers import draw_marker, marker_stream, place_marker, xyxy
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


# Group keys besides the attributes: the dataset's label (for label spaces other than an
# attribute's words) and whether the image carries a marker.
GROUP_KEYS = (*ATTRIBUTES, "label", "marker")


def group_names(
    group_by: Sequence[str],
    classnames: Sequence[str] | None = None,
    marker_kind: str | None = None,
) -> list[str]:
    """Names of every combination of ``group_by`` values, in group-id order (``"circle|water"``;
    ``"label"`` takes ``classnames``, ``"marker"`` is ``none`` or the marker kind)."""
    words = []
    for key in group_by:
        if key == "label":
            words.append(list(classnames or []))
        elif key == "marker":
            words.append(["none", marker_kind or "marker"])
        else:
            words.append(vocabulary(key))
    return ["|".join(combo) for combo in itertools.product(*words)]


def group_ids(
    table: AttributeTable,
    group_by: Sequence[str],
    labels: np.ndarray | None = None,
    num_classes: int = 0,
    marked: np.ndarray | None = None,
) -> np.ndarray:
    """Mixed-radix group id of each row over ``group_by`` (the last key varies fastest)."""
    ids = np.zeros(len(table), dtype=np.int64)
    for key in group_by:
        if key == "label":
            if labels is None:
                raise StarftError("group_ids: grouping by 'label' needs the labels")
            ids = ids * num_classes + labels
        elif key == "marker":
            if marked is None:
                raise StarftError("group_ids: grouping by 'marker' needs a marker plan")
            ids = ids * 2 + marked.astype(np.int64)
        else:
            ids = ids * len(vocabulary(key)) + table[key]
    return ids


class SandboxDataset(ClassificationDataset):
    """Images of an :class:`AttributeTable` labelled by one attribute.

    ``seed`` selects the rendering streams (row ``i`` is drawn with ``default_rng((seed, i))``),
    so two datasets with the same table and seed hold identical pixels and different seeds never
    share an image. ``group_by`` makes every combination of those keys a group
    (``"circle|water"``; keys are attributes, ``"label"`` or ``"marker"``). With
    ``with_captions=True`` each sample carries a fresh pretraining caption drawn from the global
    torch RNG, which the training loop seeds per (seed, epoch, index): captions change every epoch
    yet a run is reproducible. ``minority_groups`` (group ids) is set by tasks whose groups have a
    majority/minority split.

    ``classnames`` with ``label_map`` relabel the attribute (``label = label_map[value]``: a label
    space of superclasses). ``markers`` draws a marker on the rows it marks. ``fields`` adds
    region fields to every sample (:mod:`starft.sandbox.fields`); ``mask_mode`` picks soft or
    binary masks.
    """

    fixed_images = True  # rendered once at construction; reads return the same array rows

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
        classnames: Sequence[str] | None = None,
        label_map: Sequence[int] | None = None,
        markers: MarkerPlan | None = None,
        fields: str | Sequence[str] | None = None,
        mask_mode: str = "soft",
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
        self.fields = parse_fields(fields, name)
        # Batch keys of the fields: parts come with their weights, boxes with their labels.
        self.region_keys = tuple(key for field in sorted(self.fields) for key in FIELD_KEYS[field])
        self.mask_mode = check_mask_mode(mask_mode, name)
        if markers is not None:
            markers.check(len(table), image_size, name)
        labels, classnames = _labels(table, label_attribute, classnames, label_map, name)
        group_by = None if group_by is None else tuple(group_by)
        if group_by is not None:
            unknown = [key for key in group_by if key not in GROUP_KEYS]
            if not group_by or unknown or len(set(group_by)) != len(group_by):
                raise StarftError(
                    f"{name}: group_by must name distinct keys of {', '.join(GROUP_KEYS)}, "
                    f"got {group_by}"
                )
            if "marker" in group_by and markers is None:
                raise StarftError(f"{name}: group_by 'marker' needs a marker plan")
        marked = None if markers is None else markers.present
        super().__init__(
            classnames=classnames,
            labels=labels.tolist(),
            templates=default_templates(label_attribute) if templates is None else templates,
            groups=None
            if group_by is None
            else group_ids(table, group_by, labels, len(classnames), marked).tolist(),
            group_names=None
            if group_by is None
            else group_names(group_by, classnames, None if markers is None else markers.kind),
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
        self.markers = markers
        self.part_names = part_names()
        self.minority_groups: list[int] | None = (
            None if minority_groups is None else sorted(int(g) for g in minority_groups)
        )
        if self.minority_groups is not None and self.group_names is None:
            raise StarftError(f"{name}: minority_groups given but the dataset has no groups")
        # (N, 4) float32 xyxy marker box per row, NaN on rows without a marker.
        self.marker_boxes = np.full((len(table), 4), np.nan, np.float32)
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
        if self.markers is not None:
            for index in np.flatnonzero(self.markers.present):
                self._mark(images[index], int(index))
        logger.debug(
            "%s: %d images of %d px in %.1f s",
            self.name,
            count,
            size,
            time.perf_counter() - started,
        )
        images.flags.writeable = False
        self.marker_boxes.flags.writeable = False
        return images

    def _mark(self, image: np.ndarray, index: int) -> None:
        """Draw row ``index``'s marker clear of its (replayed) object and keep its box."""
        assert self.markers is not None
        obj = row_object(self.table[index], self.seed, index, self.image_size)
        kind, grid = self.markers.kind, self.markers.grid
        try:
            x0, y0, side = place_marker(obj, kind, grid, marker_stream(self.seed, index))
        except StarftError as error:
            raise StarftError(f"{self.name}: row {index}: {error}") from error
        draw_marker(image, kind, x0, y0, side)
        self.marker_boxes[index] = xyxy(x0, y0, side)

    def __repr__(self) -> str:
        groups = "" if self.group_names is None else f", groups={len(self.group_names)}"
        return (
            f"SandboxDataset(name={self.name!r}, n={len(self)}, label={self.label_attribute!r}, "
            f"classes={self.num_classes}{groups}, seed={self.seed}, size={self.image_size})"
        )

    @property
    def field_keys(self) -> tuple[str, ...]:
        """The region keys every sample of this dataset carries (empty by default)."""
        return tuple(key for field in sorted(self.fields) for key in FIELD_KEYS[field])

    def read_image(self, index: int) -> Image.Image:
        """The pre-rendered image ``index`` as an RGB PIL image."""
        return Image.fromarray(self.images[index])

    def attributes(self, index: int) -> dict[str, int]:
        """All four attribute ids of sample ``index``."""
        return self.table[index]

    def region_fields(self, index: int) -> dict[str, torch.Tensor]:
        """The requested region fields of sample ``index`` at the native image resolution."""
        out = {
            key: torch.from_numpy(value)
            for key, value in object_fields(
                self.table[index],
                self.seed,
                index,
                self.image_size,
                self.fields - {"boxes"},
                self.mask_mode,
            ).items()
        }
        if "boxes" in self.fields:
            box = self.marker_boxes[index]
            has = not np.isnan(box[0])
            out["boxes"] = torch.from_numpy(
                box[None].copy() if has else np.zeros((0, 4), np.float32)
            )
            label = [] if not has or self.markers is None else [self.markers.label]
            out["box_labels"] = torch.tensor(label, dtype=torch.int64)
        return out

    def read_regions(self, index: int, image: Any) -> dict[str, Any]:
        """The requested fields at native resolution; the base class moves them with the image
        through the transform (one torchvision v2 call, so a random crop crops both)."""
        return self.region_fields(index)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        """The sample dict; with captions, a caption drawn from the (seeded) global torch RNG."""
        sample = super().__getitem__(index)
        if sample is None:
            return None
        if self.with_captions:
            rng = np.random.default_rng(int(torch.randint(2**62, (1,)).item()))
            sample["caption"] = caption(self.table[sample["index"]], rng)
        return sample


def _labels(
    table: AttributeTable,
    label_attribute: str,
    classnames: Sequence[str] | None,
    label_map: Sequence[int] | None,
    name: str,
) -> tuple[np.ndarray, list[str]]:
    """Labels of every row and the class names: the attribute's words, or a relabelling."""
    values = table[label_attribute]
    if label_map is None:
        if classnames is not None:
            raise StarftError(f"{name}: classnames given without a label_map")
        return values, vocabulary(label_attribute)
    mapping = np.asarray(label_map, dtype=np.int64)
    count = len(vocabulary(label_attribute))
    if mapping.shape != (count,):
        raise StarftError(
            f"{name}: label_map needs one class id per {label_attribute} ({count}), "
            f"got {mapping.shape[0] if mapping.ndim else 0}"
        )
    if not classnames or mapping.min() < 0 or mapping.max() >= len(classnames):
        raise StarftError(
            f"{name}: label_map ids must index the {len(classnames or [])} classnames"
        )
    return mapping[values], list(classnames)

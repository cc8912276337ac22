"""Masks, part masks and boxes that follow the image through every crop, flip and resize.

A sample may carry region fields besides its image (the sample-field convention every dataset
keeps):

* ``mask``: float32 ``[H, W]`` in [0, 1] (binary or soft), the object/foreground mask;
  ``scene_mask`` the same for the background (the sandbox's scene);
* ``parts``: float32 ``[P, H, W]`` named part masks and ``part_weights`` float32 ``[P]`` (a dataset
  padding parts to a fixed ``P`` gives the padding weight 0 and lists its ``part_names``);
* ``boxes``: float32 ``[K, 4]`` xyxy in pixels and ``box_labels`` int64 ``[K]``; ``K`` varies per
  sample, so the collate keeps both as lists of tensors.

Before the transform the fields are in pixels of the decoded image; after it, of the transformed
image. The geometry is torchvision.transforms.v2's own: the image, :class:`tv_tensors.Mask` and
:class:`tv_tensors.BoundingBoxes` go through ONE v2 call, so a random crop draws its parameters once
for all of them. A model's transform (open_clip builds a v1 ``Compose``) is converted step by step
by :func:`region_transform`; a step without a known mask/box-aware equivalent is an error, never a
silently misaligned mask. Masks are resized with nearest-neighbour interpolation (torchvision's rule
for masks), so a binary mask stays binary.

Any dataset emits these fields by calling :func:`transform_sample` (the base class
:class:`~starft.data.base.ClassificationDataset` does it for subclasses that override
``read_regions``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from PIL import Image
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from starft.errors import StarftError
from starft.utils.transform_steps import EQUIVALENT_STEPS

MASK_KEYS = ("mask", "scene_mask", "parts")
BOX_KEYS = ("boxes", "box_labels")
REGION_KEYS = ("mask", "scene_mask", "parts", "part_weights", "boxes", "box_labels")
#: Batch fields whose length differs per sample: the collate keeps them as lists of tensors.
LIST_KEYS = ("boxes", "box_labels")


def _v1_converters() -> dict[type, Callable[[Any], list[Any]]]:
    """v1 transform type -> the v2 steps doing the same to the image (and the geometry to masks)."""
    from torchvision import transforms as v1

    def to_tensor(_: Any) -> list[Any]:
        # v1's own conversion on the PIL image only (v2.ToDtype rounds differently in the last
        # bit), so the image is exactly what the model's transform gives it.
        return [v2.Lambda(_pil_to_image, Image.Image)]

    table: dict[type, Callable[[Any], list[Any]]] = {
        v1.Resize: lambda t: [
            v2.Resize(t.size, t.interpolation, max_size=t.max_size, antialias=t.antialias)
        ],
        v1.CenterCrop: lambda t: [v2.CenterCrop(t.size)],
        v1.RandomResizedCrop: lambda t: [
            v2.RandomResizedCrop(t.size, t.scale, t.ratio, t.interpolation, t.antialias)
        ],
        v1.RandomHorizontalFlip: lambda t: [v2.RandomHorizontalFlip(t.p)],
        v1.RandomVerticalFlip: lambda t: [v2.RandomVerticalFlip(t.p)],
        v1.Normalize: lambda t: [v2.Normalize(t.mean, t.std, t.inplace)],
        v1.ToTensor: to_tensor,
        v1.ConvertImageDtype: lambda t: [v2.ToDtype(t.dtype, scale=True)],
        # Photometric steps touch pixel values only; v2's versions leave masks and boxes alone.
        v1.ColorJitter: lambda t: [v2.ColorJitter(t.brightness, t.contrast, t.saturation, t.hue)],
        v1.Grayscale: lambda t: [v2.Grayscale(t.num_output_channels)],
    }
    # Steps of model libraries (open_clip's MaybeToTensor, ...), declared by their backends.
    for step_type, kind in EQUIVALENT_STEPS.items():
        table[step_type] = to_tensor if kind == "to_tensor" else _image_only
    return table


def _image_only(step: Any) -> list[Any]:
    """A step acting on the PIL image only (a colour-mode change): masks and boxes pass through."""
    return [v2.Lambda(step, Image.Image)]


def _pil_to_image(image: Image.Image) -> tv_tensors.Image:
    from torchvision.transforms import functional

    return tv_tensors.Image(functional.to_tensor(image))


@functools.lru_cache(maxsize=64)
def region_transform(transform: Callable[..., Any]) -> v2.Transform:
    """A v2 transform doing what ``transform`` does to an image, to masks and boxes as well.

    ``transform`` is a v2 transform (returned as is), or a v1 ``Compose`` (or single step) whose
    steps all have v2 equivalents; anything else raises a :class:`StarftError` naming the step.
    Conversions are cached per transform object (a dataset converts its transform once).
    """
    if isinstance(transform, v2.Transform):
        return transform
    from torchvision import transforms as v1

    steps = transform.transforms if isinstance(transform, v1.Compose) else [transform]
    table = _v1_converters()
    converted: list[Any] = []
    for step in steps:
        if isinstance(step, v2.Transform):
            converted.append(step)
            continue
        convert = table.get(type(step))
        if convert is None:
            known = ", ".join(sorted(t.__name__ for t in table))
            raise StarftError(
                f"transform step {type(step).__name__} has no mask/box-aware equivalent, so "
                f"masks and boxes could not follow it (known steps: {known}; or pass a "
                "torchvision.transforms.v2 transform)"
            )
        converted.extend(convert(step))
    return v2.Compose(converted)


def check_regions(regions: dict[str, Any], size: tuple[int, int], where: str) -> None:
    """Shapes and dtypes of the region fields against the image ``size`` (width, height)."""
    width, height = size
    unknown = sorted(set(regions) - set(REGION_KEYS))
    if unknown:
        raise StarftError(
            f"{where}: unknown region field '{unknown[0]}' ({', '.join(REGION_KEYS)})"
        )
    for key, ndim in (("mask", 2), ("scene_mask", 2), ("parts", 3)):
        value = regions.get(key)
        if value is None:
            continue
        if (
            not isinstance(value, Tensor)
            or value.ndim != ndim
            or value.shape[-2:] != (height, width)
        ):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise StarftError(
                f"{where}: '{key}' must be a {ndim}-d tensor ending in the image size "
                f"({height}, {width}), got {shape}"
            )
    if ("parts" in regions) != ("part_weights" in regions):
        raise StarftError(f"{where}: 'parts' and 'part_weights' come together")
    if "parts" in regions and regions["part_weights"].shape != (regions["parts"].shape[0],):
        raise StarftError(f"{where}: 'part_weights' must have one weight per part")
    if ("boxes" in regions) != ("box_labels" in regions):
        raise StarftError(f"{where}: 'boxes' and 'box_labels' come together")
    if "boxes" in regions:
        boxes, labels = regions["boxes"], regions["box_labels"]
        if boxes.ndim != 2 or boxes.shape[1] != 4 or labels.shape != (boxes.shape[0],):
            raise StarftError(
                f"{where}: 'boxes' must be [K, 4] and 'box_labels' [K], got "
                f"{tuple(boxes.shape)} and {tuple(labels.shape)}"
            )


def _image_size(image: Any) -> tuple[int, int]:
    """(width, height) of a PIL image or a ``[..., H, W]`` tensor."""
    if isinstance(image, Image.Image):
        return image.size
    return int(image.shape[-1]), int(image.shape[-2])


def transform_sample(
    transform: Callable[..., Any] | None,
    image: Any,
    regions: dict[str, Any],
    *,
    where: str = "sample",
) -> dict[str, Any]:
    """``image`` and its region fields under one transform: ``{"image": ..., "mask": ..., ...}``.

    Without region fields this is ``transform(image)`` exactly (the image-only path every dataset
    has always taken). With them, the transform is converted by :func:`region_transform` and the
    image, masks and boxes go through it together; boxes that end up outside the image are
    dropped with their labels. ``where`` names the sample in errors.
    """
    if not regions:
        return {"image": image if transform is None else transform(image)}
    size = _image_size(image)
    check_regions(regions, size, where)
    out = {key: value for key, value in regions.items() if key in ("part_weights",)}
    if transform is None:
        return {"image": image, **regions}
    inputs: dict[str, Any] = {"image": image}
    for key in MASK_KEYS:
        if key in regions:
            inputs[key] = tv_tensors.Mask(regions[key].float())
    if "boxes" in regions:
        inputs["boxes"] = tv_tensors.BoundingBoxes(
            regions["boxes"].float(), format="XYXY", canvas_size=(size[1], size[0])
        )
    result = region_transform(transform)(inputs)
    out["image"] = _plain(result["image"])
    for key in MASK_KEYS:
        if key in result:
            out[key] = _plain(result[key]).float()
    if "boxes" in result:
        boxes = v2.functional.clamp_bounding_boxes(result["boxes"])
        boxes = _plain(boxes).float()
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        out["boxes"] = boxes[keep]
        out["box_labels"] = regions["box_labels"].long()[keep]
    return out


def _plain(value: Any) -> Any:
    """A tv_tensor as a plain tensor (downstream code must not see v2's subclass rules)."""
    return value.as_subclass(Tensor) if isinstance(value, Tensor) else value

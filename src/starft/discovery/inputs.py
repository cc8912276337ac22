"""``discover``'s inputs from a model and a dataset: regions, their embeddings, probabilities.

Regions are boxes in pixels of the *model input* (the image after the model's evaluation
transform): a k x k grid (``"grid:K"``), the boxes the dataset's samples carry (``"boxes"``:
the ``boxes`` / ``box_labels`` fields), or boxes given per image. They are embedded by the model
protocol's :meth:`~starft.models.ClipModel.region_features`, either by crop-and-encode (the
reference, any backbone) or by the backbone's one-pass fast path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch import Tensor

from starft.discovery.discover import DiscoveryResult, discover
from starft.discovery.regions import grid_boxes
from starft.discovery.zeroshot import zero_shot_probs
from starft.errors import StarftError
from starft.models import ClipModel, build_zeroshot_head
from starft.models.protocol import REGION_METHODS
from starft.models.regions import check_boxes

if TYPE_CHECKING:
    from starft.data.base import ClassificationDataset

#: Region sources by name; ``grid:K`` also accepts any K >= 1.
REGION_SPECS = ("grid:K", "boxes")


@dataclass(frozen=True)
class DiscoveryInputs:
    """Everything :func:`discover` needs, plus where the regions are and how they were scored."""

    region_embeddings: Tensor  # [R, D], normalised
    region_image: Tensor  # [R] owning image (position in ``image_indices``)
    region_boxes: Tensor  # [R, 4] (x1, y1, x2, y2) in pixels of the model input
    region_labels: Tensor | None  # [R] the samples' ``box_labels`` (regions="boxes"), else None
    image_indices: Tensor  # [I] dataset index of each image
    image_labels: Tensor  # [I]
    image_embeddings: Tensor  # [I, D], normalised
    image_probs: Tensor  # [I, C]
    region_probs: Tensor  # [R, C]
    scoring: str
    scale: float
    image_size: tuple[int, int]  # (height, width) of the model input
    regions: str  # "grid:K", "boxes" or "given"
    method: str  # region_features method


def parse_regions(spec: str) -> int | str:
    """``"grid:K"`` -> K (an int >= 1); ``"boxes"`` -> ``"boxes"``; anything else is an error."""
    text = str(spec).strip()
    if text == "boxes":
        return text
    kind, _, value = text.partition(":")
    if kind == "grid" and value.strip().isdigit() and int(value) >= 1:
        return int(value)
    raise StarftError(f"regions must be grid:K (K >= 1, e.g. grid:2) or boxes, got '{spec}'")


def grid_pixel_boxes(k: int, image_size: tuple[int, int]) -> Tensor:
    """The cells of a k x k grid, row by row, ``[k², 4]`` in pixels of an image of ``(H, W)``."""
    height, width = image_size
    scale = torch.tensor([width, height, width, height], dtype=torch.float64)
    return (grid_boxes(k) * scale).float()


def model_view(model: ClipModel, sample_image: Any, where: str) -> Tensor:
    """The ``[3, H, W]`` tensor the model sees for a sample's image (PIL images are preprocessed
    with ``model.preprocess_val``); a tensor of another size is an error naming ``where``."""
    image = model.preprocess_val(sample_image) if isinstance(sample_image, Image.Image) else None
    image = sample_image if image is None else image
    if not isinstance(image, Tensor) or image.ndim != 3:
        raise StarftError(
            f"discovery inputs: {where}: the image is a {type(image).__name__}, not a [3, H, W] "
            "tensor; create the dataset with transform=model.preprocess_val"
        )
    if tuple(image.shape[-2:]) != tuple(model.image_size):
        raise StarftError(
            f"discovery inputs: {where}: the image is {tuple(image.shape[-2:])} but the model "
            f"takes {tuple(model.image_size)}; create the dataset with "
            "transform=model.preprocess_val"
        )
    return image


@torch.inference_mode()
def encode_regions(
    model: ClipModel,
    images: Tensor,
    boxes: Sequence[Tensor],
    *,
    method: str = "crop",
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Normalised embeddings of whole images ``[B, D]`` and of their boxes ``[sum K_i, D]``.

    ``images`` are model inputs ``[B, 3, H, W]``; ``boxes[i]`` is ``[K_i, 4]`` (x1, y1, x2, y2)
    in pixels of image i. ``method`` is ``region_features``': ``crop`` (crop-and-encode, the
    reference), ``fast`` (the backbone's one-pass path) or ``auto``.
    """
    if method not in REGION_METHODS:
        raise StarftError(
            f"region method must be one of {', '.join(REGION_METHODS)}, got '{method}'"
        )
    device = device if device is not None else next(model.parameters()).device
    images = images.to(device)
    full = model.encode_image(images, normalize=True).float()
    regions = model.region_features(images, [b.to(device) for b in boxes], method=method).float()
    return full.cpu(), regions.cpu()


def _keep_samples(samples: list[Any]) -> list[Any]:
    return samples


def compute_discovery_inputs(
    model: ClipModel,
    dataset: ClassificationDataset,
    *,
    regions: str | Sequence[Tensor] = "grid:2",
    method: str = "crop",
    scoring: str = "model",
    indices: Iterable[int] | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device | None = None,
) -> DiscoveryInputs:
    """Regions of every image of a starft dataset, their embeddings and the zero-shot
    probabilities from the dataset's class names and templates.

    ``regions``: ``"grid:K"``; ``"boxes"`` (each sample's ``boxes`` field, float ``[K, 4]`` xyxy
    in pixels of the transformed image, and its ``box_labels``); or one ``[K_i, 4]`` pixel-box
    tensor per selected image (in ``indices`` order). Samples are read through the dataset, which
    should be built with ``transform=model.preprocess_val`` (an untransformed PIL image is
    preprocessed here, except with ``"boxes"``, whose pixels belong to the dataset's transform).
    Unreadable samples skipped by the dataset are left out. The model is evaluated in eval mode
    and left in the mode it was in.
    """
    for attr in ("labels", "classnames", "templates"):
        if not hasattr(dataset, attr):
            raise StarftError(f"discovery inputs: dataset {dataset!r} has no '{attr}'")
    chosen = list(range(len(dataset.labels)) if indices is None else (int(i) for i in indices))
    if not chosen:
        raise StarftError("discovery inputs: no images selected")
    if isinstance(regions, str):
        spec = parse_regions(regions)
        given = None
        region_name = "boxes" if spec == "boxes" else f"grid:{spec}"
    else:
        if isinstance(regions, Tensor):
            raise StarftError(
                "discovery inputs: give regions as a list of [K_i, 4] tensors, one per image "
                f"(got one tensor of shape {tuple(regions.shape)})"
            )
        spec, given, region_name = None, list(regions), "given"
        if len(given) != len(chosen):
            raise StarftError(
                f"discovery inputs: boxes for {len(given)} images but {len(chosen)} selected"
            )
    if method not in REGION_METHODS:
        raise StarftError(
            f"region method must be one of {', '.join(REGION_METHODS)}, got '{method}'"
        )
    grid = grid_pixel_boxes(spec, model.image_size) if isinstance(spec, int) else None
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, chosen),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_keep_samples,
    )
    was_training = model.training
    model.eval()
    kept: list[int] = []
    image_chunks, region_chunks, box_list, box_labels = [], [], [], []
    try:
        position = 0
        for samples in loader:
            images, boxes = [], []
            for sample in samples:
                pos, position = position, position + 1
                if sample is None:
                    continue
                where = f"{dataset!r} sample {chosen[pos]}"
                if spec == "boxes":
                    boxes.append(_sample_boxes(sample, where))
                    box_labels.append(_sample_box_labels(sample, len(boxes[-1]), where))
                    if not isinstance(sample["image"], Tensor):
                        raise StarftError(
                            f"discovery inputs: {where}: boxes are in pixels of the transformed "
                            "image, but the dataset has no transform; create it with "
                            "transform=model.preprocess_val"
                        )
                else:
                    boxes.append(grid if given is None else torch.as_tensor(given[pos]).float())
                images.append(model_view(model, sample["image"], where))
                _check_image_boxes(images[-1], boxes[-1], where)
                kept.append(chosen[pos])
            if not images:
                continue
            image_features, region_features = encode_regions(
                model, torch.stack(images), boxes, method=method, device=device
            )
            image_chunks.append(image_features)
            region_chunks.append(region_features)
            box_list.extend(boxes)
        head = build_zeroshot_head(model, dataset.classnames, dataset.templates, device=device)
        model_scale = float(model.scale().detach().item())
    finally:
        model.train(was_training)
    if not kept:
        raise StarftError("discovery inputs: every selected image was skipped as unreadable")
    image_emb = torch.cat(image_chunks)
    region_emb = torch.cat(region_chunks)
    counts = torch.tensor([len(b) for b in box_list])
    if region_emb.shape[0] == 0:
        raise StarftError("discovery inputs: the selected images have no regions")
    probs = zero_shot_probs(
        image_emb, region_emb, head.cpu(), scoring=scoring, model_scale=model_scale
    )
    return DiscoveryInputs(
        region_embeddings=region_emb,
        region_image=torch.arange(len(kept)).repeat_interleave(counts),
        region_boxes=torch.cat([b.float().cpu() for b in box_list]),
        region_labels=torch.cat(box_labels) if spec == "boxes" else None,
        image_indices=torch.tensor(kept, dtype=torch.long),
        image_labels=torch.tensor([dataset.labels[i] for i in kept], dtype=torch.long),
        image_embeddings=image_emb,
        image_probs=probs.image_probs,
        region_probs=probs.region_probs,
        scoring=probs.scoring,
        scale=probs.scale,
        image_size=tuple(model.image_size),
        regions=region_name,
        method=method,
    )


def _check_image_boxes(image: Tensor, boxes: Tensor, where: str) -> None:
    """The model protocol's box check, naming the dataset sample instead of a batch position."""
    try:
        check_boxes(image[None], [boxes])
    except StarftError as error:
        raise StarftError(
            f"discovery inputs: {where}: {error}".replace(" of image 0", "")
        ) from None


def _sample_boxes(sample: dict[str, Any], where: str) -> Tensor:
    if "boxes" not in sample:
        raise StarftError(
            f"discovery inputs: {where} has no 'boxes' field (regions=boxes needs a dataset "
            "whose samples carry boxes; use grid:K regions)"
        )
    boxes = torch.as_tensor(sample["boxes"], dtype=torch.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise StarftError(
            f"discovery inputs: {where}: 'boxes' must be [K, 4], got {tuple(boxes.shape)}"
        )
    return boxes


def _sample_box_labels(sample: dict[str, Any], count: int, where: str) -> Tensor:
    labels = sample.get("box_labels")
    if labels is None:
        return torch.full((count,), -1, dtype=torch.long)
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if len(labels) != count:
        raise StarftError(f"discovery inputs: {where}: {len(labels)} box_labels for {count} boxes")
    return labels


def discover_from_inputs(
    inputs: DiscoveryInputs, *, k_range: Iterable[int] | None = None, seed: int = 0
) -> DiscoveryResult:
    """:func:`discover` on computed inputs, recording how the probabilities were scored."""
    result = discover(
        inputs.region_embeddings,
        inputs.region_image,
        inputs.image_labels,
        inputs.image_probs,
        inputs.region_probs,
        k_range=k_range,
        seed=seed,
    )
    return dataclasses.replace(result, scoring=inputs.scoring, scale=inputs.scale)

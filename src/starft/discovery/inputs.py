"""Compute ``discover``'s inputs from a model and a dataset by cropping regions and encoding them.

Crop-and-encode is the backbone-agnostic reference: every region is cropped, resized to the model's
input size and sent through the image tower like a whole image. :func:`crop_and_encode` is the one
place that turns images + boxes into embeddings, so a faster region encoder can replace it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch import Tensor

from starft.discovery.discover import DiscoveryResult, discover
from starft.discovery.regions import check_boxes, crop_image, crop_tensor, grid_boxes
from starft.discovery.zeroshot import zero_shot_probs
from starft.errors import StarftError
from starft.models import ClipModel, build_zeroshot_head

if TYPE_CHECKING:
    from starft.data.base import ClassificationDataset

CROP_FROM = ("image", "tensor")


@dataclass(frozen=True)
class DiscoveryInputs:
    """Everything :func:`discover` needs, plus the boxes and how probabilities were scored."""

    region_embeddings: Tensor  # [R, D], normalised
    region_image: Tensor  # [R] owning image (position in ``image_indices``)
    region_boxes: Tensor  # [R, 4] normalised (x0, y0, x1, y1)
    image_indices: Tensor  # [I] dataset index of each image
    image_labels: Tensor  # [I]
    image_embeddings: Tensor  # [I, D], normalised
    image_probs: Tensor  # [I, C]
    region_probs: Tensor  # [R, C]
    scoring: str
    scale: float


def model_input_size(model: ClipModel) -> tuple[int, int]:
    """(height, width) the model's image tower expects."""
    size = model.preprocess_cfg.get("size") or model.model_cfg["vision_cfg"]["image_size"]
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


@torch.inference_mode()
def crop_and_encode(
    model: ClipModel,
    images: Sequence[Image.Image],
    boxes: Tensor,
    *,
    crop_from: str = "image",
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Normalised embeddings of whole images ``[B, D]`` and of their boxes ``[B, M, D]``.

    ``crop_from="image"`` crops the untransformed PIL image and resizes each crop to the model's
    input size before ``model.preprocess_val``; ``"tensor"`` crops the preprocessed image tensor
    (the model's own view, after its resize and centre crop) and resizes the crop bilinearly.
    """
    if crop_from not in CROP_FROM:
        raise StarftError(f"crop_from must be one of {', '.join(CROP_FROM)}, got '{crop_from}'")
    boxes = check_boxes(boxes)
    height, width = model_input_size(model)
    full = torch.stack([model.preprocess_val(image) for image in images])
    if crop_from == "image":
        crops = torch.stack(
            [
                model.preprocess_val(crop)
                for image in images
                for crop in crop_image(image, boxes, (width, height))
            ]
        )
    else:
        crops = crop_tensor(full, boxes, (height, width)).flatten(0, 1)
    device = device if device is not None else next(model.parameters()).device
    features = model.encode_image(torch.cat([full, crops]).to(device), normalize=True).float()
    count = len(images)
    return features[:count].cpu(), features[count:].view(count, len(boxes), -1).cpu()


def compute_discovery_inputs(
    model: ClipModel,
    dataset: ClassificationDataset,
    *,
    grid: int = 2,
    boxes: Tensor | None = None,
    crop_from: str = "image",
    scoring: str = "model",
    indices: Iterable[int] | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> DiscoveryInputs:
    """Regions (``boxes``, or a ``grid`` x ``grid`` grid) of every image of a starft dataset, their
    embeddings and the zero-shot probabilities from the dataset's class names and templates.

    Images are read untransformed (``dataset.read_image``); the model's own preprocessing is used.
    The model is evaluated in eval mode and left in the mode it was in.
    """
    for attr in ("read_image", "labels", "classnames", "templates"):
        if not hasattr(dataset, attr):
            raise StarftError(f"discovery inputs: dataset {dataset!r} has no '{attr}'")
    boxes = check_boxes(grid_boxes(grid) if boxes is None else boxes)
    chosen = list(range(len(dataset.labels)) if indices is None else indices)
    if not chosen:
        raise StarftError("discovery inputs: no images selected")
    was_training = model.training
    model.eval()
    try:
        image_chunks, region_chunks = [], []
        for start in range(0, len(chosen), batch_size):
            batch = [dataset.read_image(int(i)) for i in chosen[start : start + batch_size]]
            image_features, region_features = crop_and_encode(
                model, batch, boxes, crop_from=crop_from, device=device
            )
            image_chunks.append(image_features)
            region_chunks.append(region_features)
        head = build_zeroshot_head(model, dataset.classnames, dataset.templates, device=device)
        model_scale = float(model.scale().detach().item())
    finally:
        model.train(was_training)
    image_emb = torch.cat(image_chunks)
    region_emb = torch.cat(region_chunks)  # [I, M, D]
    n_images, n_boxes = region_emb.shape[:2]
    region_emb = region_emb.flatten(0, 1)
    probs = zero_shot_probs(
        image_emb, region_emb, head.cpu(), scoring=scoring, model_scale=model_scale
    )
    return DiscoveryInputs(
        region_embeddings=region_emb,
        region_image=torch.arange(n_images).repeat_interleave(n_boxes),
        region_boxes=boxes.float().repeat(n_images, 1),
        image_indices=torch.tensor(chosen, dtype=torch.long),
        image_labels=torch.tensor([dataset.labels[i] for i in chosen], dtype=torch.long),
        image_embeddings=image_emb,
        image_probs=probs.image_probs,
        region_probs=probs.region_probs,
        scoring=probs.scoring,
        scale=probs.scale,
    )


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

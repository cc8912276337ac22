"""RaVL's mitigation metrics: image and *region* accuracy, overall and worst-group.

Region accuracy (our definition; the paper names the metric without a formula): every evaluation
image has one ground-truth object region, the tight box around its object mask (the sample's
``mask`` field, pixels > 0.5, in the model's view). The region is embedded alone through the model
protocol's ``region_features`` (crop-and-encode by default) and classified exactly like an image:
by the zero-shot head built from the evaluated model's text tower (or by a trained linear head).
Region accuracy is the share of regions classified as the image's label; region worst-group is
the lowest such share over the dataset's groups. A model that relies on a spurious feature
outside the object loses that cue on the object's own region, so region accuracy asks whether the
object itself is recognised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from starft.data.collate import collate_samples
from starft.errors import StarftError
from starft.eval.metrics import compute_metrics
from starft.models import ClipModel, build_zeroshot_head

#: The four numbers of RaVL's mitigation table and the registered metric behind each.
MITIGATION_METRICS = {
    "image_overall": "top1",
    "image_worst_group": "worst_group_acc",
    "region_overall": "region_top1",
    "region_worst_group": "region_worst_group_acc",
}


def mask_boxes(masks: Tensor, threshold: float = 0.5) -> list[Tensor]:
    """Tight ``[1, 4]`` xyxy pixel box around each ``[H, W]`` mask's pixels above ``threshold``.

    An empty mask is an error naming its position in the batch (it has no object region).
    """
    if masks.ndim != 3:
        raise StarftError(f"object masks must be [B, H, W], got {tuple(masks.shape)}")
    boxes = []
    for i, mask in enumerate(masks):
        rows = (mask > threshold).any(dim=1).nonzero().squeeze(1)
        cols = (mask > threshold).any(dim=0).nonzero().squeeze(1)
        if rows.numel() == 0:
            raise StarftError(f"object mask {i} of the batch is empty: no object region")
        box = [cols[0].item(), rows[0].item(), cols[-1].item() + 1, rows[-1].item() + 1]
        boxes.append(torch.tensor([box], dtype=torch.float32, device=masks.device))
    return boxes


@dataclass(frozen=True)
class RegionPredictions:
    """Image and object-region logits of every readable sample, with labels and groups."""

    image_logits: Tensor  # [N, C]
    region_logits: Tensor  # [N, C]
    labels: Tensor  # [N]
    groups: Tensor  # [N], -1 where the dataset has no groups


@torch.inference_mode()
def predict_regions(
    model: ClipModel,
    dataset: torch.utils.data.Dataset,
    *,
    classnames: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    linear_head: nn.Linear | None = None,
    method: str = "crop",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> RegionPredictions:
    """Logits of every image and of its object region (:func:`mask_boxes` of its ``mask``).

    ``dataset`` must yield the model's view (``transform=model.preprocess_val``) and a ``mask``
    field (sandbox datasets: ``fields="mask"``). The head is ``linear_head`` when given, else
    the zero-shot head of ``classnames`` x ``templates`` (default: the dataset's) times the
    model's scale.
    """
    classnames = list(classnames if classnames is not None else dataset.classnames)
    templates = list(templates if templates is not None else dataset.templates)
    was_training = model.training
    model.eval().to(device)
    try:
        if linear_head is None:
            weights = build_zeroshot_head(model, classnames, templates, device=device)
            scale = model.scale().detach().float()

            def classify(features: Tensor) -> Tensor:
                return scale * features.float() @ weights.float().t()
        else:
            head = linear_head.to(device)

            def classify(features: Tensor) -> Tensor:
                return head(features.float())

        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, collate_fn=collate_samples
        )
        parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for batch in loader:
            if batch is None:
                continue
            if "mask" not in batch:
                raise StarftError(
                    f"region metrics: {dataset!r} has no 'mask' field (the object region is the "
                    "box around the object mask; sandbox datasets: fields=mask)"
                )
            images = batch["image"].to(device)
            boxes = mask_boxes(batch["mask"].to(device))
            image_features = model.encode_image(images, normalize=True)
            region_features = model.region_features(images, boxes, method=method)
            groups = torch.as_tensor(batch.get("group", [-1] * len(images))).long()
            parts.append(
                (
                    classify(image_features).cpu(),
                    classify(region_features).cpu(),
                    torch.as_tensor(batch["label"]).long().cpu(),
                    groups.cpu(),
                )
            )
    finally:
        model.train(was_training)
    if not parts:
        raise StarftError(f"region metrics: {dataset!r} has no readable sample")
    image, region, labels, groups = (torch.cat(column) for column in zip(*parts))
    return RegionPredictions(image, region, labels, groups)


def mitigation_metrics(
    model: ClipModel, dataset: torch.utils.data.Dataset, **kwargs: object
) -> dict[str, float | None]:
    """RaVL's four numbers (:data:`MITIGATION_METRICS`) on ``dataset``, plus every other metric.

    Keyword arguments go to :func:`predict_regions`. The worst-group numbers are None for a
    dataset without groups.
    """
    predictions = predict_regions(model, dataset, **kwargs)  # type: ignore[arg-type]
    has_groups = bool((predictions.groups >= 0).any())
    metrics, _ = compute_metrics(
        predictions.image_logits,
        predictions.labels,
        predictions.groups if has_groups else None,
        getattr(dataset, "group_names", None),
        getattr(dataset, "minority_groups", None),
        region_logits=predictions.region_logits,
    )
    out: dict[str, float | None] = {
        name: metrics.get(metric) for name, metric in MITIGATION_METRICS.items()
    }
    return {**out, **{k: v for k, v in metrics.items() if k not in out}}

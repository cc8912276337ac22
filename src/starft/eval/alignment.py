"""Alignment metrics of an ``alignment`` suite entry: relevance maps of the true label vs masks.

The subject's classifier for the entry's dataset is explained through its zero-shot head (a
model with a linear head gets the zero-shot head of the dataset's classes and templates: the maps
explain a zero-shot logit). Maps come from :func:`starft.explain.explain` on each batch, for the
true label, at the size of the transformed image, against the sample's ``mask`` moved by the same
transform; :func:`starft.explain.alignment_metrics` scores the whole set. Every rank computes
the whole set (alignment sets are small: they need masks).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from starft.data.collate import collate_samples
from starft.errors import StarftError
from starft.explain import alignment_metrics, explain
from starft.models import ZeroShotClassifier, build_zeroshot_head


def relevance_head(classifier: Any, dataset: Any, device: torch.device) -> tuple[Any, torch.Tensor]:
    """(model, zero-shot head ``[C, D]``) to explain ``classifier`` on ``dataset``'s classes."""
    if isinstance(classifier, ZeroShotClassifier):
        return classifier.model, classifier.head
    model = getattr(classifier, "model", None)
    if model is None or not hasattr(model, "image_intermediates"):
        raise StarftError(
            f"alignment metrics need a CLIP model to explain; {type(classifier).__name__} has none"
        )
    return model, build_zeroshot_head(model, dataset.classnames, dataset.templates, device=device)


def alignment_of(
    classifier: Any,
    dataset: Any,
    *,
    where: str,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 0,
) -> dict[str, float]:
    """Alignment metrics of ``classifier``'s maps (true label) against the samples' masks."""
    if "mask" not in getattr(dataset, "sample_keys", ()):
        raise StarftError(
            f"{where}: an alignment entry needs samples with masks, and this dataset's samples "
            "carry none (e.g. mask_root= for csv/imagefolder)"
        )
    model, head = relevance_head(classifier, dataset, device)
    was_training = model.training
    model.eval()
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_samples
    )
    maps, masks = [], []
    for batch in loader:
        if batch is None:
            continue
        out = explain(model, batch["image"].to(device), head, batch["label"].to(device))
        maps.append(out.maps.detach().cpu())
        masks.append(batch["mask"].float())
    model.train(was_training)
    if not maps:
        raise StarftError(f"{where}: no readable sample to explain")
    return alignment_metrics(torch.cat(maps), torch.cat(masks))

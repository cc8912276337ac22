"""Evaluate a model on a dataset with a zero-shot head built from the dataset's templates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from starft.eval.evaluate import evaluate
from starft.eval.predict import Predictions
from starft.models import ClipModel, ZeroShotClassifier, build_zeroshot_head
from starft.utils.distributed import DistInfo


def evaluate_zeroshot(
    model: ClipModel,
    dataset: Dataset,
    *,
    classnames: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    dist: DistInfo | None = None,
    progress: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[dict, dict, Predictions]:
    """Zero-shot head (``dataset.classnames`` x ``dataset.templates`` unless given) + evaluate."""
    classnames = list(classnames if classnames is not None else dataset.classnames)  # type: ignore[attr-defined]
    templates = list(templates if templates is not None else dataset.templates)  # type: ignore[attr-defined]
    model = model.to(device).eval()
    head = build_zeroshot_head(model, classnames, templates, device=device)
    return evaluate(
        ZeroShotClassifier(model, head),
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        dist=dist,
        progress=progress,
        autocast_dtype=autocast_dtype,
    )

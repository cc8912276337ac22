"""One call from a classifier and a dataset to metrics: predict, gather, then score the full set."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from starft.errors import StarftError
from starft.eval.metrics import compute_metrics
from starft.eval.predict import Predictions, predict
from starft.utils.distributed import DistInfo


def _dataset_groups(dataset: Dataset, predictions: Predictions) -> Tensor | None:
    """Group id per prediction from ``dataset.groups``, or None when the dataset has no groups."""
    groups = getattr(dataset, "groups", None)
    if groups is None:
        return None
    n_samples = len(dataset)
    if len(groups) != n_samples:
        raise StarftError(
            f"dataset {type(dataset).__name__}: {len(groups)} group ids for {n_samples} samples"
        )
    # Index the dataset's own table with the gathered indices rather than trusting each batch's
    # "group" field, so group membership follows the dataset even if a collate drops that key.
    return torch.as_tensor(groups, dtype=torch.long)[predictions.indices]


def evaluate(
    classifier: Callable[[Tensor], Tensor],
    dataset: Dataset,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    dist: DistInfo | None = None,
    progress: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[dict, dict, Predictions]:
    """Evaluate ``classifier`` on ``dataset``; returns ``(metrics, per_group, predictions)``.

    Group metrics are computed when the dataset exposes ``groups`` (a list of ids, not None), named
    by ``dataset.group_names`` when it has them. In a multi-rank job every rank must call this and
    every rank receives the same full-set results.
    """
    predictions = predict(
        classifier,
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        autocast_dtype=autocast_dtype,
        progress=progress,
        dist=dist,
    )
    groups = _dataset_groups(dataset, predictions)
    if groups is not None:
        predictions.groups = groups
    metrics, per_group = compute_metrics(
        predictions.logits,
        predictions.labels,
        groups=groups,
        group_names=getattr(dataset, "group_names", None) if groups is not None else None,
        minority_groups=getattr(dataset, "minority_groups", None),
    )
    return metrics, per_group, predictions

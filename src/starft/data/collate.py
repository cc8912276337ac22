"""Batching dict samples, dropping the ones whose image could not be read.

A dataset with ``on_bad_image='skip'`` returns ``None`` for an unreadable image; the collate
drops it and reports how many were dropped in ``num_skipped`` so the loop can count and log them.
"""

from __future__ import annotations

from typing import Any

import torch

from starft.data.regions import LIST_KEYS


def _collate_field(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, (bool, int)):
        return torch.tensor(values, dtype=torch.long)
    if isinstance(first, float):
        return torch.tensor(values, dtype=torch.float32)
    # Strings (captions) and anything else, e.g. PIL images from a dataset without a transform,
    # stay a list so the caller decides how to batch them.
    return list(values)


def collate_samples(samples: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Batch dict samples: tensors stacked, ints to LongTensors, strings kept as lists.

    ``boxes`` and ``box_labels`` (a different count per sample) stay lists of tensors.

    ``None`` entries (skipped unreadable images) are dropped and counted in ``num_skipped``.
    If every sample was skipped this returns ``None``: training and evaluation loops must skip a
    ``None`` batch (there is nothing to stack into a tensor of the right shape).
    """
    kept = [sample for sample in samples if sample is not None]
    if not kept:
        return None
    keys = kept[0].keys()
    for sample in kept:
        if sample.keys() != keys:
            raise ValueError(f"samples in one batch have different keys: {keys} vs {sample.keys()}")
    # Boxes differ in number per sample: they stay lists of [K, 4] / [K] tensors.
    batch = {
        key: [sample[key] for sample in kept]
        if key in LIST_KEYS
        else _collate_field([sample[key] for sample in kept])
        for key in keys
    }
    batch["num_skipped"] = len(samples) - len(kept)
    return batch

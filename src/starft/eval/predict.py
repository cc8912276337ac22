"""Run a classifier over a dataset and collect its logits, sharded across ranks.

Each rank evaluates a strided, unpadded shard of the dataset; the shards are gathered and sorted by
sample index, so every rank ends up with exactly one prediction per evaluated sample in dataset
order, whatever the world size. Metrics are then computed on the full set (see ``metrics``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from starft.utils.distributed import DistInfo, all_gather_objects, dist_info, shard_indices

Batch = dict[str, Any]


@dataclass
class Predictions:
    """Per-sample outputs in dataset-index order, on CPU.

    ``indices``/``labels``/``groups`` are LongTensors ``[N]`` (group -1 = no group), ``logits`` is a
    float32 ``[N, C]`` tensor.
    """

    indices: Tensor
    logits: Tensor
    labels: Tensor
    groups: Tensor

    def __len__(self) -> int:
        return int(self.indices.numel())

    @property
    def preds(self) -> Tensor:
        """Arg-max class per sample."""
        return self.logits.argmax(dim=1)

    @property
    def probs(self) -> Tensor:
        """Softmax probabilities per sample."""
        return torch.softmax(self.logits, dim=1)


def _as_long(values: Any, n: int) -> Tensor:
    # A missing field (None) becomes -1, the package-wide "absent" marker for groups.
    if values is None:
        return torch.full((n,), -1, dtype=torch.long)
    return torch.as_tensor(values, dtype=torch.long).reshape(-1)


def _collate_eval_samples(samples: Sequence[dict[str, Any] | None]) -> Batch | None:
    """Minimal collate for evaluation: stack images, LongTensors for label/group/index.

    ``None`` samples (unreadable files a dataset chose to skip) are dropped; a batch with nothing
    left is ``None``. A sample's missing or ``None`` group becomes -1.
    """
    kept = [s for s in samples if s is not None]
    if not kept:
        return None
    return {
        "image": torch.stack([s["image"] for s in kept]),
        "label": torch.as_tensor([int(s["label"]) for s in kept], dtype=torch.long),
        "group": torch.as_tensor(
            [-1 if s.get("group") is None else int(s["group"]) for s in kept], dtype=torch.long
        ),
        "index": torch.as_tensor([int(s["index"]) for s in kept], dtype=torch.long),
    }


def _default_collate() -> Callable[[Sequence[Any]], Batch | None]:
    # The data package owns the canonical collate (same contract); it may not exist yet or may be
    # installed without its optional parts, so fall back to the local one.
    try:
        from starft.data import collate_samples
    except ImportError:
        return _collate_eval_samples
    return collate_samples


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _empty_part() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    empty = torch.empty(0, dtype=torch.long)
    return empty, torch.empty(0, 0), empty.clone(), empty.clone()


def _concat(parts: Sequence[tuple[Tensor, Tensor, Tensor, Tensor]]) -> Predictions:
    """Merge per-rank (indices, logits, labels, groups) tuples into index order."""
    # Empty shards (more ranks than samples, or all samples skipped) have no class count: drop them.
    parts = [p for p in parts if p[0].numel() > 0]
    if not parts:
        return Predictions(*_empty_part())
    indices, logits, labels, groups = (torch.cat(cols) for cols in zip(*parts))
    order = torch.argsort(indices)
    return Predictions(indices[order], logits[order], labels[order], groups[order])


def predict(
    classifier: Callable[[Tensor], Tensor],
    dataset: Dataset,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    collate_fn: Callable[[Sequence[Any]], Batch | None] | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
    dist: DistInfo | None = None,
) -> Predictions:
    """Logits of ``classifier`` for every sample of ``dataset``, on every rank, in index order.

    ``classifier`` maps an image batch on ``device`` to logits ``[B, C]``. An ``nn.Module`` is put
    in eval mode for the pass (dropout/batch-norm must not act) and restored afterwards. ``dist``
    defaults to :func:`~starft.utils.distributed.dist_info`; with several ranks every rank must call
    this function (it gathers). Samples must carry ``index`` = their position in ``dataset``.
    """
    info = dist if dist is not None else dist_info()
    device = torch.device(device)
    local = shard_indices(len(dataset), info.rank, info.world_size)
    loader = DataLoader(
        Subset(dataset, local),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_fn or _default_collate(),
        pin_memory=device.type == "cuda",
    )
    if progress and info.is_main:
        from tqdm.auto import tqdm

        batches: Any = tqdm(loader, desc="eval", unit="batch", dynamic_ncols=True)
    else:
        batches = loader

    was_training = isinstance(classifier, nn.Module) and classifier.training
    if isinstance(classifier, nn.Module):
        classifier.eval()
    indices, logits, labels, groups = [], [], [], []
    try:
        with torch.inference_mode():
            for batch in batches:
                if batch is None:
                    continue
                images = batch["image"].to(device, non_blocking=True)
                with _autocast(device, autocast_dtype):
                    out = classifier(images)
                if out.ndim != 2 or out.shape[0] != images.shape[0]:
                    raise ValueError(
                        f"classifier returned logits of shape {tuple(out.shape)} for a batch of "
                        f"{images.shape[0]} images; expected [batch, classes]"
                    )
                n = out.shape[0]
                indices.append(_as_long(batch["index"], n))
                logits.append(out.float().cpu())
                labels.append(_as_long(batch["label"], n))
                groups.append(_as_long(batch.get("group"), n))
    finally:
        if was_training:
            classifier.train()

    if indices:
        local_part = tuple(torch.cat(col) for col in (indices, logits, labels, groups))
    else:
        local_part = _empty_part()
    result = _concat(all_gather_objects(local_part, info))
    if torch.unique(result.indices).numel() != len(result):
        # Duplicates mean the dataset's "index" field is not its position; metrics would be wrong.
        raise ValueError(
            "predict: duplicate sample indices after gathering; sample['index'] must be the "
            "sample's position in the dataset"
        )
    return result

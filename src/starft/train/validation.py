"""Per-epoch validation of a run: metrics, the best model's result file, the summary line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from starft.config import TrainConfig, to_dict
from starft.eval import write_predictions_csv
from starft.eval.harness import EntryOutcome, MethodSubject, evaluate_entries, write_entry_results
from starft.eval.suites import SuiteEntry
from starft.methods import Method
from starft.utils.distributed import DistInfo


def val_entry(config: TrainConfig) -> SuiteEntry:
    """The ID validation set as an evaluation entry: model-selection data, so no axis (the axes
    are for evaluation sets; a report shows it as its own columns)."""
    data = config.data
    label = data.val_dataset or f"{data.dataset}-val"
    return SuiteEntry(
        dataset=data.val_dataset or data.dataset, label=label, args=dict(data.val or {})
    )


def validate(
    method: Method,
    val_set: Any,
    config: TrainConfig,
    device: torch.device,
    info: DistInfo,
    autocast_dtype: torch.dtype | None,
) -> EntryOutcome:
    """The method's current classifier on ``val_set``, through the one evaluation path."""
    entry = val_entry(config)
    method.eval()
    try:
        (outcome,) = evaluate_entries(
            MethodSubject(method),
            [entry],
            datasets={entry.label: val_set},
            batch_size=config.data.eval_batch_size,
            num_workers=config.data.num_workers,
            device=device,
            dist=info,
            autocast_dtype=autocast_dtype,
        )
        return outcome
    finally:
        method.train()


def write_validation_result(
    config: TrainConfig, out_dir: Path, outcome: EntryOutcome, extra: dict[str, Any]
) -> None:
    """``out_dir/results/<model>_<method>_<val set>.json`` (+ predictions CSV if asked)."""
    results = out_dir / "results"
    write_entry_results(
        [outcome],
        results,
        model=config.model.name,
        method=config.method["name"],
        config=to_dict(config),
        seed=config.seed,
        method_config=config.method,
        by_label=True,
        extra=extra,
    )
    if config.save_predictions:
        write_predictions_csv(
            results / f"predictions_{outcome.entry.label}.csv", outcome.predictions
        )


def epoch_summary(
    epoch: int,
    epochs: int,
    train_loss: float | None,
    metrics: dict[str, Any],
    select_by: str,
    nonfinite_skipped: int,
    seconds: float,
) -> str:
    """``epoch 2/10: train loss 0.8123, val top1 0.9120, 41.3 s`` (one line per epoch)."""
    parts = [f"epoch {epoch + 1}/{epochs}:"]
    if train_loss is not None:
        parts.append(f"train loss {train_loss:.4f},")
    for key in dict.fromkeys(("top1", select_by)):
        if key in metrics:
            parts.append(f"val {key} {metrics[key]:.4f},")
    if nonfinite_skipped:
        parts.append(f"{nonfinite_skipped} non-finite step(s) skipped so far,")
    parts.append(f"{seconds:.1f} s")
    return " ".join(parts)

"""Per-epoch validation of a run: metrics, the best model's result file, the summary line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from starft.config import TrainConfig, to_dict
from starft.eval import build_result, evaluate, result_filename, write_predictions_csv, write_result
from starft.methods import Method
from starft.utils.distributed import DistInfo


def validate(
    method: Method,
    val_set: Any,
    config: TrainConfig,
    device: torch.device,
    info: DistInfo,
    autocast_dtype: torch.dtype | None,
) -> tuple[dict, dict, Any]:
    """(metrics, per_group, predictions) of the method's current classifier on ``val_set``."""
    method.eval()
    try:
        return evaluate(
            method.classifier(),
            val_set,
            batch_size=config.data.eval_batch_size,
            num_workers=config.data.num_workers,
            device=device,
            dist=info,
            autocast_dtype=autocast_dtype,
        )
    finally:
        method.train()


def write_validation_result(
    config: TrainConfig,
    out_dir: Path,
    metrics: dict,
    per_group: dict,
    predictions: Any,
    extra: dict[str, Any],
) -> None:
    """``out_dir/results/<model>_<method>_<val set>.json`` (+ predictions CSV if asked)."""
    name = config.method["name"]
    dataset = config.data.val_dataset or f"{config.data.dataset}-val"
    result = build_result(
        model=config.model.name,
        method=name,
        dataset=dataset,
        config=to_dict(config),
        metrics=metrics,
        per_group=per_group,
        n_samples=metrics["n_samples"],
        extra=extra,
    )
    results = out_dir / "results"
    write_result(results / result_filename(config.model.name, name, dataset), result)
    if config.save_predictions:
        write_predictions_csv(results / f"predictions_{dataset}.csv", predictions)


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

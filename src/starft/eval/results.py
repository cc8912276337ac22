"""Result files: one JSON per (model, method, dataset), plus optional per-sample prediction tables.

The JSON layout is versioned (``schema_version``) because ``starft report`` aggregates result files
written by older runs; bump :data:`SCHEMA_VERSION` whenever a required key changes meaning.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from starft import __version__
from starft.errors import StarftError
from starft.eval.predict import Predictions
from starft.utils.io import atomic_write_json, atomic_write_text, git_hash

SCHEMA_VERSION = 1

REQUIRED_KEYS: tuple[str, ...] = (
    "schema_version",
    "starft_version",
    "git_hash",
    "date",
    "model",
    "method",
    "dataset",
    "config",
    "metrics",
    "per_group",
    "n_samples",
)

PREDICTIONS_CSV_HEADER: tuple[str, ...] = ("index", "label", "prediction", "group", "confidence")

# Anything outside this set may be a path separator, a drive/URL marker (':'), or awkward in shells.
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@-]+")


def build_result(
    *,
    model: str,
    method: str,
    dataset: str,
    config: dict,
    metrics: dict,
    per_group: dict,
    n_samples: int,
    extra: dict | None = None,
) -> dict:
    """A result record with provenance (version, git hash, UTC date) in a stable key order.

    ``extra`` keys are appended after the required ones and may not replace them.
    """
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "starft_version": __version__,
        "git_hash": git_hash(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "method": method,
        "dataset": dataset,
        "config": config,
        "metrics": metrics,
        "per_group": per_group,
        "n_samples": int(n_samples),
    }
    clash = sorted(set(extra or {}) & set(result))
    if clash:
        raise ValueError(f"build_result: extra may not override required keys {clash}")
    result.update(extra or {})
    return result


def write_result(
    path: str | os.PathLike[str], result: dict, *, predictions: Predictions | None = None
) -> None:
    """Write ``result`` as indented JSON atomically, keys in their insertion order.

    With ``predictions``, also write them beside it as ``<name>.predictions.csv``
    (:func:`write_predictions_csv`), the one place that names a result's predictions file.
    """
    atomic_write_json(path, result, indent=2)
    if predictions is not None:
        write_predictions_csv(Path(path).with_suffix(".predictions.csv"), predictions)


def _slug(value: str, field: str) -> str:
    slug = _UNSAFE.sub("-", value).strip("-.")
    if not slug:
        raise StarftError(f"cannot build a result file name: {field} {value!r} has no usable chars")
    return slug


def result_filename(model: str, method: str, dataset: str) -> str:
    """File-system-safe ``<model>__<method>__<dataset>.json``.

    Runs of characters other than letters, digits and ``._+=@-`` (``/``, ``:``, spaces, ...) become
    one ``-``, e.g. ``('hf-hub:org/ViT B', 'starft', 'imagenet')`` ->
    ``'hf-hub-org-ViT-B__starft__imagenet.json'``.
    """
    parts = (_slug(model, "model"), _slug(method, "method"), _slug(dataset, "dataset"))
    return "__".join(parts) + ".json"


def write_predictions_csv(path: str | os.PathLike[str], predictions: Predictions) -> None:
    """Write one row per sample: ``index,label,prediction,group,confidence`` (max softmax, 6 dp)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PREDICTIONS_CSV_HEADER)
    if len(predictions):
        confidence, pred = torch.softmax(predictions.logits.double(), dim=1).max(dim=1)
        rows = zip(
            predictions.indices.tolist(),
            predictions.labels.tolist(),
            pred.tolist(),
            predictions.groups.tolist(),
            (f"{c:.6f}" for c in confidence.tolist()),
        )
        writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def load_result(path: str | os.PathLike[str]) -> dict:
    """Read a result JSON written by :func:`write_result`, checking the required keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StarftError(f"result file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StarftError(f"cannot read result file {path}: {exc}") from None
    try:
        result = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StarftError(f"result file {path} is not valid JSON: {exc}") from None
    if not isinstance(result, dict):
        kind = type(result).__name__
        raise StarftError(f"result file {path} must hold a JSON object, got a JSON {kind}")
    missing = [key for key in REQUIRED_KEYS if key not in result]
    if missing:
        raise StarftError(f"result file {path} is missing required keys: {', '.join(missing)}")
    version = result["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StarftError(
            f"result file {path} has schema_version {version!r}; this starft ({__version__}) "
            f"reads versions up to {SCHEMA_VERSION}"
        )
    return result

"""From result JSONs to runs: one :class:`RunRecord` per evaluated model (method, seed, α).

Result JSONs are found under any folders (``starft train``, ``eval``, suites, ``demo``,
``wise-ft``, ``ablate`` all write the same layout, :mod:`starft.eval.results`); other JSON files
(summaries) are skipped. A run's flat metrics are the columns of the report:

* results with an evaluation axis (``id``, ``group``, ``domain``, ``transfer``) give the axis
  summaries: ``id_acc`` (top-1 of the ID set), the group set's group metrics
  (``worst_group_acc``, ``avg_group_acc``, ``minority_group_acc``, ``majority_group_acc``),
  ``ood_<set>`` per domain-shift set and their mean ``ood_avg_acc``, ``transfer_<set>`` per
  transfer set and their mean ``zeroshot_transfer_acc``; results of the ``alignment`` axis give
  ``<label>:miou`` and ``<label>:energy_in_mask`` (the relevance maps against the masks);
* results without an axis (a training run's validation set, ``starft eval`` of one dataset) give
  ``<label>:<metric>`` for every metric they hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starft.errors import StarftError
from starft.eval.metric_registry import METRICS
from starft.eval.results import REQUIRED_KEYS, load_result

#: Axis summaries: key, display name, the registered metric that gives its format and direction.
AXIS_COLUMNS = {
    "id_acc": ("ID acc", "top1"),
    "worst_group_acc": ("worst-group", "worst_group_acc"),
    "avg_group_acc": ("avg-group", "avg_group_acc"),
    "minority_group_acc": ("minority-group", "minority_group_acc"),
    "majority_group_acc": ("majority-group", "majority_group_acc"),
    "ood_avg_acc": ("OOD avg", "top1"),
    "zeroshot_transfer_acc": ("ZS transfer", "top1"),
}
#: The pretrained model's run name (the demo's; rows without an explicit order put it first).
ZEROSHOT = "zeroshot"
GROUP_METRICS = ("worst_group_acc", "avg_group_acc", "minority_group_acc", "majority_group_acc")
# Metrics shown for results without an axis (the others stay in the JSON and the CSV).
LABEL_METRICS = ("top1", "worst_group_acc", "avg_group_acc", "macro_f1")
# Columns of an ``alignment`` result (its other relevance metrics stay in the JSON and the CSV).
ALIGNMENT_COLUMNS = ("miou", "energy_in_mask")


@dataclass
class RunRecord:
    """One evaluated model: ``method`` (a run name: method or variant) at ``seed`` (None: the
    zero-shot model, which does not depend on a training seed), WiSE-FT ``alpha`` if any.

    ``metrics`` is flat (see the module doc); ``per_group`` the group set's accuracy per group.
    """

    method: str
    seed: int | None
    metrics: dict[str, float]
    per_group: dict[str, float]
    weights: str | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    alpha: float | None = None
    model: str = ""
    base_method: str | None = None
    method_config: dict[str, Any] = field(default_factory=dict)
    minority_groups: list[str] = field(default_factory=list)
    order: float = math.inf
    suite: str | None = None
    columns: list[str] = field(default_factory=list)


def is_result(data: Any) -> bool:
    return isinstance(data, dict) and all(key in data for key in REQUIRED_KEYS)


def find_results(paths: Iterable[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every result JSON under ``paths`` (files or folders, searched recursively), path-sorted."""
    found: list[tuple[Path, dict[str, Any]]] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise StarftError(f"'{root}' does not exist")
        files = [root] if root.is_file() else sorted(root.rglob("*.json"))
        for path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # not a result file (or not JSON): summaries, configs
            if is_result(data):
                found.append((path, load_result(path)))
    if not found:
        raise StarftError(
            f"no result JSONs under {', '.join(str(p) for p in paths)} "
            "(starft train, eval, demo, wise-ft and ablate write them)"
        )
    return found


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def run_key(result: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies one evaluated model among results: model, method, seed, α, weights."""
    config = result.get("config") or {}
    weights = result.get("weights") or (config.get("weights") if isinstance(config, dict) else None)
    return (result["model"], result["method"], result.get("seed"), result.get("alpha"), weights)


def run_record(results: Sequence[dict[str, Any]]) -> RunRecord:
    """The :class:`RunRecord` of one model's results (see the module doc for the metrics)."""
    # Entries in their suite's order (``position``), so columns follow the suite or recipe.
    results = sorted(results, key=lambda r: r.get("position", math.inf))
    first = results[0]
    metrics: dict[str, float] = {}
    columns: list[str] = []
    per_group: dict[str, float] = {}
    minority: list[str] = []
    by_axis: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_axis.setdefault(result.get("axis") or "", []).append(result)

    def put(key: str, value: Any) -> None:
        metrics[key] = float("nan") if value is None else float(value)
        columns.append(key)

    if by_axis.get("id"):
        put("id_acc", _mean([r["metrics"]["top1"] for r in by_axis["id"]]))
    if by_axis.get("group"):
        group = by_axis["group"][0]
        for key in GROUP_METRICS:
            put(key, group["metrics"].get(key))
        per_group = {name: float(row["acc"]) for name, row in group["per_group"].items()}
        minority = list(group.get("minority_groups") or [])
    if by_axis.get("domain"):
        ood = {_label(r): r["metrics"]["top1"] for r in by_axis["domain"]}
        put("ood_avg_acc", _mean(list(ood.values())))
        for label, value in ood.items():
            put(f"ood_{label}", value)
    if by_axis.get("transfer"):
        transfer = {_label(r): r["metrics"]["top1"] for r in by_axis["transfer"]}
        put("zeroshot_transfer_acc", _mean(list(transfer.values())))
        for label, value in transfer.items():
            put(f"transfer_{label}", value)
    for result in by_axis.get("alignment", []):
        for metric, value in result["metrics"].items():
            if metric in METRICS and isinstance(value, (int, float)):
                metrics[f"{_label(result)}:{metric}"] = float(value)
        for metric in ALIGNMENT_COLUMNS:
            columns.append(f"{_label(result)}:{metric}")
            metrics.setdefault(f"{_label(result)}:{metric}", float("nan"))
    # Results without an axis are columns of their own only in runs that have no axis results
    # (a demo run's training-validation result stays in the CSV, not in the axis table).
    labelled = not columns
    for result in by_axis.get("", []):
        for metric, value in result["metrics"].items():
            if metric in METRICS and isinstance(value, (int, float)):
                metrics[f"{_label(result)}:{metric}"] = float(value)
                if labelled and metric in LABEL_METRICS:
                    columns.append(f"{_label(result)}:{metric}")
        if not per_group and result["per_group"]:
            per_group = {name: float(row["acc"]) for name, row in result["per_group"].items()}
            minority = list(result.get("minority_groups") or [])
    config = first.get("config") or {}
    return RunRecord(
        method=str(first["method"]),
        seed=first.get("seed"),
        metrics=metrics,
        per_group=per_group,
        weights=config.get("weights") if isinstance(config, dict) else None,
        alpha=first.get("alpha"),
        model=str(first["model"]),
        base_method=first.get("base_method"),
        method_config=dict(first.get("method_config") or {}),
        minority_groups=minority,
        order=min(float(r.get("order", math.inf)) for r in results),
        suite=first.get("suite"),
        columns=columns,
    )


def _label(result: dict[str, Any]) -> str:
    return str(result.get("label") or result["dataset"])


def collect_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Result JSONs under ``paths`` grouped into runs, in row order: a result's ``order`` (the
    demo's method order), else zero-shot first; then the order found (path order), a WiSE-FT
    sweep after its base method by α."""
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for _, result in find_results(paths):
        grouped.setdefault(run_key(result), []).append(result)
    runs = [run_record(results) for results in grouped.values()]
    # A WiSE-FT sweep sits after its base method, by α; sorted() is stable otherwise.
    first: dict[str, int] = {}
    for run in runs:
        first.setdefault(run.base_method or run.method, len(first))
    return sorted(
        runs,
        key=lambda run: (
            run.order,
            run.method != ZEROSHOT,
            first[run.base_method or run.method],
            -math.inf if run.alpha is None else run.alpha,
        ),
    )

"""Run a suite: evaluate every dataset found, skip the missing ones, write results and a summary.

Each evaluated dataset gets the usual result JSON (:mod:`starft.eval.results`). The suite adds
``suite_<name>.json`` (per-entry metrics, aggregates such as the paper's "OOD avg", skipped entries
with their reason) and ``suite_<name>.md``, a one-row Markdown table in the paper's column order. A
dataset that is not under the root is *missing*; one whose folder exists but does not match its
layout is *invalid*; both are skipped with a one-line warning so a long run is never lost to the
fifth dataset of a table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import nn

from starft import __version__
from starft.eval.harness import (
    EntryOutcome,
    ModelSubject,
    evaluate_entries,
    write_entry_results,
)
from starft.eval.metric_registry import get_metric
from starft.eval.suites import Suite
from starft.models import ClipModel
from starft.utils.io import atomic_write_json, atomic_write_text, git_hash

logger = logging.getLogger(__name__)

SUMMARY_VERSION = 1


def run_suite(
    suite: Suite,
    model: ClipModel,
    *,
    root: str | Path,
    out: str | Path,
    model_label: str,
    method: str,
    dataset_roots: dict[str, str] | None = None,
    templates: list[str] | None = None,
    linear_head: tuple[nn.Linear, list[str]] | None = None,
    config: dict[str, Any] | None = None,
    save_predictions: bool = False,
    write: bool = True,
    warn: Callable[[str], None] | None = None,
    seed: int | None = None,
    method_config: dict[str, Any] | None = None,
    **eval_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` on every entry of ``suite``; returns the summary (also written if
    ``write``, which a multi-rank job sets on rank 0 only).

    ``dataset_roots`` overrides the root per entry label or dataset name. ``eval_kwargs`` go to
    :func:`~starft.eval.harness.evaluate_entries` (batch size, device, dist, ...).
    """
    warn = warn or logger.warning
    outcomes = evaluate_entries(
        ModelSubject(model, linear_head, templates),
        suite.entries,
        transform=model.preprocess_val,
        root=root,
        roots=dataset_roots,
        skip_unavailable=True,
        warn=lambda message: warn(f"suite {suite.name}: {message}"),
        **eval_kwargs,
    )
    if write:
        write_entry_results(
            outcomes,
            out,
            model=model_label,
            method=method,
            config={**(config or {}), "suite": suite.name},
            seed=seed,
            method_config=method_config,
            extra={"suite": suite.name},
            save_predictions=save_predictions,
        )
    summary = summarize(suite, outcomes, model_label=model_label, method=method)
    if write:
        write_summary(summary, out)
    return summary


def _aggregate(suite: Suite, outcomes: list[EntryOutcome]) -> dict[str, Any]:
    by_label = {o.entry.label: o for o in outcomes}
    aggregates = {}
    for agg in suite.aggregates:
        values = [by_label[label].metrics.get(agg.metric) for label in agg.over]
        missing = [label for label, value in zip(agg.over, values) if value is None]
        aggregates[agg.name] = {
            "metric": agg.metric,
            "over": list(agg.over),
            "value": None if missing else sum(values) / len(values),
            "missing": missing,
        }
    return aggregates


def summarize(
    suite: Suite, outcomes: list[EntryOutcome], *, model_label: str, method: str
) -> dict[str, Any]:
    """The suite summary: per-entry status and metrics, aggregates (None when incomplete)."""
    entries = []
    for o in outcomes:
        entries.append(
            {
                "label": o.entry.label,
                "dataset": o.entry.dataset,
                "split": o.entry.split,
                "projection": o.entry.projection,
                "status": o.status,
                "metrics": {m: o.metrics.get(m) for m in o.entry.metrics},
                "n_samples": o.metrics.get("n_samples"),
                "result_file": o.result_file,
                "reason": o.reason,
            }
        )
    columns = [
        {"title": title, "label": o.entry.label, "metric": metric}
        for o in outcomes
        for metric, title in o.entry.columns()
    ]
    return {
        "summary_version": SUMMARY_VERSION,
        "starft_version": __version__,
        "git_hash": git_hash(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": suite.name,
        "description": suite.description,
        "model": model_label,
        "method": method,
        "entries": entries,
        "aggregates": _aggregate(suite, outcomes),
        "columns": columns,
        "skipped": [
            {
                "label": e["label"],
                "dataset": e["dataset"],
                "status": e["status"],
                "reason": e["reason"],
            }
            for e in entries
            if e["status"] != "ok"
        ],
    }


def format_value(metric: str, value: float | None) -> str:
    """The registered metric's paper-table format (percent or decimals), ``-`` if absent."""
    return get_metric(metric).format(value)


def summary_markdown(summary: dict[str, Any]) -> str:
    """A Markdown table (one row: this model) in the suite's column order, then skipped entries."""
    by_label = {e["label"]: e for e in summary["entries"]}
    titles = [c["title"] for c in summary["columns"]] + list(summary["aggregates"])
    cells = [
        format_value(c["metric"], by_label[c["label"]]["metrics"].get(c["metric"]))
        for c in summary["columns"]
    ]
    cells += [format_value(a["metric"], a["value"]) for a in summary["aggregates"].values()]
    lines = [
        f"# Suite `{summary['suite']}`: {summary['description']}",
        "",
        "| Model | Method | " + " | ".join(titles) + " |",
        "|" + "---|" * (len(titles) + 2),
        f"| {summary['model']} | {summary['method']} | " + " | ".join(cells) + " |",
    ]
    for name, agg in summary["aggregates"].items():
        if agg["missing"]:
            lines += ["", f"{name}: not computed, missing {', '.join(agg['missing'])}."]
    if summary["skipped"]:
        lines += ["", "Skipped:", ""]
        lines += [
            f"- {s['label']} ({s['dataset']}, {s['status']}): {s['reason']}"
            for s in summary["skipped"]
        ]
    return "\n".join(lines) + "\n"


def write_summary(summary: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``suite_<name>.json`` and ``suite_<name>.md`` into ``out``; returns both paths."""
    json_path = Path(out) / f"suite_{summary['suite']}.json"
    md_path = Path(out) / f"suite_{summary['suite']}.md"
    atomic_write_json(json_path, summary, indent=2)
    atomic_write_text(md_path, summary_markdown(summary))
    return json_path, md_path

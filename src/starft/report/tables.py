"""Runs -> rows (mean ± std over the runs of a group, n shown), as Markdown, CSV and ranks.

Display names and formats come from the metric registry (:mod:`starft.eval.metric_registry`)
and :data:`METHOD_LABELS`; nothing here knows a dataset or a method beyond those tables.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starft.errors import StarftError
from starft.eval.metric_registry import METRICS, Metric
from starft.report.runs import AXIS_COLUMNS, ZEROSHOT, RunRecord

# Display names of methods in tables and plots (anything else shows as its own name).
METHOD_LABELS = {
    ZEROSHOT: "zero-shot",
    "ft": "FT (CE)",
    "lp": "LP",
    "lpft": "LP-FT",
    "flyp": "FLYP",
    "starft": "StarFT",
    "carft": "CAR-FT",
    "carot": "CaRot",
    "lipsum": "Lipsum-FT",
}
GROUP_FIELDS = ("method", "seed", "model", "alpha")


def method_label(name: str) -> str:
    return METHOD_LABELS.get(name, name)


def column_metric(key: str) -> Metric:
    """The registered metric a column is formatted and ranked by."""
    if key in AXIS_COLUMNS:
        return METRICS.get(AXIS_COLUMNS[key][1])
    if ":" in key:
        return METRICS.get(key.rsplit(":", 1)[1])
    return METRICS.get("top1")  # ood_<set>, transfer_<set>: top-1 of that set


def column_label(key: str) -> str:
    if key in AXIS_COLUMNS:
        return AXIS_COLUMNS[key][0]
    for prefix in ("ood_", "transfer_"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    if ":" in key:
        label, metric = key.rsplit(":", 1)
        return f"{label} {METRICS.get(metric).title}"
    return key


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value, e.g. the zero-shot model)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return float("nan"), float("nan")
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return statistics.fmean(finite), std


def check_group_by(group_by: Sequence[str]) -> list[str]:
    fields = [f.strip() for f in group_by if f.strip()]
    bad = [f for f in fields if f not in GROUP_FIELDS]
    if bad or not fields:
        raise StarftError(
            f"--group-by: unknown field '{bad[0] if bad else ''}' "
            f"(fields: {', '.join(GROUP_FIELDS)})"
        )
    return fields


@dataclass
class Row:
    """One table row: the runs of one group and mean ± std per column."""

    key: tuple[Any, ...]
    label: str
    method: str
    runs: list[RunRecord]
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.runs)


def _row_label(run: RunRecord, fields: Sequence[str]) -> str:
    parts = []
    if "method" in fields:
        swept = run.alpha is not None and run.base_method
        # A WiSE-FT point reads "FLYP WiSE-FT α=0.5" rather than its result label.
        name = (
            f"{method_label(run.base_method or '')} WiSE-FT" if swept else method_label(run.method)
        )
        parts.append(name)
        if swept and "alpha" not in fields:
            parts.append(f"α={run.alpha:g}")
    if "model" in fields:
        parts.append(run.model)
    if "seed" in fields and run.seed is not None:
        parts.append(f"seed {run.seed}")
    if "alpha" in fields and run.alpha is not None:
        parts.append(f"α={run.alpha:g}")
    return " ".join(parts) or "all"


def rows(runs: Sequence[RunRecord], group_by: Sequence[str] = ("method",)) -> list[Row]:
    """Runs grouped by ``group_by`` fields, in run order; stats over each group's runs."""
    fields = check_group_by(group_by)
    grouped: dict[tuple[Any, ...], Row] = {}
    for run in runs:
        key = tuple(getattr(run, f) for f in fields)
        if key not in grouped:
            grouped[key] = Row(key, _row_label(run, fields), run.method, [])
        grouped[key].runs.append(run)
    for row in grouped.values():
        keys = list(dict.fromkeys(k for run in row.runs for k in run.metrics))
        row.stats = {
            k: mean_std([run.metrics[k] for run in row.runs if k in run.metrics]) for k in keys
        }
    return list(grouped.values())


def columns(runs: Sequence[RunRecord]) -> list[str]:
    """Table columns: every run's columns, in first-seen order."""
    return list(dict.fromkeys(key for run in runs for key in run.columns))


def markdown_table(table: Sequence[Row], cols: Sequence[str], *, first: str = "method") -> str:
    """Mean ± std per column and row, with the number of runs ``n`` behind each row."""
    head = f"| {first} | n | " + " | ".join(column_label(c) for c in cols) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(cols)]
    for row in table:
        cells = [
            column_metric(c).format_pm(*row.stats[c]) if c in row.stats else "n/a" for c in cols
        ]
        lines.append(f"| {row.label} | {row.n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(table: Sequence[Row], cols: Sequence[str]) -> str:
    """One line per row: label, n, then mean and std of every column (empty when absent)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["row", "n", *(f"{c}{s}" for c in cols for s in ("", "_std"))])
    for row in table:
        cells: list[Any] = [row.label, row.n]
        for c in cols:
            mean, std = row.stats.get(c, (float("nan"), float("nan")))
            cells += ["" if math.isnan(mean) else repr(mean), "" if math.isnan(std) else repr(std)]
        writer.writerow(cells)
    return buf.getvalue()


def average_ranks(table: Sequence[Row], cols: Sequence[str]) -> dict[str, float]:
    """Average rank of each row over ``cols`` (1 = best by the metric's direction; ties share
    the mean of their ranks; a row without a column is not ranked on it)."""
    ranks: dict[str, list[float]] = {row.label: [] for row in table}
    for col in cols:
        higher = column_metric(col).higher_is_better
        scored = [
            (row.label, row.stats[col][0])
            for row in table
            if col in row.stats and not math.isnan(row.stats[col][0])
        ]
        ordered = sorted(scored, key=lambda item: -item[1] if higher else item[1])
        i = 0
        while i < len(ordered):
            j = i
            while j + 1 < len(ordered) and ordered[j + 1][1] == ordered[i][1]:
                j += 1
            for label, _ in ordered[i : j + 1]:
                ranks[label].append((i + j) / 2 + 1)
            i = j + 1
    return {label: statistics.fmean(r) if r else float("nan") for label, r in ranks.items()}


def rank_table(table: Sequence[Row], runs: Sequence[RunRecord]) -> str:
    """Markdown: the average rank of each row per suite (runs without a suite: one 'all')."""
    suites = list(dict.fromkeys(run.suite or "all" for run in runs))
    per_suite = {
        suite: average_ranks(table, columns([r for r in runs if (r.suite or "all") == suite]))
        for suite in suites
    }
    lines = ["| row | " + " | ".join(f"avg. rank ({s})" for s in suites) + " |"]
    lines.append("|---|" + "---:|" * len(suites))
    for row in table:
        cells = [per_suite[s][row.label] for s in suites]
        lines.append(
            f"| {row.label} | "
            + " | ".join("n/a" if math.isnan(c) else f"{c:.2f}" for c in cells)
            + " |"
        )
    return "\n".join(lines)


def varied_options(runs: Sequence[RunRecord]) -> list[str]:
    """Method options whose value differs between the runs that set them (first-seen order)."""
    values: dict[str, set[str]] = {}
    for run in runs:
        for key, value in run.method_config.items():
            if key != "name":
                values.setdefault(key, set()).add(repr(value))
    return [key for key, seen in values.items() if len(seen) > 1]


def _option(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def options_table(table: Sequence[Row], metric_cols: Sequence[tuple[str, str]]) -> str:
    """Markdown: row, its method, the options that vary between rows, then ``metric_cols``
    (``(column, title)``) as mean ± std; an option a row does not set shows as ``·``."""
    runs = [row.runs[0] for row in table]
    options = varied_options(runs)
    head = ["run", "method", *options, *(title for _, title in metric_cols)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---|" * len(options)]
    lines[1] += "---:|" * len(metric_cols)
    for row in table:
        params = row.runs[0].method_config
        method = str(params.get("name", "-")) if params else "-"
        cells = [row.label, method]
        cells += [_option(params[key]) if key in params else "·" for key in options]
        cells += [
            column_metric(key).format_pm(*row.stats[key]) if key in row.stats else "n/a"
            for key, _ in metric_cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

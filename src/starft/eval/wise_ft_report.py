"""The WiSE-FT sweep as a Markdown table and an accuracy-vs-α plot.

Kept apart from the sweep (:mod:`starft.eval.wise_ft`) because it only formats finished rows.
The plot uses matplotlib's object API on the Agg canvas (never ``pyplot``), so it changes no global
backend of the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starft.eval.metric_registry import get_metric
from starft.utils.io import atomic_write_text

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _datasets(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(row["dataset"] for row in rows))


def _has_groups(rows: Sequence[dict[str, Any]], dataset: str) -> bool:
    return any("worst_group_acc" in r["metrics"] for r in rows if r["dataset"] == dataset)


def write_table(rows: Sequence[dict[str, Any]], path: Path, title: str = "WiSE-FT") -> Path:
    """One line per α; top-1 (and worst-group accuracy where the dataset has groups) per dataset."""
    datasets = _datasets(rows)
    columns: list[tuple[str, str]] = []
    for dataset in datasets:
        columns.append((dataset, "top1"))
        if _has_groups(rows, dataset):
            columns.append((dataset, "worst_group_acc"))
    by_key = {(r["alpha"], r["dataset"]): r["metrics"] for r in rows}
    alphas = list(dict.fromkeys(r["alpha"] for r in rows))
    header = ["α", *(f"{d} {get_metric(m).title}" for d, m in columns)]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" for _ in header) + "|")
    for alpha in alphas:
        cells = [f"{alpha:g}"]
        for dataset, metric in columns:
            value = by_key.get((alpha, dataset), {}).get(metric)
            cells.append("" if value is None else f"{100 * value:.2f}")  # % with 2 decimals
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Accuracies in %. α = 0: zero-shot model, α = 1: fine-tuned model."]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def plot_wise_ft(rows: Sequence[dict[str, Any]], path: Path, title: str = "WiSE-FT") -> Path:
    """Accuracy against α per dataset: top-1 solid, worst-group accuracy dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    for i, dataset in enumerate(_datasets(rows)):
        points = sorted((r["alpha"], r["metrics"]) for r in rows if r["dataset"] == dataset)
        colour = _COLOURS[i % len(_COLOURS)]
        alphas = [a for a, _ in points]
        ax.plot(alphas, [m["top1"] for _, m in points], "o-", color=colour, label=dataset)
        if _has_groups(rows, dataset):
            worst = [m.get("worst_group_acc", float("nan")) for _, m in points]
            title = get_metric("worst_group_acc").title
            ax.plot(alphas, worst, "s--", color=colour, label=f"{dataset} ({title})")
    ax.set_xlabel("α (0 = zero-shot, 1 = fine-tuned)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path

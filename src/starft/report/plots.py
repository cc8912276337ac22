"""The report's figures, each drawn only where the runs hold what it needs.

* per-group accuracy bars (summary over groups, and per part of the group name: minority groups
  as bars, majority groups as ticks);
* per-group accuracy differences against a reference row (e.g. zero-shot vs FLYP per subgroup);
* ID vs OOD scatter (effective robustness): one dot per run, a big marker per row mean;
* WiSE-FT α curves: accuracy against α per base method and evaluation set;
* per-style bars: top-1 of every domain-shift set per row.

Drawn with matplotlib's object API on the Agg canvas (never ``pyplot``), so writing a report
changes no global backend of the caller. Display names come from the metric registry.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starft.report.runs import RunRecord
from starft.report.tables import ZEROSHOT, Row, column_label, method_label

_COLOURS = {ZEROSHOT: "#7f7f7f", "ft": "#1f77b4", "flyp": "#ff7f0e", "starft": "#2ca02c"}
_OTHER = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728", "#1f77b4")
_SUMMARY = ("worst_group_acc", "minority_group_acc", "avg_group_acc", "majority_group_acc")
# Groups named "a|b" (the sandbox's shape|scene) are shown per last part beyond this many groups.
MAX_GROUP_BARS = 16


def _fixed(row: Row, table: Sequence[Row]) -> bool:
    """A method's own colour, when it is the only row of that method."""
    return row.method in _COLOURS and sum(r.method == row.method for r in table) == 1


def _colour(row: Row, table: Sequence[Row]) -> str:
    if _fixed(row, table):
        return _COLOURS[row.method]
    others = [r.label for r in table if not _fixed(r, table)]
    return _OTHER[others.index(row.label) % len(_OTHER)]


def _offsets(count: int, width: float) -> list[float]:
    return [(i - (count - 1) / 2) * width for i in range(count)]


def _figure(size: tuple[float, float], ncols: int = 1, ratios: list[float] | None = None) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": ratios} if ratios else None)
    return fig, axes


def _bucket(name: str, count: int) -> str:
    """A group's bar: itself, or its last ``|`` part when there are too many groups."""
    return name.rsplit("|", 1)[-1] if count > MAX_GROUP_BARS else name


def _group_buckets(table: Sequence[Row]) -> list[str]:
    names = list(dict.fromkeys(g for row in table for run in row.runs for g in run.per_group))
    return list(dict.fromkeys(_bucket(g, len(names)) for g in names))


def _bucket_means(row: Row, bucket: str, count: int, minority: bool | None) -> float:
    values = [
        acc
        for run in row.runs
        for g, acc in run.per_group.items()
        if _bucket(g, count) == bucket
        and (minority is None or (g in run.minority_groups) == minority)
    ]
    return statistics.fmean(values) if values else float("nan")


def _group_stat(row: Row, metric: str) -> tuple[float, float]:
    """A group metric of the row: the group axis's, else the first set's that has it."""
    if metric in row.stats:
        return row.stats[metric]
    key = next((k for k in row.stats if k.endswith(f":{metric}")), None)
    return row.stats[key] if key is not None else (math.nan, math.nan)


def _model_rows(table: Sequence[Row]) -> list[Row]:
    """Rows of trained or zero-shot models; a WiSE-FT sweep has its own plot."""
    return [row for row in table if all(run.alpha is None for run in row.runs)] or list(table)


def plot_group_accuracy(table: Sequence[Row], path: Path) -> Path | None:
    """Left: worst/minority/avg/majority group accuracy per row (mean, std bars).
    Right: accuracy per group (or per last name part), minority bars, majority ticks."""
    with_groups = [row for row in _model_rows(table) if any(run.per_group for run in row.runs)]
    if not with_groups:
        return None
    fig, (left, right) = _figure((12, 4.6), 2, [1, 1.6])
    keys = [
        k for k in _SUMMARY if any(not math.isnan(_group_stat(row, k)[0]) for row in with_groups)
    ]
    width = 0.8 / max(len(with_groups), 1)
    for row, dx in zip(with_groups, _offsets(len(with_groups), width)):
        means = [_group_stat(row, k)[0] for k in keys]
        stds = [_group_stat(row, k)[1] for k in keys]
        left.bar(
            [k + dx for k in range(len(keys))],
            means,
            width,
            yerr=stds,
            capsize=2,
            label=row.label,
            color=_colour(row, table),
        )
    left.set_xticks(range(len(keys)), [column_label(k) for k in keys])
    left.set_ylim(0, 1.05)
    left.set_ylabel("accuracy")
    left.set_title("Group shift: summary over groups")
    left.grid(axis="y", alpha=0.3)
    left.legend(loc="upper left", fontsize=8, ncol=2)
    buckets = _group_buckets(with_groups)
    count = len({g for row in with_groups for run in row.runs for g in run.per_group})
    has_minority = any(run.minority_groups for row in with_groups for run in row.runs)
    for row, dx in zip(with_groups, _offsets(len(with_groups), width)):
        xs = [k + dx for k in range(len(buckets))]
        colour = _colour(row, table)
        if has_minority:
            right.bar(
                xs, [_bucket_means(row, b, count, True) for b in buckets], width, color=colour
            )
            majority = [_bucket_means(row, b, count, False) for b in buckets]
            right.scatter(xs, majority, marker="_", s=120, color="black", linewidths=1.5, zorder=3)
        else:
            right.bar(
                xs, [_bucket_means(row, b, count, None) for b in buckets], width, color=colour
            )
    right.set_xticks(range(len(buckets)), buckets, rotation=45 if len(buckets) > 8 else 0)
    right.set_ylim(0, 1.05)
    what = "minority groups (bars), majority groups (black ticks)" if has_minority else "groups"
    right.set_title(f"Per group: {what}")
    right.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    return path


def plot_group_differences(table: Sequence[Row], path: Path, reference: str) -> Path | None:
    """Per-group accuracy of every row minus the ``reference`` row's (one panel)."""
    table = _model_rows(table)
    ref = next((row for row in table if reference in (row.label, row.method)), None)
    others = [row for row in table if row is not ref and any(r.per_group for r in row.runs)]
    if ref is None or not others or not any(run.per_group for run in ref.runs):
        return None
    buckets = _group_buckets([ref, *others])
    count = len({g for row in [ref, *others] for run in row.runs for g in run.per_group})
    fig, ax = _figure((max(6.4, 0.5 * len(buckets) * len(others) ** 0.5 + 3), 4.4))
    width = 0.8 / len(others)
    base = [_bucket_means(ref, b, count, None) for b in buckets]
    for row, dx in zip(others, _offsets(len(others), width)):
        diffs = [_bucket_means(row, b, count, None) - r for b, r in zip(buckets, base)]
        ax.bar(
            [k + dx for k in range(len(buckets))],
            diffs,
            width,
            label=row.label,
            color=_colour(row, table),
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(buckets)), buckets, rotation=45 if len(buckets) > 8 else 0)
    ax.set_ylabel(f"accuracy − {ref.label}")
    ax.set_title(f"Per-group accuracy difference against {ref.label}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def plot_id_vs_ood(table: Sequence[Row], path: Path) -> Path | None:
    """ID accuracy against OOD-average accuracy: a dot per run, a big marker per row mean."""
    rows = [row for row in table if "id_acc" in row.stats and "ood_avg_acc" in row.stats]
    if not rows:
        return None
    fig, ax = _figure((6.2, 5))
    for row in rows:
        colour = _colour(row, table)
        ax.scatter(
            [run.metrics.get("id_acc", math.nan) for run in row.runs],
            [run.metrics.get("ood_avg_acc", math.nan) for run in row.runs],
            color=colour,
            alpha=0.45,
            s=28,
        )
        (mx, sx), (my, sy) = row.stats["id_acc"], row.stats["ood_avg_acc"]
        ax.errorbar(
            mx,
            my,
            xerr=sx,
            yerr=sy,
            fmt="o",
            markersize=11,
            markeredgecolor="black",
            color=colour,
            capsize=3,
            label=row.label,
        )
    values = [
        run.metrics[k]
        for row in rows
        for run in row.runs
        for k in ("id_acc", "ood_avg_acc")
        if k in run.metrics and not math.isnan(run.metrics[k])
    ]
    lo = max(0.0, math.floor(min(values, default=0.0) * 10) / 10 - 0.05)
    ax.plot([lo, 1], [lo, 1], ls="--", color="grey", lw=1, label="OOD = ID")
    # A little room past 1.0 so that markers of near-perfect ID accuracy are not cut in half.
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel("ID accuracy")
    ax.set_ylabel("OOD accuracy (mean over domain-shift sets)")
    ax.set_title("ID vs OOD (dots: runs, big: mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def plot_wise_ft(runs: Sequence[RunRecord], path: Path) -> Path | None:
    """Accuracy against α per (base method, set): top-1 solid, worst-group dashed."""
    swept = [run for run in runs if run.alpha is not None]
    if not swept:
        return None
    fig, ax = _figure((6.4, 4.4))
    curves: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for run in swept:
        for key, value in run.metrics.items():
            if key.endswith(":top1"):
                label = key[: -len(":top1")]
                worst = run.metrics.get(f"{label}:worst_group_acc", math.nan)
                curves.setdefault((run.base_method or run.method, label), []).append(
                    (run.alpha, value, worst)  # type: ignore[arg-type]
                )
    for i, ((method, label), points) in enumerate(sorted(curves.items())):
        points.sort()
        colour = _OTHER[i % len(_OTHER)]
        alphas = [p[0] for p in points]
        name = f"{method_label(method)}, {label}"
        ax.plot(alphas, [p[1] for p in points], "o-", color=colour, label=name)
        if not all(math.isnan(p[2]) for p in points):
            ax.plot(
                alphas, [p[2] for p in points], "s--", color=colour, label=f"{name} (worst group)"
            )
    ax.set_xlabel("α (0 = zero-shot, 1 = fine-tuned)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(-0.02, 1.02)
    ax.set_title("WiSE-FT: weight interpolation")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def plot_per_style(table: Sequence[Row], cols: Sequence[str], path: Path) -> Path | None:
    """Top-1 of every domain-shift set (``ood_<set>`` columns) per row, mean ± std."""
    styles = [c for c in cols if c.startswith("ood_") and c != "ood_avg_acc"]
    rows = [row for row in table if any(s in row.stats for s in styles)]
    if not styles or not rows:
        return None
    fig, ax = _figure((max(6.4, 1.2 * len(styles) + 2), 4.4))
    width = 0.8 / len(rows)
    for row, dx in zip(rows, _offsets(len(rows), width)):
        stats = [row.stats.get(s, (math.nan, math.nan)) for s in styles]
        ax.bar(
            [k + dx for k in range(len(styles))],
            [m for m, _ in stats],
            width,
            yerr=[s for _, s in stats],
            capsize=2,
            label=row.label,
            color=_colour(row, table),
        )
    ax.set_xticks(range(len(styles)), [column_label(s) for s in styles])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("top-1 accuracy")
    ax.set_title("Domain shift: accuracy per style")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8, ncol=2)
    fig.savefig(path, dpi=110)
    return path

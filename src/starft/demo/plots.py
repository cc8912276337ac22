"""The demo's two figures: per-group accuracy bars and the ID-vs-OOD scatter.

Drawn with matplotlib's object API on the Agg canvas (never ``pyplot``), so writing a report
changes no global backend of the caller. Numbers come from the aggregation in
:mod:`starft.demo.report`.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starft.demo.recipe import ZEROSHOT
from starft.demo.report import METRIC_LABELS, aggregate, method_label, records_of

if TYPE_CHECKING:
    from starft.demo.runner import DemoResult


_COLOURS = {ZEROSHOT: "#7f7f7f", "ft": "#1f77b4", "flyp": "#ff7f0e", "starft": "#2ca02c"}
_OTHER = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")


def _colour(method: str, methods: list[str]) -> str:
    if method in _COLOURS:
        return _COLOURS[method]
    others = [m for m in methods if m not in _COLOURS]
    return _OTHER[others.index(method) % len(_OTHER)]


def plot_group_accuracy(result: DemoResult, path: Path) -> Path:
    """Left: worst/minority/majority/average group accuracy per method (mean, seed std bars).
    Right: accuracy of each group, averaged per scene, minority and majority groups apart."""
    from matplotlib.figure import Figure

    stats = aggregate(result)
    methods = list(stats)
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    keys = ("worst_group_acc", "minority_group_acc", "avg_group_acc", "majority_group_acc")
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        xs = [k + (i - (len(methods) - 1) / 2) * width for k in range(len(keys))]
        means = [stats[method][k][0] for k in keys]
        stds = [stats[method][k][1] for k in keys]
        left.bar(
            xs,
            means,
            width,
            yerr=stds,
            capsize=2,
            label=method_label(method),
            color=_colour(method, methods),
        )
    left.set_xticks(range(len(keys)), [METRIC_LABELS[k] for k in keys])
    left.set_ylim(0, 1.05)
    left.set_ylabel("accuracy (balanced group set)")
    left.set_title("Group shift: summary over groups")
    left.grid(axis="y", alpha=0.3)
    left.legend(loc="upper left", fontsize=8, ncol=2)
    _per_scene_panel(result, right, methods)
    fig.savefig(path, dpi=110)
    return path


def _per_scene_panel(result: DemoResult, ax: Any, methods: list[str]) -> None:
    """Per-scene accuracy of minority groups (bars) and majority groups (markers)."""
    info = result.groups
    scenes = list(dict.fromkeys(info.scene_of.get(g, g) for g in info.names))
    minority = set(info.minority)
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        records = records_of(result, method)
        per_scene_min, per_scene_maj = [], []
        for scene in scenes:
            members = [g for g in info.names if info.scene_of.get(g, g) == scene]
            mins = [r.per_group[g] for r in records for g in members if g in minority]
            majs = [r.per_group[g] for r in records for g in members if g not in minority]
            per_scene_min.append(statistics.fmean(mins) if mins else float("nan"))
            per_scene_maj.append(statistics.fmean(majs) if majs else float("nan"))
        xs = [k + (i - (len(methods) - 1) / 2) * width for k in range(len(scenes))]
        colour = _colour(method, methods)
        ax.bar(xs, per_scene_min, width, color=colour, alpha=0.85)
        ax.scatter(xs, per_scene_maj, marker="_", s=120, color="black", linewidths=1.5, zorder=3)
    ax.set_xticks(range(len(scenes)), scenes)
    ax.set_ylim(0, 1.05)
    ax.set_title("Per scene: minority groups (bars), majority groups (black ticks)")
    ax.set_xlabel("scene (background)")
    ax.grid(axis="y", alpha=0.3)


def plot_id_vs_ood(result: DemoResult, path: Path) -> Path:
    """ID test accuracy against OOD-average accuracy: one dot per run, a big marker per mean."""
    from matplotlib.figure import Figure

    stats = aggregate(result)
    methods = list(stats)
    fig = Figure(figsize=(6.2, 5), layout="constrained")
    ax = fig.subplots()
    for method in methods:
        colour = _colour(method, methods)
        records = records_of(result, method)
        ax.scatter(
            [r.metrics["id_acc"] for r in records],
            [r.metrics["ood_avg_acc"] for r in records],
            color=colour,
            alpha=0.45,
            s=28,
        )
        (mx, sx), (my, sy) = stats[method]["id_acc"], stats[method]["ood_avg_acc"]
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
            label=method_label(method),
        )
    lo = min([r.metrics[k] for r in result.records for k in ("id_acc", "ood_avg_acc")], default=0.0)
    lo = max(0.0, math.floor(lo * 10) / 10 - 0.05)
    ax.plot([lo, 1], [lo, 1], ls="--", color="grey", lw=1, label="OOD = ID")
    # A little room past 1.0 so that markers of near-perfect ID accuracy are not cut in half.
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel("ID test accuracy")
    ax.set_ylabel("OOD accuracy (mean over styles)")
    ax.set_title("Domain shift: ID vs OOD (dots: seeds, big: mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.savefig(path, dpi=110)
    return path


# ------------------------------------------------------------------------------------ report

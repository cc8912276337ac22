"""The demo's report: a mean ± std table, two plots, a summary JSON and a plain reading of them.

Everything here works on :class:`~starft.demo.runner.DemoResult` records only (no model, no
data), so reports are tested on made-up numbers without training anything. The table and the
figures are ``starft report``'s (:mod:`starft.report`); this module adds the demo's narrative."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starft.demo.recipe import SUMMARY_KEYS, ZEROSHOT
from starft.report import (
    column_label,
    columns,
    mean_std,
    method_label,
    rows,
    write_plots,
)
from starft.report import (
    markdown_table as report_table,
)
from starft.utils.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from starft.demo.runner import DemoResult
    from starft.report import RunRecord

# Differences smaller than this are reported as a tie: with ~1000 test images per set one image
# is 0.001 and seed-to-seed spreads are larger than this.
TIE = 0.005
# What the StarFT-vs-FLYP verdict is about: the robustness numbers StarFT is meant to improve.
ROBUSTNESS_KEYS = ("worst_group_acc", "avg_group_acc", "minority_group_acc", "ood_avg_acc")
__all__ = ["column_label", "mean_std", "method_label"]


def records_of(result: DemoResult, method: str) -> list[RunRecord]:
    return [r for r in result.records if r.method == method]


def aggregate(result: DemoResult) -> dict[str, dict[str, tuple[float, float]]]:
    """method -> metric -> (mean, std) over seeds (the rows of ``starft report``)."""
    return {row.method: row.stats for row in rows(result.records, ["method"])}


def summary(result: DemoResult) -> dict[str, Any]:
    """The ``--json`` summary: per method the five headline numbers (means over seeds)."""
    stats = aggregate(result)
    methods: dict[str, Any] = {}
    for method, metrics in stats.items():
        row: dict[str, Any] = {k: _json_float(metrics[k][0]) for k in SUMMARY_KEYS}
        row["minority_group_acc"] = _json_float(metrics["minority_group_acc"][0])
        row["std"] = {k: _json_float(metrics[k][1]) for k in (*SUMMARY_KEYS, "minority_group_acc")}
        row["n_runs"] = len(records_of(result, method))
        methods[method] = row
    return {
        "model": result.model,
        "seeds": result.seeds,
        "quick": result.quick,
        "split": result.recipe.split,
        "seconds": round(result.seconds, 1),
        "methods": methods,
    }


def _json_float(value: float) -> float | None:
    # JSON has no NaN; a metric that could not be computed (no minority groups) becomes null.
    return None if math.isnan(value) else round(value, 6)


def markdown_table(result: DemoResult) -> str:
    """Mean ± std per metric and method (zero-shot: one evaluation, so std 0), built by
    ``starft report``'s code, so ``starft report OUT`` prints the same table."""
    return report_table(rows(result.records, ["method"]), columns(result.records))


def format_pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}"


def text_table(result: DemoResult) -> str:
    """The headline numbers as an aligned plain-text table for the terminal."""
    stats = aggregate(result)
    keys = [*SUMMARY_KEYS[:3], "minority_group_acc", *SUMMARY_KEYS[3:]]
    width = max(len(method_label(m)) for m in stats) if stats else 6
    header = f"{'method':<{width}}  " + "  ".join(f"{column_label(k):>15}" for k in keys)
    lines = [header]
    for method, metrics in stats.items():
        cells = "  ".join(f"{format_pm(*metrics[k]):>15}" for k in keys)
        lines.append(f"{method_label(method):<{width}}  {cells}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ findings


def _paired_differences(result: DemoResult, a: str, b: str, key: str) -> list[float]:
    """Per-seed ``a - b``: seeds share data order and initial weights, so pairs are fair."""
    by_seed = {r.seed: r.metrics[key] for r in records_of(result, b)}
    return [
        r.metrics[key] - by_seed[r.seed]
        for r in records_of(result, a)
        if r.seed in by_seed and not math.isnan(r.metrics[key] - by_seed[r.seed])
    ]


def compare(result: DemoResult, a: str, b: str, key: str) -> tuple[str, float, list[float]]:
    """Verdict of method ``a`` against ``b`` on ``key``, the mean and the per-seed differences.

    ``better``/``worse``: the mean difference is at least :data:`TIE` and every seed agrees (at
    least two seeds); ``higher``/``lower``: the same from a single seed, which cannot show a
    spread; ``tie``: below :data:`TIE`; ``unclear``: the seeds disagree in sign.
    """
    diffs = _paired_differences(result, a, b, key)
    if not diffs:
        return "unclear", float("nan"), diffs
    mean = statistics.fmean(diffs)
    if abs(mean) < TIE:
        return "tie", mean, diffs
    if len(diffs) == 1:
        return ("higher" if mean > 0 else "lower"), mean, diffs
    if mean > 0:
        return ("better" if all(d > 0 for d in diffs) else "unclear"), mean, diffs
    return ("worse" if all(d < 0 for d in diffs) else "unclear"), mean, diffs


def _signed(value: float) -> str:
    # Rounds first so that a difference of -0.0001 prints as +0.000, not -0.000.
    return f"{round(value, 3) + 0.0:+.3f}"


def _spread(diffs: list[float]) -> str:
    if len(diffs) == 1:
        return "one seed, so no spread"
    return f"per seed {_signed(min(diffs))} to {_signed(max(diffs))}"


def findings(result: DemoResult) -> list[str]:
    """A few factual sentences generated from the numbers (no judgement beyond them)."""
    stats = aggregate(result)
    lines: list[str] = []
    fine_tuned = [m for m in stats if m != ZEROSHOT]
    chance = 1.0 / result.num_classes if result.num_classes else float("nan")
    zs_id = stats[ZEROSHOT]["id_acc"][0] if ZEROSHOT in stats else float("nan")
    if zs_id < chance + 0.1 * (1 - chance):
        # A randomly initialised development model (starft-sandbox-rn) lands here: fine-tuning
        # it can only learn the task from scratch, so nothing below is about robustness of
        # pretrained features.
        lines.append(
            f"The zero-shot model is at chance on the ID task ({zs_id:.3f} vs {chance:.3f}): it "
            "has no pretrained knowledge of the task, so these numbers say nothing about robust "
            "fine-tuning of a pretrained model."
        )
    elif zs_id < chance + 0.5 * (1 - chance):
        # The superclass task's case: zero-shot knows the features but not the label names.
        lines.append(
            f"The zero-shot model is weak on the ID task ({zs_id:.3f}; chance {chance:.3f}): "
            "fine-tuning has much to gain in distribution, and the question is what it costs "
            "off distribution."
        )
    if ZEROSHOT in stats:
        zs = stats[ZEROSHOT]
        for method in fine_tuned:
            m = stats[method]
            lines.append(
                f"{method_label(method)} moves ID accuracy from {zs['id_acc'][0]:.3f} "
                f"(zero-shot) to {m['id_acc'][0]:.3f}; its worst-group accuracy "
                f"{_direction(zs['worst_group_acc'][0], m['worst_group_acc'][0])}, "
                f"minority-group accuracy "
                f"{_direction(zs['minority_group_acc'][0], m['minority_group_acc'][0])} and "
                f"OOD-average accuracy {_direction(zs['ood_avg_acc'][0], m['ood_avg_acc'][0])}."
            )
    if "starft" in stats and "flyp" in stats:
        lines.extend(_starft_vs_flyp(result))
    elif fine_tuned:
        lines.append("StarFT and FLYP were not both run, so they are not compared here.")
    if len(fine_tuned) > 1:
        worst = {m: stats[m]["worst_group_acc"][0] for m in fine_tuned}
        best = max(worst, key=lambda m: worst[m])
        if worst[best] - min(worst.values()) < TIE:
            lines.append(
                f"Every fine-tuned model has the same worst-group accuracy ({worst[best]:.3f})."
            )
        else:
            lines.append(
                f"Highest worst-group accuracy among fine-tuned models: {method_label(best)} "
                f"({format_pm(*stats[best]['worst_group_acc'])})."
            )
    lines.extend(_alignment(stats))
    if len(result.seeds) < 3 and fine_tuned:
        lines.append(
            f"Only {len(result.seeds)} seed(s): differences of a few points may be noise; the "
            "default run uses 3 seeds."
        )
    return lines


def _alignment(stats: dict[str, dict[str, tuple[float, float]]]) -> list[str]:
    """One sentence per alignment set: where each model's relevance falls (object masks)."""
    lines = []
    keys = dict.fromkeys(k for metrics in stats.values() for k in metrics)
    for key in keys:
        label, _, metric = key.rpartition(":")
        if metric != "energy_in_mask" or not label:
            continue
        miou = f"{label}:miou"
        parts = [
            f"{method_label(m)} {values[key][0]:.3f}"
            + (f" (mIoU {values[miou][0]:.3f})" if miou in values else "")
            for m, values in stats.items()
            if key in values and not math.isnan(values[key][0])
        ]
        if parts:
            lines.append(
                f"Share of relevance on the object ({label}, energy in mask; mIoU of the "
                f"thresholded map): {'; '.join(parts)}."
            )
    return lines


def _direction(before: float, after: float) -> str:
    if math.isnan(before) or math.isnan(after):
        return "cannot be compared"
    if abs(after - before) < TIE:
        return f"barely changes ({before:.3f} to {after:.3f})"
    verb = "rises" if after > before else "falls"
    return f"{verb} from {before:.3f} to {after:.3f}"


_VERDICT_WORDS = {
    "better": "StarFT beats FLYP on every seed",
    "worse": "StarFT is below FLYP on every seed",
    "higher": "StarFT is above FLYP on the single seed",
    "lower": "StarFT is below FLYP on the single seed",
    "tie": "StarFT and FLYP are level",
    "unclear": "StarFT is above FLYP on {above} of {n} seeds",
}


def _starft_vs_flyp(result: DemoResult) -> list[str]:
    lines = []
    verdicts = {}
    for key in (*ROBUSTNESS_KEYS, "id_acc", "zeroshot_transfer_acc"):
        verdict, mean, diffs = compare(result, "starft", "flyp", key)
        verdicts[key] = verdict
        if math.isnan(mean):
            lines.append(f"{column_label(key)}: no paired seeds to compare.")
            continue
        words = _VERDICT_WORDS[verdict].format(above=sum(d > 0 for d in diffs), n=len(diffs))
        lines.append(
            f"{column_label(key)}: {words} ({_signed(mean)} on average, {_spread(diffs)})."
        )
    robustness = ", ".join(column_label(k) for k in ROBUSTNESS_KEYS)
    wins = [column_label(k) for k in ROBUSTNESS_KEYS if verdicts[k] == "better"]
    single = [column_label(k) for k in ROBUSTNESS_KEYS if verdicts[k] == "higher"]
    if single:
        lines.append(
            f"**On this single seed StarFT is above FLYP on {', '.join(single)}; one seed "
            "cannot show whether that holds, run the default 3 seeds.**"
        )
    elif not wins:
        lines.append(
            f"**StarFT does not beat FLYP here** on any robustness number ({robustness}) "
            "consistently across seeds."
        )
    elif len(wins) == len(ROBUSTNESS_KEYS):
        lines.append(
            f"**StarFT beats FLYP on every robustness number ({robustness}) on every seed.**"
        )
    else:
        missing = [column_label(k) for k in ROBUSTNESS_KEYS if verdicts[k] != "better"]
        lines.append(
            f"**StarFT beats FLYP on {', '.join(wins)} on every seed, but not on "
            f"{', '.join(missing)}.**"
        )
    return lines


def write_report(result: DemoResult) -> dict[str, Path]:
    """Write report.md, summary.json and the plots into the run folder; returns their paths."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    table = rows(result.records, ["method"])
    plots = write_plots(table, result.records, columns(result.records), out, ZEROSHOT)
    files = {
        "group_plot": plots["group_accuracy"],
        "ood_plot": plots["id_vs_ood"],
        "summary": out / "summary.json",
        "report": out / "report.md",
    }
    atomic_write_json(files["summary"], summary(result), indent=2)
    atomic_write_text(files["report"], render_markdown(result))
    return files


def render_markdown(result: DemoResult) -> str:
    recipe = result.recipe
    seeds = ", ".join(str(s) for s in result.seeds)
    fine_tuned = [m for m in result.methods if m != ZEROSHOT]
    train_data = recipe.train.get("data", {})
    domain = ", ".join(s.label for s in recipe.sets("domain"))
    transfer = ", ".join(s.label for s in recipe.sets("transfer"))
    group_set = recipe.sets("group")[0]
    n_groups, n_minority = len(result.groups.names), len(result.groups.minority)
    validation = result.recipe.split == "validation"
    lines = [
        "# starft demo: robust fine-tuning on the sandbox"
        + (" (validation sets)" if validation else ""),
        "",
        *(
            [
                "Every evaluation set below is a validation draw (`--validation`): these are "
                "the numbers to choose defaults on. Test-set numbers come from a run without "
                "`--validation`.",
                "",
            ]
            if validation
            else []
        ),
        f"Model `{result.model}`; fine-tuned methods: "
        f"{', '.join(method_label(m) for m in fine_tuned) or 'none'}; seeds {seeds}"
        f"{' (quick run)' if result.quick else ''}; total time {result.seconds / 60:.1f} min.",
        "",
        "## Results (mean ± std over seeds)",
        "",
        markdown_table(result),
        "",
        "Zero-shot is evaluated once (it does not depend on the training seed), so its std is 0. "
        f"Below, differences under {TIE} count as level; StarFT and FLYP are compared seed by "
        "seed (the same seed gives both the same data order).",
        "",
        "## What the numbers show",
        "",
        *(f"- {line}" for line in findings(result)),
        "",
        "## Plots",
        "",
        "![group accuracy](group_accuracy.png)",
        "",
        "![ID vs OOD](id_vs_ood.png)",
        "",
        "![per style](per_style.png)",
        "",
        "![per-group difference against zero-shot](group_differences.png)",
        "",
        "## How it was measured",
        "",
        f"- Fine-tuning data: `{train_data.get('dataset')}` {train_data.get('train', {})}; "
        f"validation `{train_data.get('val_dataset') or train_data.get('dataset')}` "
        f"{train_data.get('val', {})}; the evaluated weights are the epoch with the best "
        "validation top-1 (ID validation only, never a test set).",
        f"- ID: top-1 on `{recipe.sets('id')[0].dataset}` (same distribution as training).",
        f"- Group shift: `{group_set.dataset}` {group_set.args}, {n_groups} class x scene groups "
        f"({n_minority} minority: the scene is not the class's training scene). worst-group = "
        "lowest group accuracy; avg-group, minority-group and majority-group = unweighted means "
        "of per-group accuracies.",
        f"- Domain shift: top-1 per style ({domain}); OOD avg = their unweighted mean.",
        f"- Zero-shot transfer: zero-shot heads for other label spaces ({transfer}) built from "
        "each fine-tuned model's own text tower (FT's text tower is frozen, so it keeps the "
        "zero-shot one); ZS transfer = their mean.",
        "- Result JSONs: `runs/<method>-seed<k>/results/` and `runs/zeroshot/results/`; "
        "headline numbers: `summary.json`.",
        "",
        "## Time per run",
        "",
        "| run | train s | eval s |",
        "|---|---:|---:|",
        *(
            f"| {method_label(r.method)}{'' if r.seed is None else f' seed {r.seed}'} | "
            f"{r.train_seconds:.0f} | {r.eval_seconds:.0f} |"
            for r in result.records
        ),
        "",
    ]
    return "\n".join(lines)

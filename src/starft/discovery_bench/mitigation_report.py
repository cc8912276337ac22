"""The output of ``starft mitigate-bench``: ``mitigation.json`` and ``mitigation.md``, atomically.

The table is RaVL's: per method the four numbers of :data:`starft.eval.regions.MITIGATION_METRICS`
on the test draw, mean ± sample standard deviation over seeds, with the stage-1 model's own row.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from starft import __version__
from starft.discovery_bench.mitigation_config import MitigationConfig
from starft.errors import StarftError
from starft.eval.regions import MITIGATION_METRICS
from starft.utils.io import atomic_write_json, atomic_write_text, git_hash

SCHEMA = "starft.mitigate-bench/1"
JSON_NAME = "mitigation.json"
REPORT_NAME = "mitigation.md"
METRIC_LABELS = {
    "image_overall": "image overall",
    "image_worst_group": "image worst-group",
    "region_overall": "region overall",
    "region_worst_group": "region worst-group",
}


def select_region_weight(scores: Mapping[float, float | None]) -> float:
    """The weight with the highest validation score; ties (and a missing score, which never wins
    over a number) go to the weight listed first."""
    if not scores:
        raise StarftError("region_weight selection: no weight was scored")
    best, best_score = None, -math.inf
    for weight, score in scores.items():
        value = -math.inf if score is None or math.isnan(score) else float(score)
        if best is None or value > best_score:
            best, best_score = weight, value
    assert best is not None
    return best


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (n - 1; None for one value) of the numbers given."""
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(numbers) / len(numbers)
    std = None
    if len(numbers) > 1:
        std = math.sqrt(sum((v - mean) ** 2 for v in numbers) / (len(numbers) - 1))
    return {"mean": mean, "std": std, "n": len(numbers)}


def summarise_runs(methods: Sequence[str], runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per method, every metric of the table over its final runs' seeds (test draw)."""
    out: dict[str, Any] = {}
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        out[method] = {
            "seeds": [r["seed"] for r in mine],
            **{m: mean_std([r["test"].get(m) for r in mine]) for m in MITIGATION_METRICS},
        }
    return out


def _cell(stat: Mapping[str, Any]) -> str:
    if stat["mean"] is None:
        return "-"
    if stat["std"] is None:
        return f"{stat['mean']:.3f}"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_markdown(document: Mapping[str, Any]) -> str:
    """``mitigation.md``: the table, the region_weight choice, discovery, and the time spent."""
    config = document["config"]
    setting = config["setting"]
    stage1 = document["stage1"]
    discovery = document["discovery"]
    selection = document["region_weight"]
    metrics = list(MITIGATION_METRICS)
    lines = [
        f"# mitigate-bench: `{config['model']}` on sandbox_markers "
        f"({setting['spurious']}, V {setting['cramers_v']:g}, {setting['kind']})",
        "",
        f"Stage 1: `{config['stage1']['method']}` fine-tuned with seed "
        f"{config['stage1']['seed']}; every method below starts from it. Test draw: "
        f"{config['test']['n']} images of sandbox_markers_eval (seed {config['test']['seed']}); "
        f"discovery and the region_weight choice used the validation draw ({config['val']['n']} "
        f"images, seed {config['val']['seed']}). Mean ± sample std over seeds "
        f"{', '.join(str(s) for s in config['seeds'])}. Groups of upsampled_ft / vl_gdro: "
        f"`{config['groups']}`"
        + (
            " (the marker annotation: an oracle RaVL's baselines do not have)."
            if config["groups"] == "dataset"
            else " (class x a region in a discovered cluster)."
        ),
        "",
        "| method | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
        f"| stage 1 ({config['stage1']['method']}) | "
        + " | ".join(_value(stage1["test"].get(m)) for m in metrics)
        + " |",
    ]
    for method, stats in document["summary"].items():
        name = method
        if method == "ravl" and selection is not None:
            name = f"ravl (w={selection['chosen']:g})"
        lines.append(f"| {name} | " + " | ".join(_cell(stats[m]) for m in metrics) + " |")
    lines += ["", "## Discovery", ""]
    if discovery["found"]:
        lines.append(
            f"{str(discovery['message']).strip().rstrip('.')}. K = {discovery['k']}; "
            f"{len(discovery['clusters'])} "
            f"cluster(s) passed (gap, influence, size: "
            + "; ".join(
                f"{c['gap']:.3f}, {_value(c['influence'])}, {c['size']}"
                for c in discovery["clusters"]
            )
            + ")."
        )
    else:
        message = str(discovery["message"]).strip().rstrip(".")
        lines.append(
            f"**Discovery found no spurious cluster**: {message}. ravl therefore "
            "ran with no spurious regions (its region terms only pull each image's best region "
            "towards its caption)."
        )
    if selection is not None:
        label = METRIC_LABELS[selection["select_by"]]
        lines += [
            "",
            f"## ravl region_weight (chosen on the validation draw by {label}, seed "
            f"{selection['seed']})",
            "",
            f"| region_weight | validation {label} | chosen |",
            "|---|---|---|",
        ]
        for row in selection["scores"]:
            chosen = "yes" if row["region_weight"] == selection["chosen"] else ""
            lines.append(f"| {row['region_weight']:g} | {_value(row['score'])} | {chosen} |")
    lines += ["", "## Seconds per stage", "", "| stage | s |", "|---|---|"]
    for stage, seconds in document["seconds"].items():
        lines.append(f"| {stage} | {seconds:.0f} |")
    lines.append("")
    return "\n".join(lines)


def build_document(
    config: MitigationConfig,
    *,
    stage1: dict[str, Any],
    discovery: dict[str, Any],
    selection: dict[str, Any] | None,
    runs: Sequence[dict[str, Any]],
    seconds: dict[str, float],
    command: str | None,
) -> dict[str, Any]:
    """The JSON-ready record of a bench: config, every run, the summary and the timings."""
    final = [r for r in runs if r["final"]]
    return {
        "schema": SCHEMA,
        "starft_version": __version__,
        "git_hash": git_hash(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "config": dataclasses.asdict(config),
        "metrics": dict(MITIGATION_METRICS),
        "stage1": stage1,
        "discovery": discovery,
        "region_weight": selection,
        "summary": summarise_runs(config.methods, final),
        "runs": list(runs),
        "seconds": seconds,
    }


def write_mitigation(out_dir: str | Path, document: dict[str, Any]) -> dict[str, Path]:
    """Write ``mitigation.json`` and ``mitigation.md`` atomically; their paths."""
    out = Path(out_dir)
    paths = {"json": out / JSON_NAME, "report": out / REPORT_NAME}
    report = render_markdown(document)  # rendered first: a failure leaves nothing half-written
    atomic_write_json(paths["json"], document)
    atomic_write_text(paths["report"], report)
    return paths

"""The output of ``starft discover-bench``: ``bench.json`` and ``bench.md``, written atomically.

The summary averages the kept settings (those where the fine-tuned model learned the marker) per
ranking and metric, with a 95% percentile-bootstrap interval over settings, for all fine-tuning
methods together and for each; ``vs ravl`` rows give the paired difference RaVL minus a baseline
over the same settings.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starft import __version__
from starft.discovery_bench.grid import BenchGrid
from starft.discovery_bench.metrics import summarise
from starft.utils.io import atomic_write_json, atomic_write_text, git_hash

SCHEMA = "starft.discover-bench/1"
JSON_NAME = "bench.json"
REPORT_NAME = "bench.md"


def metric_names(grid: BenchGrid) -> list[str]:
    return [*(f"P@{k}" for k in grid.ks), "R-prec"]


def summarise_records(grid: BenchGrid, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per scope (``all`` and each method): mean and 95% interval of every ranking's metrics over
    the kept settings, and RaVL minus each baseline, paired by setting."""
    metrics = metric_names(grid)
    out: dict[str, Any] = {}
    for scope in ("all", *grid.methods):
        kept = [
            r for r in records if r["kept"] and (scope == "all" or r["setting"]["method"] == scope)
        ]
        boot = {"resamples": grid.bootstrap_resamples, "seed": grid.seed}
        rankings = {
            name: {m: summarise([r["scores"][name][m] for r in kept], **boot) for m in metrics}
            for name in grid.rankings
        }
        differences = {
            name: {
                m: summarise([r["scores"]["ravl"][m] - r["scores"][name][m] for r in kept], **boot)
                for m in metrics
            }
            for name in grid.rankings
            if name != "ravl"
        }
        total = sum(scope == "all" or r["setting"]["method"] == scope for r in records)
        out[scope] = {
            "settings": total,
            "kept": len(kept),
            "rankings": rankings,
            "ravl_minus": differences,
        }
    return out


def _cell(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "-"
    if stat["ci95"] is None:
        return f"{stat['mean']:.3f}"
    low, high = stat["ci95"]
    return f"{stat['mean']:.3f} [{low:.3f}, {high:.3f}]"


def _summary_table(grid: BenchGrid, scope: dict[str, Any]) -> list[str]:
    metrics = metric_names(grid)
    lines = [
        "| ranking | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name, stats in scope["rankings"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(stats[m]) for m in metrics) + " |")
    for name, stats in scope["ravl_minus"].items():
        lines.append(f"| ravl − {name} | " + " | ".join(_cell(stats[m]) for m in metrics) + " |")
    return lines


def _settings_table(grid: BenchGrid, records: Sequence[dict[str, Any]]) -> list[str]:
    first = f"P@{grid.ks[0]}"
    lines = [
        "| class | V (achieved) | kind | method | marker gap | kept | clusters | "
        + " | ".join(f"{first} {name}" for name in grid.rankings)
        + " | s |",
        "|---|---|---|---|---|---|---|" + "---|" * len(grid.rankings) + "---|",
    ]
    for r in records:
        s = r["setting"]
        achieved = r.get("achieved_cramers_v")
        v = f"{s['cramers_v']:g}" + ("" if achieved is None else f" ({achieved:.3f})")
        lines.append(
            f"| {s['spurious']} | {v} | {s['kind']} | {s['method']} | "
            f"{r['marker']['gap']:+.3f} | {'yes' if r['kept'] else 'no'} | "
            f"{len(r['discovery']['clusters'])} | "
            + " | ".join(f"{r['scores'][n][first]:.2f}" for n in grid.rankings)
            + f" | {r.get('seconds', 0.0):.0f} |"
        )
    return lines


def render_markdown(
    grid: BenchGrid, records: Sequence[dict[str, Any]], summary: dict[str, Any], seconds: float
) -> str:
    """``bench.md``: what was run, the summary per scope, and every setting."""
    lines = [
        f"# discover-bench: grid `{grid.name}` on `{grid.model}`",
        "",
        f"{len(records)} settings (classes {', '.join(grid.classes)}; Cramér's V "
        f"{', '.join(f'{v:g}' for v in grid.cramers_v)}; markers {', '.join(grid.kinds)}; "
        f"methods {', '.join(grid.methods)}) in {seconds / 60:.1f} min. Regions {grid.regions} "
        f"({grid.region_method}); a region is relevant when it covers >= {grid.min_coverage:g} of "
        f"the marker's box. A setting is kept when accuracy where the marker agrees with the "
        f"training correlation minus accuracy where it disagrees is >= {grid.min_marker_gap:g}.",
        "",
        "Means over kept settings with 95% percentile-bootstrap intervals over settings "
        f"({grid.bootstrap_resamples} resamples); `ravl − X` is the paired difference.",
    ]
    for scope, stats in summary.items():
        title = "all methods" if scope == "all" else f"fine-tuned with {scope}"
        lines += ["", f"## {title}: {stats['kept']} of {stats['settings']} settings kept", ""]
        if stats["kept"] == 0:
            lines.append("**No setting kept: the models did not learn the marker.**")
        else:
            lines += _summary_table(grid, stats)
    lines += ["", "## Every setting", "", *_settings_table(grid, records), ""]
    return "\n".join(lines)


def write_bench(
    out_dir: str | Path,
    grid: BenchGrid,
    records: Sequence[dict[str, Any]],
    *,
    seconds: float,
    command: str | None = None,
) -> dict[str, Path]:
    """Write ``bench.json`` (grid, every setting, the summary) and ``bench.md``; their paths."""
    import dataclasses

    out = Path(out_dir)
    summary = summarise_records(grid, records)
    document = {
        "schema": SCHEMA,
        "starft_version": __version__,
        "git_hash": git_hash(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "seconds": seconds,
        "grid": dataclasses.asdict(grid),
        "summary": summary,
        "settings": list(records),
    }
    paths = {"json": out / JSON_NAME, "report": out / REPORT_NAME}
    atomic_write_json(paths["json"], document)
    atomic_write_text(paths["report"], render_markdown(grid, records, summary, seconds))
    return paths

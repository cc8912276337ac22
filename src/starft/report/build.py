"""``starft report``: result JSONs under any runs -> report.md, report.csv and plots.

The demo and ``starft ablate`` build their tables with these same functions, so
``starft report runs/demo`` reproduces the demo's table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starft.report import plots
from starft.report.runs import RunRecord, collect_runs
from starft.report.tables import (
    ZEROSHOT,
    Row,
    columns,
    csv_text,
    markdown_table,
    options_table,
    rank_table,
    rows,
    varied_options,
)
from starft.utils.io import atomic_write_text


@dataclass
class Report:
    """What :func:`build_report` made: the rows, the columns and the files written."""

    runs: list[RunRecord]
    table: list[Row]
    columns: list[str]
    markdown: str
    files: dict[str, Path] = field(default_factory=dict)


def write_plots(
    table: Sequence[Row], runs: Sequence[RunRecord], cols: Sequence[str], out: Path, reference: str
) -> dict[str, Path]:
    """Every plot the runs hold data for; returns name -> file."""
    out.mkdir(parents=True, exist_ok=True)
    made = {
        "group_accuracy": plots.plot_group_accuracy(table, out / "group_accuracy.png"),
        "group_differences": plots.plot_group_differences(
            table, out / "group_differences.png", reference
        ),
        "id_vs_ood": plots.plot_id_vs_ood(table, out / "id_vs_ood.png"),
        "wise_ft": plots.plot_wise_ft(runs, out / "wise_ft_alpha.png"),
        "per_style": plots.plot_per_style(table, cols, out / "per_style.png"),
    }
    return {name: path for name, path in made.items() if path is not None}


def default_reference(table: Sequence[Row]) -> str:
    """Zero-shot when it is a row, else the first row."""
    return ZEROSHOT if any(row.method == ZEROSHOT for row in table) else table[0].label


def render(
    table: Sequence[Row],
    runs: Sequence[RunRecord],
    cols: Sequence[str],
    plot_files: dict[str, Path],
    *,
    sources: Sequence[str] = (),
    group_by: Sequence[str] = ("method",),
) -> str:
    """The report's Markdown: the mean ± std table, average ranks, varied options, plots."""
    lines = ["# starft report", ""]
    if sources:
        lines += [
            f"Runs: {', '.join(f'`{s}`' for s in sources)}; grouped by "
            f"{', '.join(group_by)}; mean ± std over the n runs of each row.",
            "",
        ]
    lines += ["## Results", "", markdown_table(table, cols), ""]
    if len(table) > 1 and cols:
        lines += ["## Average rank", "", rank_table(table, runs), ""]
    if varied_options([row.runs[0] for row in table]):
        metric_cols = [(c, c) for c in cols[:6]]
        lines += ["## Method options", "", options_table(table, metric_cols), ""]
    if plot_files:
        lines += ["## Plots", ""]
        lines += [f"![{name}]({path.name})\n" for name, path in plot_files.items()]
    return "\n".join(lines)


def build_report(
    paths: Iterable[str | Path],
    out: str | Path | None = None,
    *,
    group_by: Sequence[str] = ("method",),
    reference: str | None = None,
) -> Report:
    """Collect the runs under ``paths`` and, with ``out``, write report.md, report.csv, plots."""
    sources = [str(p) for p in paths]
    runs = collect_runs(sources)
    table = rows(runs, group_by)
    cols = columns(runs)
    files: dict[str, Path] = {}
    if out is not None:
        out = Path(out)
        files = write_plots(table, runs, cols, out, reference or default_reference(table))
    markdown = render(table, runs, cols, files, sources=sources, group_by=group_by)
    if out is not None:
        files["report"] = out / "report.md"
        files["csv"] = out / "report.csv"
        atomic_write_text(files["report"], markdown)
        atomic_write_text(files["csv"], csv_text(table, cols))
    return Report(runs, table, cols, markdown, files)

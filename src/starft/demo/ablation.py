"""``starft ablate``: StarFT's component and pool ablations (Tables 6 and 7 of the paper) on the
sandbox, as one table.

An ablation is a demo recipe whose runs are *variants* of methods: ``method_configs`` entries
under new names with ``method.name`` naming the registered method (``star_no_suffix: {method:
{name: starft, suffix: none}}``). The packaged ``sandbox_ablate`` recipe extends the demo recipe,
so data, budget and evaluation sets are the demo's and the rows are comparable to its table.
The table shows, per run, the options that differ between the variants of one method next to
the mean ± std of the headline metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starft.report import options_table, rows
from starft.report import varied_options as report_varied
from starft.utils.io import atomic_write_text

if TYPE_CHECKING:
    from starft.demo.runner import DemoResult

ABLATION_RECIPE = "sandbox_ablate"
# The headline metrics of an ablation row; the per-style and per-label-space numbers stay in
# the demo report written beside it.
ABLATION_METRICS = (
    ("id_acc", "ID"),
    ("worst_group_acc", "worst-group"),
    ("avg_group_acc", "avg-group"),
    ("minority_group_acc", "minority"),
    ("ood_avg_acc", "OOD avg"),
    ("zeroshot_transfer_acc", "ZS transfer"),
)


def varied_options(result: DemoResult) -> list[str]:
    """Method options whose value differs between the runs that set them (in first-seen order)."""
    return report_varied([row.runs[0] for row in rows(result.records, ["method"])])


def ablation_table(result: DemoResult) -> str:
    """Markdown table: run, method, varied options, then mean ± std of each headline metric.

    Built by ``starft report``'s code from the runs' recorded method configs. An option a run
    does not set shows as ``·`` (the method's default, or not an option of it).
    """
    return options_table(rows(result.records, ["method"]), ABLATION_METRICS)


def write_ablation(result: DemoResult, command: str) -> Path:
    """Write ``ablation.md`` (the table and how it was made) into the run folder."""
    seeds = ", ".join(str(s) for s in result.seeds)
    text = "\n".join(
        [
            "# StarFT ablations on the sandbox" + _split_note(result),
            "",
            f"Model `{result.model}`; seeds {seeds}; mean ± std over seeds; "
            f"{result.seconds / 60:.1f} min. Command: `{command}`.",
            "",
            ablation_table(result),
            "",
            "Options not set by a run (`·`) are the method's defaults. Per-style, per-label-space "
            "and per-group numbers, plots and the time per run: `report.md` in this folder.",
            "",
        ]
    )
    path = result.out_dir / "ablation.md"
    atomic_write_text(path, text)
    return path


def _split_note(result: DemoResult) -> str:
    return " (validation sets)" if result.recipe.split == "validation" else ""

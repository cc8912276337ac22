"""Reports from result JSONs: runs, mean ± std tables, average ranks, plots (``starft report``).

Layers below (eval, train, demo) write result JSONs; this package only reads them, so a report
can be made of any runs, old or new, and the demo's own report is built here too.
"""

from starft.report.build import Report, build_report, render, write_plots
from starft.report.runs import RunRecord, collect_runs, find_results, run_record
from starft.report.tables import (
    METHOD_LABELS,
    ZEROSHOT,
    Row,
    column_label,
    columns,
    markdown_table,
    mean_std,
    method_label,
    options_table,
    rows,
    varied_options,
)

__all__ = [
    "METHOD_LABELS",
    "ZEROSHOT",
    "Report",
    "Row",
    "RunRecord",
    "build_report",
    "collect_runs",
    "column_label",
    "columns",
    "find_results",
    "markdown_table",
    "mean_std",
    "method_label",
    "options_table",
    "render",
    "rows",
    "run_record",
    "varied_options",
    "write_plots",
]

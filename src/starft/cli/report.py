"""``starft report RUN_DIR...``: one table (mean ± std, n), a CSV and plots from any runs."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="aggregate the result JSONs of any runs into a table, a CSV and plots",
        description="Collect every result JSON under the given folders (runs of starft train, "
        "eval, demo, wise-ft, ablate), group the evaluated models by --group-by (mean ± std "
        "over the rest, e.g. over seeds; n shown) and write OUT/report.md, OUT/report.csv and "
        "the plots the results hold data for (per-group bars, per-group differences against "
        "--reference, ID vs OOD, WiSE-FT α curves, per-style bars).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders (or result files)")
    p.add_argument("--out", help="folder for report.md, report.csv, plots (default: print only)")
    p.add_argument(
        "--group-by",
        default="method",
        help="comma-separated fields of a row: method, seed, model, alpha (default: method)",
    )
    p.add_argument(
        "--reference",
        help="row (method or label) the per-group differences are taken against "
        "(default: zero-shot if present, else the first row)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from starft.report import build_report

    report = build_report(
        args.runs, args.out, group_by=args.group_by.split(","), reference=args.reference
    )
    print(report.markdown, end="")
    for name, path in report.files.items():
        print(f"{name}: {path}")
    return 0

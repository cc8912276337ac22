"""``starft ablate``: StarFT's component and pool ablations on the sandbox, as one table."""

from __future__ import annotations

import argparse

from starft.cli.demo import add_run_arguments, command_line, run_recipe


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="StarFT ablations on the sandbox (suffix, mask, decay, pool): one table",
        description="Run the packaged ablation recipe (resources/recipes/sandbox_ablate.yaml: "
        "the demo's task and budget, with FLYP, L_Star on clean / random-suffix / spurious "
        "captions, with and without the same-class mask and the decay, and each sandbox pool) "
        "and write OUT/ablation.md beside the demo report. --methods picks a subset of its runs.",
    )
    add_run_arguments(p, out="runs/ablate", recipe="sandbox_ablate")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from starft.demo.ablation import ablation_table, write_ablation

    result = run_recipe(args)
    print()
    print(ablation_table(result))
    print(f"ablation table: {write_ablation(result, command_line())}")
    return 0

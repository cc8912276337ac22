"""``starft demo``: zero-shot, FT, FLYP and StarFT on the sandbox, every axis, one report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starft.demo import DemoResult


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the sandbox benchmark: zero-shot, FT, FLYP, StarFT over 3 seeds",
        description="Fine-tune the sandbox CLIP with each method and seed, evaluate ID, group "
        "shift (worst/avg/minority group), domain shift (styles) and zero-shot transfer, and "
        "write OUT/report.md (mean ± std table and findings), plots and result JSONs. The "
        "experiment is the packaged recipe resources/recipes/sandbox_demo.yaml (or --recipe); "
        "KEY=VALUE arguments override its fields, e.g. method_configs.starft.method.lambda_star=4.",
    )
    add_run_arguments(p, out="runs/demo", recipe="sandbox_demo")
    p.set_defaults(run=run)


def add_run_arguments(p: argparse.ArgumentParser, *, out: str, recipe: str) -> None:
    """Options shared by ``starft demo`` and ``starft ablate`` (both run a demo recipe)."""
    p.add_argument("--quick", action="store_true", help="one seed, fewer steps (smoke test)")
    p.add_argument(
        "--validation",
        action="store_true",
        help="evaluate on validation draws of every set instead of the test sets "
        "(the numbers to tune the recipe's defaults on)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="run names: zeroshot, registered methods, or variants the recipe defines "
        "(default: the recipe's list)",
    )
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="default: 0 1 2")
    p.add_argument("--out", default=out, help=f"run folder (default: {out})")
    p.add_argument("--json", metavar="PATH", help="also write the summary JSON here")
    p.add_argument("--model", help="model to fine-tune (default: the pretrained sandbox-clip)")
    p.add_argument(
        "--recipe",
        default=recipe,
        help=f"recipe YAML, or a packaged recipe's name (default: {recipe})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides")


def run(args: argparse.Namespace) -> int:
    result = run_recipe(args)
    print(f"report: {result.files['report']}")
    return 0


def run_recipe(args: argparse.Namespace) -> DemoResult:
    """Load the recipe, check the run names, run, print the table and write ``--json``."""
    from starft.demo import check_methods, load_recipe, run_demo, summary, text_table
    from starft.utils.io import atomic_write_json

    recipe = load_recipe(
        args.recipe,
        quick=args.quick,
        validation=args.validation,
        overrides=list(args.overrides),
    )
    # Checked before anything is built or trained: a typo must not cost a model load.
    methods = check_methods(args.methods, recipe) if args.methods is not None else None
    result = run_demo(
        args.out,
        methods=methods,
        seeds=args.seeds,
        quick=args.quick,
        model=args.model,
        recipe=recipe,
        progress=not args.no_progress,
    )
    print(text_table(result))
    if args.json:
        atomic_write_json(Path(args.json), summary(result), indent=2)
        print(f"summary: {args.json}")
    return result


def command_line() -> str:
    """The command as typed (for reports that say how they were made)."""
    return "starft " + shlex.join(sys.argv[1:])

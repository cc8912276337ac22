"""``starft discover-bench``: measure how well discovery finds a marker the model learned.

Fine-tunes the model on every sandbox marker setting of a grid, keeps the settings where it
learned the marker, runs discovery on grid regions and scores RaVL's ranked regions and the
baselines' against the marker boxes (P@K, R-precision). Writes ``bench.json`` and ``bench.md``.
"""

from __future__ import annotations

import argparse
import shlex


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "discover-bench",
        help="measure RaVL discovery against baselines on sandbox marker settings",
        description="For every spurious class x Cramér's V x marker kind x fine-tuning method of "
        "a grid (resources/discovery/bench_grids.yaml: quick, full; or --grid-file), fine-tune "
        "the model, keep the settings where it learned the marker, run discovery and score the "
        "ranked regions of RaVL and the baselines against the marker boxes (Precision@K, "
        "R-precision, 95%% bootstrap intervals over settings). KEY=VALUE arguments override the "
        "grid (dotted: train.optim.epochs=1, eval.n=200). See docs/discovery.md.",
    )
    p.add_argument("--grid", default="quick", help="grid name (default: quick)")
    p.add_argument("--grid-file", help="a grid file of the same shape (default: the packaged)")
    p.add_argument("--out", help="folder for bench.json, bench.md and runs/ (required to run)")
    p.add_argument("--methods", nargs="+", help="fine-tuning methods (default: the grid's)")
    p.add_argument(
        "--keep-weights", action="store_true", help="keep each setting's fine-tuned weights"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse runs/<setting>/record.json of settings already scored with the same configs",
    )
    p.add_argument("--list", action="store_true", help="print the settings and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="grid overrides")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from starft.discovery_bench.grid import load_grid

    overrides = list(args.overrides)
    if args.methods:
        overrides.append(f"methods=[{', '.join(args.methods)}]")
    grid = load_grid(args.grid, args.grid_file, overrides)
    settings = grid.settings()
    if args.list:
        for setting in settings:
            print(setting.key)
        print(f"{len(settings)} settings")
        return 0
    from starft.discovery_bench.run import run_bench
    from starft.errors import StarftError

    if not args.out:
        raise StarftError("discover-bench: --out is required (except with --list)")

    def status(text: str) -> None:
        print(text, flush=True)

    words = ["starft", "discover-bench", "--grid", args.grid, "--out", str(args.out)]
    if args.grid_file:
        words += ["--grid-file", args.grid_file]
    command = shlex.join([*words, *overrides])
    bench = run_bench(
        grid,
        args.out,
        keep_weights=args.keep_weights,
        resume=args.resume,
        status=status,
        command=command,
    )
    scope = bench.summary["all"]
    print(f"{scope['kept']} of {scope['settings']} settings kept ({bench.seconds / 60:.1f} min)")
    for name, stats in scope["rankings"].items():
        p10 = stats[f"P@{grid.ks[0]}"]
        if p10["mean"] is not None:
            print(f"  {name}: P@{grid.ks[0]} {p10['mean']:.3f}")
    print(f"report: {bench.paths['report']}")
    return 0

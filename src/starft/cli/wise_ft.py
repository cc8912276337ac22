"""``starft wise-ft``: sweep the weight-space ensemble of a run and its zero-shot model over α."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wise-ft",
        help="evaluate WiSE-FT interpolations of a run with its zero-shot model",
        description="Evaluate θ_α = (1-α)·θ_zero-shot + α·θ_fine-tuned of a `starft train` run "
        "for every α, on the run's validation set or on the datasets given with --dataset NAME "
        "[KEY=VALUE ...] (repeatable; put RUN_DIR first). Writes one result JSON per α and "
        "dataset, wise_ft.json, wise_ft.md and wise_ft.png.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder of a `starft train` run")
    p.add_argument(
        "--alphas",
        default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
        help="comma-separated α values in [0, 1] (default: 0,0.1,...,1)",
    )
    p.add_argument(
        "--dataset",
        nargs="+",
        action="append",
        metavar=("NAME", "KEY=VALUE"),
        help="dataset to evaluate and its arguments, e.g. --dataset sandbox_groups per_group=100",
    )
    p.add_argument("--out", help="output folder (default: RUN_DIR/wise_ft)")
    p.add_argument(
        "--weights",
        choices=("auto", "best", "final"),
        default="auto",
        help="the run's weights to interpolate (auto: best/ if present, else final/)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.set_defaults(run=run)


def parse_alphas(text: str) -> list[float]:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]``; range and duplicates are checked by the library."""
    from starft.errors import StarftError

    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise StarftError(f"--alphas: '{part.strip()}' is not a number") from None
    return values


def parse_datasets(groups: list[list[str]] | None) -> list[Any]:
    """``[[NAME, KEY=VALUE, ...], ...]`` -> dataset specs (values parsed as YAML)."""
    from starft.config import parse_flat_overrides
    from starft.errors import StarftError
    from starft.eval.wise_ft import DatasetSpec

    specs = []
    for name, *pairs in groups or []:
        if "=" in name:
            raise StarftError(f"--dataset: expected a dataset name before '{name}'")
        specs.append(DatasetSpec(name, parse_flat_overrides(pairs)))
    return specs


def run(args: argparse.Namespace) -> int:
    from starft.eval.wise_ft import check_alphas, wise_ft
    from starft.train.distributed import (
        init_distributed,
        resolve_autocast,
        resolve_device,
        shutdown_distributed,
    )

    alphas = check_alphas(parse_alphas(args.alphas))
    datasets = parse_datasets(args.dataset)
    info = init_distributed()
    try:
        device = resolve_device(args.device, info)
        result = wise_ft(
            args.run_dir,
            alphas,
            datasets,
            out_dir=args.out,
            weights=args.weights,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=device,
            dist=info,
            autocast_dtype=resolve_autocast(args.precision, device),
            progress=False,
        )
    finally:
        shutdown_distributed()
    if info.is_main:
        print(result.table.read_text(encoding="utf-8").rstrip())
        print(f"summary: {result.summary}\nplot: {result.plot}")
    return 0

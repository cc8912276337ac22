"""``starft sandbox ...``: the embedded world's tiny CLIP (pretrain it, measure it)."""

from __future__ import annotations

import argparse
import json

from starft.sandbox_recipes import RECIPES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="the sandbox world and its tiny CLIP")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    recipes = "; ".join(
        f"{model}: resources/{recipe}, writing OUT/{weights}"
        for model, (recipe, weights) in RECIPES.items()
    )
    pre = actions.add_parser(
        "pretrain",
        help="pretrain a sandbox CLIP from scratch (the recipe of a shipped sandbox model)",
        description="Contrastive pretraining on the uniform sandbox world with the packaged recipe "
        f"of --model ({recipes}); KEY=VALUE overrides any field. The weights are written in "
        "float16, with OUT/pretrain_report.json.",
    )
    pre.add_argument(
        "--model",
        default="sandbox-clip",
        choices=list(RECIPES),
        help="which shipped model's recipe to run (default: %(default)s)",
    )
    pre.add_argument("--out", help="run folder (default: runs/sandbox_pretrain)")
    pre.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="auto|CHECKPOINT",
        help="as for `starft train`: continue OUT's run (auto: if it has a checkpoint)",
    )
    pre.add_argument("--overwrite", action="store_true", help="replace the run already in OUT")
    pre.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    pre.set_defaults(run=run_pretrain)

    zs = actions.add_parser(
        "zeroshot", help="zero-shot accuracy of a model on every sandbox attribute"
    )
    zs.add_argument("--model", default="sandbox-clip")
    zs.add_argument("--n", type=int, default=1000, help="images per attribute test set")
    zs.set_defaults(run=run_zeroshot, overrides=[])

    sheet = actions.add_parser(
        "sheet",
        help="contact sheet of sandbox images with object mask, part and marker overlays",
        description="Write a PNG: one row per image (every shape and style), with its object "
        "mask, its named parts and a marker with its ground-truth box (docs/sandbox.md).",
    )
    sheet.add_argument("--out", default="docs/img/sandbox_contact_sheet.png")
    sheet.add_argument("--rows", type=int, default=10)
    sheet.add_argument("--seed", type=int, default=0)
    sheet.set_defaults(run=run_sheet, overrides=[])


def run_pretrain(args: argparse.Namespace) -> int:
    from starft.sandbox.pretrain import pretrain

    overrides = ([f"out_dir={args.out}"] if args.out else []) + list(args.overrides)
    report = pretrain(overrides, resume=args.resume, overwrite=args.overwrite, model=args.model)
    print(json.dumps(report["zeroshot_top1"], indent=2))
    print(f"weights: {report['weights']} ({report['weights_mb']:.1f} MiB)")
    return 0


def run_zeroshot(args: argparse.Namespace) -> int:
    from starft.models import create_model
    from starft.sandbox.pretrain import zeroshot_accuracy

    accuracies = zeroshot_accuracy(create_model(args.model), n=args.n)
    for attribute, accuracy in accuracies.items():
        print(f"{attribute:>8}: {accuracy:.4f}")
    return 0


def run_sheet(args: argparse.Namespace) -> int:
    from starft.sandbox.sheet import write_contact_sheet

    print(f"wrote {write_contact_sheet(args.out, rows=args.rows, seed=args.seed)}")
    return 0

"""``starft train``: YAML config + flags + ``key=value`` overrides -> :func:`starft.train.fit`."""

from __future__ import annotations

import argparse
import contextlib

# Convenience flags and the config field each one sets (everything else: key.path=value).
FLAGS = {
    "model": "model.name",
    "pretrained": "model.pretrained",
    "method": "method.name",
    "dataset": "data.dataset",
    "out": "out_dir",
    "epochs": "optim.epochs",
    "lr": "optim.lr",
    "batch_size": "data.batch_size",
    "seed": "seed",
    "device": "device",
    "precision": "precision",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a model",
        description="Fine-tune a model. Settings come from --config, then the flags below, then "
        "KEY=VALUE overrides of any config field "
        "(e.g. optim.warmup_steps=100 method.pool=texture).",
    )
    p.add_argument("--config", help="YAML config file (see configs/)")
    for flag, field in FLAGS.items():
        p.add_argument(
            f"--{flag.replace('_', '-')}", dest=flag, metavar="VALUE", help=f"sets {field}"
        )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="auto|CHECKPOINT",
        help="continue from OUT/checkpoints/latest.pt (an error if there is none); "
        "'--resume auto': continue if that checkpoint exists, else start afresh; "
        "'--resume FILE': continue from that checkpoint",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in OUT (without it, an OUT holding a run is refused)",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from starft.config import load_train_config

    overrides = [
        f"{field}={getattr(args, flag)}"
        for flag, field in FLAGS.items()
        if getattr(args, flag) is not None
    ]
    # The config is checked before torch is imported: a typo fails in well under a second.
    config = load_train_config(args.config, overrides + list(args.overrides))
    from starft.train import fit
    from starft.train.distributed import shutdown_distributed

    try:
        result = fit(config, resume=args.resume, overwrite=args.overwrite)
    except BaseException as err:
        # Leave the process group cleanly only when every rank failed together; a rank failing
        # alone must exit at once (a barrier would wait for peers stuck in a collective), so
        # torchrun sees it and stops the others.
        if getattr(err, "all_ranks", False):
            with contextlib.suppress(Exception):  # a peer that failed with a bug has left
                shutdown_distributed()
        raise
    shutdown_distributed()
    if not result.main_process:  # under torchrun the summary is rank 0's alone
        return 0
    if result.skipped_steps:
        print(f"skipped optimiser steps (non-finite loss or gradient): {result.skipped_steps}")
    if result.best_metric is not None:
        print(
            f"best {config.select_by} on validation: {result.best_metric:.4f} -> {result.best_dir}"
        )
    print(f"final weights: {result.final_dir}")
    return 0

"""``starft bench``: time the trainer's training step for a method on synthetic data."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="time training steps on synthetic data",
        description="Time K training steps (after warm-up) of a method on synthetic batches held "
        "in memory, through the same step function `starft train` runs (autocast, GradScaler, "
        "accumulation, DDP under torchrun). Prints median step time, throughput and peak memory. "
        "Overrides: method parameters (KEY=VALUE or method.KEY=VALUE) and data.augment=false "
        "(frozen teachers then cache image features, as a run with a deterministic transform).",
    )
    p.add_argument("--method", default="starft")
    p.add_argument("--model", default="starft-tiny-vit")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument(
        "--accum-steps", type=int, default=1, help="micro-batches per optimiser step (optim.)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument(
        "--cold",
        action="store_true",
        help="time with empty caption caches (default: warm, the steady state of a real run)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="method parameters")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from starft.bench import BenchConfig, run_bench
    from starft.config import parse_override
    from starft.errors import StarftError

    if args.steps < 1 or args.batch_size < 1 or args.warmup < 0:
        raise StarftError("--steps and --batch-size must be >= 1 and --warmup >= 0")
    if args.accum_steps < 1:
        raise StarftError(f"--accum-steps must be >= 1, got {args.accum_steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    params = {}
    augment = True
    for text in args.overrides:
        path, value = parse_override(text)
        if path[0] == "data":
            if list(path) != ["data", "augment"] or not isinstance(value, bool):
                raise StarftError(
                    f"bench override '{text}': the only data setting is data.augment=true|false"
                )
            augment = value
            continue
        params[".".join(path).removeprefix("method.")] = value
    config = BenchConfig(
        method=args.method,
        model=args.model,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        num_classes=args.num_classes,
        accum_steps=args.accum_steps,
        augment=augment,
        device=args.device,
        precision=args.precision,
        cold=args.cold,
    )
    result = run_bench(config, params)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0

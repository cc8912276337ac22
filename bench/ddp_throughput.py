"""DDP throughput on the CPU: 2 gloo processes against 1, with the feature gathers timed apart.

Each process trains ``--method`` on its own random batches of ``--batch-size`` (weak scaling: the
global batch grows with the processes, as with torchrun) through ``DistributedDataParallel``, and
the script reports samples/s over all processes. The contrastive and Star losses gather features
across ranks (``starft.losses.distributed``); the time spent inside those collectives, forward
gathers and their backward reductions, is summed separately, so the cost of a global batch of
negatives shows apart from DDP's gradient all-reduce (which overlaps the backward pass).

    python bench/ddp_throughput.py --model starft-tiny-vit --batch-size 32 --steps 10

Threads: by default the cores are split evenly, ``--threads`` per process overrides.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _timed_gathers(totals: dict[str, float]) -> None:
    """Time every collective issued from ``starft.losses.distributed`` (the feature gathers)."""
    import torch.distributed as dist

    for name in ("all_gather", "all_reduce"):
        real = getattr(dist, name)

        def timed(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            import sys

            caller = sys._getframe(1).f_code.co_filename
            if not caller.endswith(os.path.join("losses", "distributed.py")):
                return _real(*args, **kwargs)
            tic = time.perf_counter()
            out = _real(*args, **kwargs)
            totals["gather_s"] += time.perf_counter() - tic
            totals["gather_calls"] += 1
            return out

        setattr(dist, name, timed)


def worker(rank: int, world_size: int, port: int, args: dict[str, Any], out: str) -> None:
    torch.set_num_threads(args["threads"])
    totals = {"gather_s": 0.0, "gather_calls": 0}
    if world_size > 1:
        import torch.distributed as dist

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group(
            "gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=600)
        )
        _timed_gathers(totals)
    from starft.config import OptimConfig
    from starft.data import get_templates
    from starft.methods import StepInfo, Task, create_method
    from starft.models import create_model
    from starft.train.optim import build_optimizer
    from starft.train.sampling import seeded_generator

    torch.manual_seed(0)
    model = create_model(args["model"])
    task = Task([f"class {i}" for i in range(1000)], get_templates("openai_imagenet"))
    method = create_method(args["method"], model, task, rank=rank, world_size=world_size).train()
    ddp = method
    if world_size > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(method, broadcast_buffers=False)
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-5))
    height, width = model.image_size
    generator = torch.Generator().manual_seed(rank)
    batches = [
        {
            "image": torch.randn(args["batch_size"], 3, height, width, generator=generator),
            "label": torch.randint(1000, (args["batch_size"],), generator=generator),
        }
        for _ in range(4)
    ]
    total = args["warmup"] + args["steps"]
    times, gathers = [], []
    for step in range(total):
        info = StepInfo(step, 0, total, 10 * total, seeded_generator(0, step), rank, world_size)
        before = totals["gather_s"]
        tic = time.perf_counter()
        ddp(batches[step % len(batches)], info)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= args["warmup"]:
            times.append(time.perf_counter() - tic)
            gathers.append(totals["gather_s"] - before)
    result = {
        "step_time_s": statistics.median(times),
        "gather_s_per_step": statistics.median(gathers),
        "gather_calls_per_step": totals["gather_calls"] / total,
    }
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def measure(args: argparse.Namespace, method: str, world_size: int) -> dict[str, Any]:
    import torch.multiprocessing as mp

    threads = args.threads or max(1, (os.cpu_count() or 1) // world_size)
    settings = {**vars(args), "method": method, "threads": threads}
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(
            worker,
            args=(world_size, _free_port(), settings, out),
            nprocs=world_size,
            start_method="spawn",
        )
        ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(world_size)]
    step = max(r["step_time_s"] for r in ranks)  # the slowest rank sets the pace
    gather = max(r["gather_s_per_step"] for r in ranks)
    return {
        "processes": world_size,
        "threads_per_process": threads,
        "step_time_s": step,
        "samples_per_s": world_size * args.batch_size / step,
        "gather_s_per_step": gather,
        "gather_share_of_step": gather / step,
        "gather_calls_per_step": ranks[0]["gather_calls_per_step"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="starft-tiny-vit")
    p.add_argument("--methods", nargs="+", default=["flyp", "starft"])
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads per process")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, Any] = {}
    for method in args.methods:
        one, two = measure(args, method, 1), measure(args, method, 2)
        results[method] = {
            "1": one,
            "2": two,
            "throughput_2_over_1": two["samples_per_s"] / one["samples_per_s"],
        }
        ratio = results[method]["throughput_2_over_1"]
        print(
            f"{method}: 1 process {one['samples_per_s']:.1f} samples/s, 2 processes "
            f"{two['samples_per_s']:.1f} samples/s (x{ratio:.2f}); "
            f"feature gathers {two['gather_s_per_step'] * 1e3:.1f} ms of a "
            f"{two['step_time_s'] * 1e3:.1f} ms step ({two['gather_share_of_step']:.1%})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()

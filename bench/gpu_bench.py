"""One-GPU benchmark: FLYP and StarFT training throughput, MFU, peak memory; eval throughput.

Run by ``bench/gpu.sh`` (which sets up the environment); every number comes from one run:

* per method, ``starft bench``'s timed steps (``starft.bench.run_bench``: forward, backward and
  AdamW update on batches held on the GPU) -> images/s and peak GPU memory;
* FLOPs of one step counted by PyTorch's ``FlopCounterMode`` on the same model, method and batch
  (``starft.utils.flops``) -> MFU against the GPU's dense bf16 peak;
* ``bench/eval_throughput.py``: zero-shot head building and image features/s.

Defaults are the issue's setting: ViT-B/16 (random init from open_clip's config, nothing
downloaded), batch 256, bf16 autocast. ``--device cpu --smoke`` runs the whole script on a tiny
model in seconds (a test does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_throughput  # bench/ is not a package

from starft.bench import BenchConfig, run_bench
from starft.data import get_templates
from starft.methods import StepInfo, Task, create_method
from starft.models import create_model
from starft.train.distributed import resolve_autocast
from starft.train.sampling import seeded_generator
from starft.utils.flops import PEAK_BF16_TFLOPS, count_flops, mfu

SMOKE = {
    "model": "starft-tiny-vit",
    "batch_size": 8,
    "steps": 2,
    "warmup": 1,
    "num_classes": 10,
    "precision": "auto",  # fp32 on the CPU, bf16 on a GPU
}


def step_flops(config: BenchConfig) -> int:
    """FLOPs of one forward + backward of ``config``'s method, counted on its device."""
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    model = create_model(config.model, device=device)
    task = Task([f"class {i}" for i in range(config.num_classes)], get_templates(config.templates))
    method = create_method(config.method, model, task).to(device).train()
    height, width = model.image_size
    generator = torch.Generator().manual_seed(config.seed)
    batch = {
        "image": torch.randn(config.batch_size, 3, height, width, generator=generator).to(device),
        "label": torch.randint(config.num_classes, (config.batch_size,), generator=generator).to(
            device
        ),
    }
    info = StepInfo(0, 0, 10, 100, seeded_generator(config.seed, 0))
    dtype = resolve_autocast(config.precision, device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = method(batch, info)
        out["loss"].backward()

    method(batch, info)  # fill caption caches: count the steady-state step
    return count_flops(step)


def train_throughput(args: argparse.Namespace, method: str, peak: float | None) -> dict[str, Any]:
    config = BenchConfig(
        method=method,
        model=args.model,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        num_classes=args.num_classes,
        device=args.device,
        precision=args.precision,
    )
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = run_bench(config)
    flops = step_flops(config)
    result["flops_per_step"] = flops
    result["tflops_per_s"] = flops / result["step_time_s"] / 1e12
    result["mfu"] = None if peak is None else mfu(flops, result["step_time_s"], peak)
    return result


def peak_tflops(args: argparse.Namespace) -> float | None:
    if args.peak_tflops is not None:
        return args.peak_tflops
    if args.device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(args.device))
        if name not in PEAK_BF16_TFLOPS:
            print(f"unknown GPU '{name}': MFU needs --peak-tflops", file=sys.stderr)
        return PEAK_BF16_TFLOPS.get(name)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    peak = peak_tflops(args)
    result: dict[str, Any] = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(torch.device(args.device))
        if args.device.startswith("cuda")
        else "cpu",
        "peak_tflops": peak,
        "torch": torch.__version__,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "train": {m: train_throughput(args, m, peak) for m in args.methods},
    }
    train = result["train"]
    if "flyp" in train and "starft" in train:
        result["starft_over_flyp_step_time"] = (
            train["starft"]["step_time_s"] / train["flyp"]["step_time_s"]
        )
    eval_argv = ["--model", args.model, "--device", args.device, "--precision", args.precision]
    if args.smoke:
        eval_argv += ["--classes", "5", "--num-templates", "3", "--text-batch-sizes", "4"]
        eval_argv += ["--image-batch-sizes", "2", "--num-images", "4"]
    else:
        eval_argv += ["--image-batch-sizes", "256", "1024", "--num-images", "8192"]
    result["eval"] = eval_throughput.run(eval_throughput.parser().parse_args(eval_argv))
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="ViT-B-16")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16", "auto"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--methods", nargs="+", default=["flyp", "starft"])
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (TFLOP/s)")
    p.add_argument("--smoke", action="store_true", help="tiny model, two steps: a quick check")
    p.add_argument(
        "--out",
        default=os.path.join(os.environ["OUT"], "gpu_bench.json")
        if os.environ.get("OUT")
        else None,
        help="JSON file for the results (default: $OUT/gpu_bench.json when OUT is set)",
    )
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    return result


if __name__ == "__main__":
    main()

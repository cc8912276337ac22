"""Training-step benchmark on synthetic data (``starft bench``).

Times full optimiser steps (forward, backward, AdamW update) of a method on a fixed set of random
batches held in memory, so data loading is excluded and two methods compare on equal terms. The
captions are realistic in number: labels are drawn from ``num_classes`` classes (1000 by default,
ImageNet-like) and FLYP draws one of the 80 OpenAI templates per sample, as in the paper's setting.

By default the timed steps run with warm caches, as in the steady state of a real run: before
timing, each timed step's forward pass is run once under ``torch.no_grad`` so that the tokeniser
cache (both methods) and StarFT's teacher caption table hold that step's captions. On ImageNet the
table holds all 1000 x 58 background captions after the first few thousand of 25k steps, so the
cold phase is a small, one-off cost; ``cold=True`` measures it instead.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from starft import __version__
from starft.config import OptimConfig
from starft.data import get_templates
from starft.methods import StepInfo, Task, create_method
from starft.models import create_model
from starft.train.distributed import resolve_autocast, resolve_device
from starft.train.optim import build_optimizer
from starft.train.sampling import seeded_generator
from starft.utils.distributed import DistInfo


@dataclass
class BenchConfig:
    method: str = "starft"
    model: str = "starft-tiny-vit"
    batch_size: int = 32
    steps: int = 10
    warmup: int = 3
    num_classes: int = 1000
    templates: str = "openai_imagenet"
    num_batches: int = 4
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    cold: bool = False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def run_bench(config: BenchConfig, method_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time ``config.steps`` training steps after ``config.warmup``; returns a JSON-able summary."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device, DistInfo())
    autocast_dtype = resolve_autocast(config.precision, device)
    model = create_model(config.model, device=device)
    task = Task(
        [f"class {i}" for i in range(config.num_classes)],
        get_templates(config.templates),
    )
    method = create_method(config.method, model, task, method_params).to(device)
    method.train()
    optimizer = build_optimizer(method.trainable_named_parameters(), OptimConfig(lr=1e-5))
    size = model.preprocess_cfg.get("size", 224)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    generator = torch.Generator().manual_seed(config.seed)
    batches = [
        {
            "image": torch.randn(config.batch_size, 3, height, width, generator=generator).to(
                device
            ),
            "label": torch.randint(
                config.num_classes, (config.batch_size,), generator=generator
            ).to(device),
        }
        for _ in range(config.num_batches)
    ]
    if "mask" in getattr(type(method), "data_keys", ()):
        for batch in batches:  # relevance-guided methods (robustvit, cft): a centre square
            mask = torch.zeros(config.batch_size, height, width, device=device)
            mask[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
            batch["mask"] = mask
    total = config.warmup + config.steps

    def step_info(step: int) -> StepInfo:
        # λ decay off-phase: steps sit in the first of 10 epochs, so StarFT's λ > 0 throughout.
        return StepInfo(step, 0, total, total * 10, seeded_generator(config.seed, step))

    if not config.cold:
        with torch.no_grad():
            for step in range(config.warmup, total):
                method(batches[step % len(batches)], step_info(step))
    times = []
    for step in range(total):
        info = step_info(step)
        batch = batches[step % len(batches)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        with (
            torch.autocast(device.type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else torch.enable_grad()
        ):
            out = method(batch, info)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.after_optimizer_step(info)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= config.warmup:
            times.append(time.perf_counter() - tic)
    step_time = statistics.median(times)
    result: dict[str, Any] = {
        "method": config.method,
        "model": config.model,
        "batch_size": config.batch_size,
        "steps": config.steps,
        "warmup": config.warmup,
        "num_classes": config.num_classes,
        "caches": "cold" if config.cold else "warm",
        "step_time_s": step_time,
        "step_time_min_s": min(times),
        "step_time_max_s": max(times),
        "samples_per_s": config.batch_size / step_time,
        "peak_rss_mb": peak_rss_mb(),
        "device": str(device),
        "precision": str(autocast_dtype or "fp32"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "starft": __version__,
        "method_params": method_params or {},
    }
    if device.type == "cuda":
        result["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result

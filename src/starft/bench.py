"""Training-step benchmark on synthetic data (``starft bench``).

Times the trainer's own optimiser step (:meth:`starft.train.steps.StepLoop.train_step`, the
function :func:`starft.train.fit` runs: autocast, GradScaler, gradient accumulation, the DDP
wrapper under ``torchrun``, the non-finite check and the AdamW update) on a fixed set of random
batches held in memory, so data loading is excluded and two methods compare on equal terms. The
captions are realistic in number: labels are drawn from ``num_classes`` classes (1000 by default,
ImageNet-like) and FLYP draws one of the 80 OpenAI templates per sample, as in the paper's setting.

By default the timed steps run with warm caches, as in the steady state of a real run: before
timing, each timed step's forward pass is run once under ``torch.no_grad`` so that the tokeniser
cache (both methods), StarFT's teacher caption table and, with ``augment=False``, the frozen
teachers' image-feature caches hold that step's entries. On ImageNet the caption table holds all
1000 x 58 background captions after the first few thousand of 25k steps and the image cache is
full after the first epoch, so the cold phase is a small, one-off cost; ``cold=True`` measures it.

``augment=False`` stands for ``data.augment=false``: the random batches play the role of images
under a deterministic transform (each batch row is a fixed dataset row), so frozen teachers get an
in-memory image-feature cache exactly as :func:`starft.train.fit` would attach one.
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
from starft.config import DataConfig, OptimConfig, TrainConfig
from starft.data import get_templates
from starft.methods import Task, create_method
from starft.methods.feature_cache import ImageFeatureCache
from starft.models import create_model
from starft.train.console import Console
from starft.train.device_setup import prepare_for_device
from starft.train.distributed import init_distributed, resolve_autocast, resolve_device
from starft.train.nonfinite import DeferredCheck
from starft.train.optim import build_optimizer
from starft.train.step_window import to_device
from starft.train.steps import StepLoop, wrap_for_training
from starft.train.teacher_cache import frozen_teachers


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
    accum_steps: int = 1
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    cold: bool = False
    augment: bool = True  # False: frozen teachers cache image features (data.augment=false)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


class BenchSteps(StepLoop):
    """The trainer's step machinery around one method, without a run folder or a data loader."""

    def __init__(self, config: BenchConfig, method_params: dict[str, Any] | None) -> None:
        self.info = init_distributed()  # DistInfo(world_size=1) outside torchrun
        self.device = resolve_device(config.device, self.info)
        self.autocast_dtype = resolve_autocast(config.precision, self.device)
        self.config = TrainConfig(
            data=DataConfig(batch_size=config.batch_size),
            optim=OptimConfig(lr=1e-5, warmup_steps=0, accum_steps=config.accum_steps),
            seed=config.seed,
        )
        torch.manual_seed(config.seed)
        self.model = create_model(config.model, device=self.device)
        task = Task(
            [f"class {i}" for i in range(config.num_classes)], get_templates(config.templates)
        )
        self.method = create_method(
            config.method,
            self.model,
            task,
            method_params,
            rank=self.info.rank,
            world_size=self.info.world_size,
        ).to(self.device)
        self.method.train()
        prepare_for_device(self.method, self.device, compile=self.config.compile)
        self.ddp = wrap_for_training(self.method, self.info, self.device)
        self.optimizer = build_optimizer(
            self.method.trainable_named_parameters(), self.config.optim, self.device
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.console = Console(enabled=False)
        self.logger = None
        total = config.warmup + config.steps
        # λ decay off-phase: the steps sit in the first of 10 epochs, so StarFT's λ > 0 throughout.
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.steps_per_epoch, self.total_steps, self.warmup_steps = total, total * 10, 0
        self.nonfinite_skipped = 0
        self.nonfinite_check = DeferredCheck(self.device)
        self._epoch_loss = [0.0, 0]

    def _stop(self, reason: str) -> None:
        from starft.errors import StarftError

        raise StarftError(f"bench: {reason}")

    def _save_checkpoint(self) -> None:  # a benchmark writes nothing
        pass


def make_batches(
    config: BenchConfig, size: tuple[int, int], mask: bool, device: torch.device
) -> list[dict[str, Any]]:
    """``num_batches`` random batches on ``device``; ``index`` (host) numbers their rows."""
    height, width = size
    generator = torch.Generator().manual_seed(config.seed)
    batches = []
    for b in range(config.num_batches):
        batch: dict[str, Any] = {
            "image": torch.randn(config.batch_size, 3, height, width, generator=generator),
            "label": torch.randint(config.num_classes, (config.batch_size,), generator=generator),
            "index": torch.arange(b * config.batch_size, (b + 1) * config.batch_size),
        }
        if mask:  # relevance-guided methods (robustvit, cft): a centre square
            batch["mask"] = torch.zeros(config.batch_size, height, width)
            batch["mask"][:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
        if config.augment:
            del batch["index"]  # a random transform: no row is ever the same twice
        batches.append(to_device(batch, device))
    return batches


def run_bench(config: BenchConfig, method_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time ``config.steps`` training steps after ``config.warmup``; returns a JSON-able summary."""
    loop = BenchSteps(config, method_params)
    device = loop.device
    size = loop.model.preprocess_cfg.get("size", 224)
    batches = make_batches(
        config,
        (size, size) if isinstance(size, int) else tuple(size),
        "mask" in getattr(type(loop.method), "data_keys", ()),
        device,
    )
    caches = []
    if not config.augment:
        for _, teacher in frozen_teachers(loop.method):
            rows = config.num_batches * config.batch_size
            teacher.image_cache = ImageFeatureCache(rows, int(teacher.model.embed_dim))
            caches.append(teacher.image_cache)
    accum = config.accum_steps
    total = config.warmup + config.steps

    def micro_batches(step: int) -> list[dict[str, Any]]:
        # Shallow copies: the step pops bookkeeping keys from the batches it is given.
        return [dict(batches[(step * accum + m) % len(batches)]) for m in range(accum)]

    if not config.cold:
        with torch.no_grad(), loop._autocast():
            for step in range(config.warmup, total):
                loop.step = step
                for micro, batch in enumerate(micro_batches(step)):
                    loop.method(batch, loop.step_info(micro))
        loop.step = 0
    times = []
    for step in range(total):
        work = micro_batches(step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        loop.train_step(work)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= config.warmup:
            times.append(time.perf_counter() - tic)
    step_time = statistics.median(times)
    result: dict[str, Any] = {
        "method": config.method,
        "model": config.model,
        "batch_size": config.batch_size,
        "accum_steps": accum,
        "steps": config.steps,
        "warmup": config.warmup,
        "num_classes": config.num_classes,
        "caches": "cold" if config.cold else "warm",
        "augment": config.augment,
        "teacher_image_cache": _cache_summary(caches, frozen_teachers(loop.method)),
        "step_time_s": step_time,
        "step_time_min_s": min(times),
        "step_time_max_s": max(times),
        "samples_per_s": config.batch_size * accum * loop.info.world_size / step_time,
        "peak_rss_mb": peak_rss_mb(),
        "device": str(device),
        "precision": str(loop.autocast_dtype or "fp32"),
        "threads": torch.get_num_threads(),
        "world_size": loop.info.world_size,
        "torch": torch.__version__,
        "starft": __version__,
        "method_params": method_params or {},
    }
    if device.type == "cuda":
        result["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _cache_summary(caches: list[ImageFeatureCache], teachers: list) -> str:
    if not teachers:
        return "no frozen teacher"
    if not caches:
        return "off (augment: random transform)"
    hits = sum(c.hits for c in caches)
    looked = hits + sum(c.misses for c in caches)
    return f"memory ({hits}/{looked} rows looked up)"

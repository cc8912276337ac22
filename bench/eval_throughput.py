"""Evaluation throughput: zero-shot head building and image feature extraction.

Measures, in one process and one run (so the ratios compare like with like):

* tokenisation of every caption of the head (C classes x T templates) with open_clip's Python
  BPE tokenizer and with starft's Rust twin (identical ids, tested);
* building the head class by class (T captions per text-tower call, the old way) and in batches
  across classes ordered by length, at the device's default batch size and at each
  ``--text-batch-sizes`` value; tokenisation included, caches cleared before each;
* image features (``encode_image``) in images/s at each ``--image-batch-sizes`` value.

    python bench/eval_throughput.py --model sandbox-clip            # 1000 ImageNet classes x 80
    python bench/eval_throughput.py --model ViT-B-16 --device cuda --json eval.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from typing import Any

import torch

from starft.data import get_templates
from starft.data.resources import read_json_resource
from starft.models import create_model
from starft.models.zeroshot import caption_embeddings, text_batch_size
from starft.train.distributed import resolve_autocast


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: torch.device) -> float:
    _sync(device)
    tic = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - tic


def head_throughput(
    model: Any,
    classnames: list[str],
    templates: list[str],
    device: torch.device,
    batch_sizes: list[int],
) -> dict[str, Any]:
    """Seconds to tokenise all captions (slow/fast tokenizer) and to build the head each way."""
    captions = [t.format(c) for c in classnames for t in templates]
    out: dict[str, Any] = {"classes": len(classnames), "templates": len(templates)}
    tokenizer = model.tokenizer
    slow = getattr(tokenizer, "slow", tokenizer)
    out["tokenize_slow_s"] = _timed(lambda: slow(captions), device)
    if slow is not tokenizer:
        tokenizer.rust()  # build outside the timing (once per process)
        out["tokenize_fast_s"] = _timed(lambda: tokenizer(captions), device)
        out["tokenize_fast_identical"] = bool(torch.equal(tokenizer(captions), slow(captions)))

    def build(batch_size: int | None, per_class: bool) -> None:
        model._token_cache.clear()
        if per_class:
            for name in classnames:
                caption_embeddings(model, [name], templates, batch_size=len(templates))
        else:
            caption_embeddings(model, classnames, templates, batch_size=batch_size)

    out["head_class_by_class_s"] = _timed(lambda: build(None, True), device)
    out["default_text_batch_size"] = text_batch_size(device)
    out["head_batched_default_s"] = _timed(lambda: build(None, False), device)
    for size in batch_sizes:
        out[f"head_batched_{size}_s"] = _timed(lambda s=size: build(s, False), device)
    out["batched_over_class_by_class"] = (
        out["head_batched_default_s"] / out["head_class_by_class_s"]
    )
    return out


def feature_throughput(
    model: Any,
    device: torch.device,
    batch_sizes: list[int],
    num_images: int,
    autocast_dtype: torch.dtype | None,
) -> dict[str, float]:
    """Images/s of ``encode_image`` at each batch size (random images, inference mode)."""
    height, width = model.image_size
    out: dict[str, float] = {}
    for size in batch_sizes:
        images = torch.randn(size, 3, height, width, device=device)
        batches = max(1, num_images // size)
        autocast = (
            torch.autocast(device.type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )

        def run(n: int, images: torch.Tensor = images, autocast: Any = autocast) -> None:
            with torch.inference_mode(), autocast:
                for _ in range(n):
                    model.encode_image(images, normalize=True)

        run(1)  # warm-up (kernel selection, allocator)
        seconds = _timed(lambda b=batches: run(b), device)
        out[f"images_per_s_batch_{size}"] = batches * size / seconds
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    model = create_model(args.model, device=device).eval()
    classnames = read_json_resource("benchmarks/imagenet_classnames.json")["classnames"]
    classnames = list(classnames[: args.classes])
    templates = get_templates(args.templates)[: args.num_templates]
    dtype = resolve_autocast(args.precision, device)
    return {
        "model": args.model,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "head": head_throughput(model, classnames, templates, device, args.text_batch_sizes),
        "features": feature_throughput(
            model, device, args.image_batch_sizes, args.num_images, dtype
        ),
        "precision": str(dtype or "fp32"),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sandbox-clip")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--templates", default="openai_imagenet")
    p.add_argument("--num-templates", type=int, default=80)
    p.add_argument("--text-batch-sizes", type=int, nargs="*", default=[64, 256, 1024, 4096])
    p.add_argument("--image-batch-sizes", type=int, nargs="*", default=[32, 128, 256])
    p.add_argument("--num-images", type=int, default=1024)
    p.add_argument("--json", help="also write the results to this file")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

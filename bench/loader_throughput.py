"""Does data loading keep up with the training step? Loader samples/s against step samples/s.

Times the trainer's own DataLoader (``starft.train.steps.train_loader``: epoch sampler, seeded
samples, collate) at several worker counts for

- ``sandbox``: a sandbox training set (``sandbox_train``; its images are rendered once when the
  dataset is built, which is timed separately, then every read is a PIL view plus the transform);
- ``csv`` and ``imagefolder``: a small folder of generated JPEG files in a temporary directory,
  decoded and transformed on every read (the real-data path),

each under the model's training transform (augment) and evaluation transform (data.augment=false),
and compares them with the training step's throughput from ``starft bench`` (FLYP and StarFT,
the trainer's own step). A loader/step ratio below 1 (against the faster of the two methods) means
the step would wait for data at that worker count; the trainer logs the same thing during a run as
``data_wait_share`` in metrics.jsonl.

    python bench/loader_throughput.py --model sandbox-clip --batch-size 64
    python bench/loader_throughput.py --model starft-tiny-vit --workers 0 1 2 --batches 20

Run it on a quiet machine: worker processes compete with the step for the same cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from starft.bench import BenchConfig, run_bench
from starft.data import create_dataset
from starft.models import create_model
from starft.train.steps import train_loader


def write_image_folder(root: Path, count: int, size: int, classes: int = 10) -> Path:
    """``count`` random JPEGs of ``size`` px in ``root/<class>/``, plus ``root/train.csv``."""
    rng = np.random.default_rng(0)
    rows = ["filepath,label"]
    for i in range(count):
        label = i % classes
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
        rows.append(f"class{label}/{i}.jpg,{label}")
    (root / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "classnames.txt").write_text(
        "\n".join(f"class{k}" for k in range(classes)) + "\n", encoding="utf-8"
    )
    return root


def loader_rate(dataset: Any, batch_size: int, workers: int, batches: int) -> float:
    """Samples per second over ``batches`` batches (after the first, which starts the workers)."""
    loader = train_loader(
        dataset, batch_size, seed=0, epoch=0, num_workers=workers, num_batches=batches + 1
    )
    iterator = iter(loader)
    next(iterator)
    tic = time.perf_counter()
    count = sum(len(batch["label"]) for batch in iterator)
    return count / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sandbox-clip")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10, help="timed batches per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--files", type=int, default=512, help="generated image files")
    parser.add_argument("--file-size", type=int, default=128, help="pixels of a generated file")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    model = create_model(args.model)
    needed = args.batch_size * (args.batches + 1)
    results: dict[str, Any] = {"model": args.model, "batch_size": args.batch_size}
    step = {}
    for method in ("flyp", "starft"):
        bench = run_bench(
            BenchConfig(
                method=method,
                model=args.model,
                batch_size=args.batch_size,
                steps=args.steps,
                warmup=1,
            )
        )
        step[method] = bench["samples_per_s"]
    results["step_samples_per_s"] = step
    print(f"model {args.model}, batch {args.batch_size}")
    print("training step: " + ", ".join(f"{m} {r:.1f} samples/s" for m, r in step.items()))

    tic = time.perf_counter()
    sandbox = create_dataset("sandbox_train", n=needed, seed=1)
    render = (time.perf_counter() - tic) / len(sandbox)
    results["sandbox_render_ms_per_image"] = 1000 * render
    print(f"sandbox rendering at construction: {1000 * render:.2f} ms/image (once per dataset)")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_image_folder(Path(tmp), min(args.files, needed), args.file_size)
        sources = {
            "sandbox": sandbox,
            "csv": create_dataset("csv", path=str(root / "train.csv"), root=str(root)),
            "imagefolder": create_dataset("imagefolder", root=str(root)),
        }
        fastest_step = max(step.values())  # the loader must keep up with the faster method
        print(f"{'data':<12} {'transform':<9} {'workers':>7} {'samples/s':>10} {'loader/step':>11}")
        for name, dataset in sources.items():
            for label, transform in (
                ("train", model.preprocess_train),
                ("eval", model.preprocess_val),
            ):
                dataset.transform = transform
                for workers in args.workers:
                    batches = min(args.batches, len(dataset) // args.batch_size - 1)
                    rate = loader_rate(dataset, args.batch_size, workers, batches)
                    ratio = rate / fastest_step
                    rows.append(
                        {
                            "data": name,
                            "transform": label,
                            "workers": workers,
                            "samples_per_s": rate,
                            "loader_over_step": ratio,
                        }
                    )
                    print(f"{name:<12} {label:<9} {workers:>7} {rate:>10.1f} {ratio:>11.2f}")
    results["loader"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

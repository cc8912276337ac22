"""Compare StarFT's training-step time with FLYP's (same model, batch and synthetic data).

Each measurement runs `starft bench --json` (the trainer's own step function) in a fresh process,
so peak RSS is per method; the script prints a table and the line `StarFT / FLYP step time: R`.

    python bench/step_time.py --model sandbox-clip --batch-size 64
    python bench/step_time.py --model starft-tiny-vit --batch-size 64
    python bench/step_time.py --model sandbox-clip --batch-size 64 -- data.augment=false

Extra arguments after `--` go to `starft bench` for both methods: `data.augment=false` measures the
steady state of a run with a deterministic transform, where StarFT's frozen teacher looks its
image features up in the teacher feature cache instead of running its image tower (both methods
in the same run, so the ratio compares like with like); `--cold`, `teacher_text_cache=false`,
`--accum-steps 2` and `--threads N` work too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def bench(method: str, args: argparse.Namespace, extra: list[str]) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "starft.cli.main",
        "bench",
        "--method",
        method,
        "--model",
        args.model,
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--json",
        *extra,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starft-tiny-vit")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    results = {m: bench(m, args, extra) for m in ("flyp", "starft")}
    ratio = results["starft"]["step_time_s"] / results["flyp"]["step_time_s"]
    print(f"model {args.model}, batch {args.batch_size}, {args.steps} timed steps, {extra or ''}")
    print(f"StarFT teacher image features: {results['starft']['teacher_image_cache']}")
    print(f"{'method':<8} {'step_time_s':>12} {'samples/s':>10} {'peak_rss_mb':>12}")
    for name, r in results.items():
        print(
            f"{name:<8} {r['step_time_s']:>12.4f} {r['samples_per_s']:>10.1f} "
            f"{r['peak_rss_mb']:>12.0f}"
        )
    print(f"StarFT / FLYP step time: {ratio:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"ratio": ratio, **results}, f, indent=2)


if __name__ == "__main__":
    main()

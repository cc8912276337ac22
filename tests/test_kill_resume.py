"""``kill -9`` at any point, then ``--resume``: the same final weights, bit for bit.

Runs ``starft train`` in subprocesses (tests/_kill_driver.py) that SIGKILL themselves at chosen
points: mid-step, halfway through a checkpoint write, between a metrics row and its checkpoint,
after validation, and halfway through exporting best/ and final/. The slow test kills one run six
times; the fast one kills once and resumes in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DRIVER = Path(__file__).parent / "_kill_driver.py"


def train_args(out: Path, epochs: int, samples: int = 64, every: int = 1) -> list[str]:
    return [
        "train",
        "--method",
        "starft",
        "--dataset",
        "synthetic",
        "--epochs",
        str(epochs),
        "--batch-size",
        "16",
        "--lr",
        "1e-3",
        "--device",
        "cpu",
        f"data.train={{num_classes: 4, num_samples: {samples}, seed: 0}}",
        "data.val={num_classes: 4, num_samples: 16, seed: 1}",
        "data.augment=true",
        "optim.warmup_steps=2",
        f"checkpoint_every_steps={every}",
        "log.progress=false",
        "log.tensorboard=false",
        "log.every_steps=1",
        "--out",
        str(out),
    ]


def drive(point: str, step: int, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(
        [sys.executable, str(DRIVER), point, str(step), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_same_weights(a_dir: Path, b_dir: Path) -> None:
    a = load_file(a_dir / "open_clip_model.safetensors")
    b = load_file(b_dir / "open_clip_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def assert_clean_run_folder(run: Path) -> None:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["step"], r["split"]) for r in rows]
    assert len(keys) == len(set(keys)), "a step was logged twice"
    leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


@pytest.mark.slow
def test_six_kills_then_resume_give_bit_identical_weights(tmp_path):
    reference = drive("none", 0, train_args(tmp_path / "reference", epochs=3))
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "killed"
    # 4 steps per epoch, 12 in all; every kill lands later than the checkpoint it resumes from.
    kills = [
        ("step", 2),
        ("export-best", 4),
        ("checkpoint", 7),
        ("log", 10),
        ("validation", 12),
        ("export-final", 12),
    ]
    for number, (point, step) in enumerate(kills):
        resume = ["--resume"] if number else []
        proc = drive(point, step, [*train_args(run, epochs=3), *resume])
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr)
    proc = drive("none", 0, [*train_args(run, epochs=3), "--resume"])
    assert proc.returncode == 0, proc.stderr
    assert "resuming from step 12 of 12" in proc.stdout
    assert_same_weights(tmp_path / "reference" / "final", run / "final")
    assert_same_weights(tmp_path / "reference" / "best", run / "best")
    assert_clean_run_folder(run)


def test_kill_during_a_checkpoint_write_then_resume_is_bit_identical(tmp_path):
    from starft.cli.main import main

    # 2 epochs of 2 steps, checkpoints at the ends of epochs only: the kill tears the write of
    # step 4's, and the run resumes from step 2's.
    args = {"epochs": 2, "samples": 32, "every": 0}
    run = tmp_path / "killed"
    proc = drive("checkpoint", 4, train_args(run, **args))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    torn = list((run / "checkpoints").glob(".latest.pt.*.tmp"))
    assert torn, "the kill should have left a torn checkpoint temp file"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocess's numerics: OMP_NUM_THREADS=1
    try:
        assert main([*train_args(run, **args), "--resume"]) == 0
        assert main(train_args(tmp_path / "reference", **args)) == 0
    finally:
        torch.set_num_threads(threads)
    assert_same_weights(tmp_path / "reference" / "final", run / "final")
    assert_clean_run_folder(run)

"""The tiny training run the loop tests share: synthetic data, 2 epochs of 4 steps."""

from __future__ import annotations

from pathlib import Path

from starft.config import TrainConfig, load_train_config


def tiny_run_config(tmp_path: Path, method: str, *overrides: str, name: str = "run") -> TrainConfig:
    """``method`` on 64 synthetic images (4 classes, batch 16, 2 epochs) plus ``overrides``."""
    base = [
        f"method.name={method}",
        "data.dataset=synthetic",
        "data.train={num_classes: 4, num_samples: 64, seed: 0}",
        "data.batch_size=16",
        "optim.epochs=2",
        "optim.warmup_steps=1",
        "optim.lr=1e-3",
        "log.progress=false",
        "log.tensorboard=false",
        "log.every_steps=1",
        f"out_dir={tmp_path / name}",
    ]
    return load_train_config(None, base + list(overrides))

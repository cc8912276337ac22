"""``starft train`` in a process that SIGKILLs itself at a chosen point (tests/test_kill_resume.py).

Usage: ``python _kill_driver.py POINT STEP STARFT_ARGS...``. The process dies with ``kill -9`` (no
``finally``, no atexit, no flush) at:

- ``step``: right after optimiser step STEP, before its metrics row and checkpoint;
- ``checkpoint``: halfway through writing the checkpoint of step STEP (a torn temp file stays);
- ``log``: right after the metrics row of step STEP, before its checkpoint;
- ``validation``: after the validation at step STEP, before its row, best/ and checkpoint;
- ``export-best`` / ``export-final``: after the weights file of best/ or final/ at step STEP is
  written into its temporary folder, before the folder is renamed into place;
- ``none``: not at all.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, step: int) -> None:
    import safetensors.torch
    import torch

    from starft.train import loop, run_state
    from starft.train.logger import RunLogger
    from starft.utils import io as starft_io

    trainer_cls = loop.Trainer
    if point == "step":
        original_step = trainer_cls._optimizer_step

        def optimizer_step(self, *args):
            values = original_step(self, *args)
            if self.step == step:
                die()
            return values

        trainer_cls._optimizer_step = optimizer_step
    elif point == "checkpoint":
        original_save = run_state.save_checkpoint

        def save_checkpoint(path, state):
            if state["step"] == step:
                buffer = io.BytesIO()
                torch.save(state, buffer)
                data = buffer.getvalue()
                with starft_io._atomic_open(path, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                    die()
            original_save(path, state)

        run_state.save_checkpoint = save_checkpoint
    elif point == "log":
        original_log = RunLogger.log

        def log(self, at, values, prefix="train"):
            original_log(self, at, values, prefix)
            if at == step and prefix == "train":
                die()

        RunLogger.log = log
    elif point == "validation":
        original_evaluate = trainer_cls._evaluate

        def evaluate(self):
            result = original_evaluate(self)
            if self.step == step:
                die()
            return result

        trainer_cls._evaluate = evaluate
    elif point in ("export-best", "export-final"):
        folder = point.split("-")[1]
        current = {"step": -1}
        original_check = trainer_cls._check_weights
        original_save_file = safetensors.torch.save_file

        def check_weights(self, what):
            current["step"] = self.step
            original_check(self, what)

        def save_file(tensors, filename, *args, **kwargs):
            original_save_file(tensors, filename, *args, **kwargs)
            if current["step"] == step and Path(filename).parent.name.startswith(f".{folder}."):
                die()

        trainer_cls._check_weights = check_weights
        safetensors.torch.save_file = save_file
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    install(sys.argv[1], int(sys.argv[2]))
    from starft.cli.main import main

    sys.exit(main(sys.argv[3:]))

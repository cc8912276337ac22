"""Where training metrics go: a JSONL file always, TensorBoard and W&B when enabled.

Only rank 0 logs. A fresh run starts metrics.jsonl anew; a resumed run continues it (the run folder
has already dropped the rows logged after the checkpoint, see ``run_folder.open_run_folder``), and
TensorBoard purges its events after the checkpoint's step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from starft.config import LogConfig
from starft.errors import StarftError


class RunLogger:
    def __init__(
        self,
        out_dir: Path,
        config: LogConfig,
        run_config: dict[str, Any],
        enabled: bool,
        resumed_step: int | None = None,
    ) -> None:
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        mode = "w" if resumed_step is None else "a"
        self._jsonl = open(out_dir / "metrics.jsonl", mode, encoding="utf-8")  # noqa: SIM115
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resumed_step is None else resumed_step + 1
            self._tb = SummaryWriter(log_dir=str(out_dir / "tensorboard"), purge_step=purge)
        if config.wandb:
            try:
                import wandb
            except ImportError:
                raise StarftError(
                    "log.wandb=true needs the wandb package: pip install 'starft[wandb]'"
                ) from None
            self._wandb = wandb.init(project=config.wandb_project, config=run_config)

    def log(self, step: int, values: dict[str, Any], prefix: str = "train") -> None:
        if not self.enabled:
            return
        row = {"step": step, "split": prefix, **values}
        assert self._jsonl is not None
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        scalars = {
            f"{prefix}/{k}": float(v)
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def offset(self) -> int | None:
        """Size of metrics.jsonl so far (kept in checkpoints: a resume drops the rows after it)."""
        return None if self._jsonl is None else self._jsonl.tell()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

"""Where training metrics go: a JSONL file always, TensorBoard and W&B when enabled.

Only rank 0 logs. The JSONL file is appended to, so a resumed run continues the same file.
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
        self, out_dir: Path, config: LogConfig, run_config: dict[str, Any], enabled: bool
    ) -> None:
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(out_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
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

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()

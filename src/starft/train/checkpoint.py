"""Resumable training checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds only tensors, numbers, strings and containers (the method's training state, the
optimiser state, counters and the resolved config), so it loads with PyTorch's safe unpickler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from starft.errors import StarftError
from starft.utils.io import atomic_torch_save

CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    atomic_torch_save({"version": CHECKPOINT_VERSION, **state}, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise StarftError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise StarftError(f"checkpoint '{path}' cannot be read: {err}") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise StarftError(f"checkpoint '{path}' is not a starft v{CHECKPOINT_VERSION} checkpoint")
    return state


# Fields that must match between a checkpoint and the config resuming it; what to do about a
# non-finite step may change (that is how a run that stopped on one continues with skip).
RESUME_FIELDS = ("model", "data", "method", "optim", "seed")
RESUME_FREE = {"optim": ("on_nonfinite",)}


def check_resumable(state: dict[str, Any], config: dict[str, Any], path: str | Path) -> None:
    """Refuse to continue a checkpoint under a config that would train something else."""
    saved = state["config"]
    for key in RESUME_FIELDS:
        free = RESUME_FREE.get(key, ())
        if _without(config.get(key), free) != _without(saved.get(key), free):
            raise StarftError(
                f"cannot resume from '{path}': its '{key}' config differs from this run's "
                f"(saved {saved.get(key)!r})"
            )


def _without(section: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(section, dict):
        return section
    return {k: v for k, v in section.items() if k not in keys}

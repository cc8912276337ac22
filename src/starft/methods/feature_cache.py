"""An exact per-row cache of a frozen teacher's image features.

When a training sample is a pure function of its dataset row (fixed images, deterministic
transform: :mod:`starft.data.determinism`), a frozen teacher's image features are too, so each row
is encoded once (the first time the row is seen, normally in the first epoch) and looked up by its
row index afterwards. The trainer decides whether that holds and attaches a cache
(:mod:`starft.train.teacher_cache`); without one, or for a batch without ``index``, the teacher
runs as before.

A row keeps the value of its first computation: a later batch holding a cached row takes the
stored value even if the teacher runs for the batch's other rows, so a run never mixes two
roundings of one row. Values are stored as float32 and handed back in the dtype the teacher
produced (bf16/fp16 round-trip through float32 exactly).

The table lives in memory (on the teacher's device) or, for large datasets, in a memory-mapped
float32 file. The filled-row mask lives in memory and is written atomically by :meth:`save`
(after the file's rows are flushed), so a reloaded cache only trusts rows that reached the disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from starft.errors import StarftError
from starft.utils.io import atomic_torch_save


class ImageFeatureCache:
    """Rows ``[0, num_rows)`` of ``dim``-wide features; in memory, or in the file ``path``."""

    def __init__(self, num_rows: int, dim: int, path: str | Path | None = None) -> None:
        self.num_rows = num_rows
        self.dim = dim
        self.path = Path(path) if path is not None else None
        self.filled = torch.zeros(num_rows, dtype=torch.bool)
        self.table: Tensor | None = None
        self.dtype: torch.dtype | None = None  # the dtype the teacher returned
        self._memmap: np.memmap | None = None
        self.dirty = False
        self.hits = 0
        self.misses = 0

    @property
    def on_disk(self) -> bool:
        return self.path is not None

    @property
    def nbytes(self) -> int:
        return self.num_rows * self.dim * 4

    def lookup(self, index: Any, device: torch.device) -> Tensor | None:
        """Features of rows ``index`` (host ints: a tensor or array), or None unless all cached."""
        rows = self._rows(index)
        if self.table is None or not bool(self.filled[rows].all()):
            return None
        self.hits += len(rows)
        found = self.table.index_select(0, rows.to(self.table.device, non_blocking=True))
        assert self.dtype is not None
        return found.to(device=device, dtype=self.dtype, non_blocking=True)

    def store(self, index: Any, features: Tensor) -> Tensor:
        """Keep the rows not yet cached; returns ``features`` with cached rows' stored values."""
        rows = self._rows(index)
        if features.shape != (len(rows), self.dim):
            raise StarftError(
                f"teacher feature cache: got features of shape {tuple(features.shape)} for "
                f"{len(rows)} rows of width {self.dim}"
            )
        if len(torch.unique(rows)) != len(rows):
            raise StarftError("teacher feature cache: a batch holds the same dataset row twice")
        if self.table is None:
            self._allocate(features)
        assert self.table is not None
        new = ~self.filled[rows]
        fresh = new.nonzero().flatten()  # host tensors: no device synchronisation
        old = (~new).nonzero().flatten()
        self.misses += len(fresh)
        if len(fresh):
            picked = features.index_select(0, fresh.to(features.device, non_blocking=True))
            self.table[rows[fresh].to(self.table.device)] = picked.to(
                self.table.device, torch.float32
            )
            self.filled[rows[fresh]] = True
            self.dirty = True
        if len(old):
            features = features.clone()
            stored = self.table.index_select(0, rows[old].to(self.table.device))
            features[old.to(features.device)] = stored.to(features.device, features.dtype)
        return features

    def _rows(self, index: Any) -> Tensor:
        rows = torch.as_tensor(index).to("cpu", torch.long).flatten()
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= self.num_rows):
            raise StarftError(
                f"teacher feature cache: row index outside [0, {self.num_rows}) (the batch's "
                "'index' is not a row of the training set)"
            )
        return rows

    def _allocate(self, features: Tensor) -> None:
        self.dtype = features.dtype
        if self.path is None:
            self.table = torch.zeros(self.num_rows, self.dim, device=features.device)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._memmap = np.memmap(self.path, np.float32, "w+", shape=(self.num_rows, self.dim))
        self.table = torch.from_numpy(self._memmap)

    # -- persistence (the trainer calls these at checkpoints and on resume) ----------------------
    def save(self, state_path: str | Path) -> None:
        """Write what a resumed run needs (if anything changed since the last save)."""
        if not self.dirty or self.table is None:
            return
        state: dict[str, Any] = {
            "kind": "disk" if self.on_disk else "memory",
            "num_rows": self.num_rows,
            "dim": self.dim,
            "dtype": str(self.dtype).removeprefix("torch."),
            "filled": self.filled.clone(),
        }
        if self._memmap is not None:
            self._memmap.flush()  # the rows first, then the mask that vouches for them
        else:
            state["table"] = self.table[self.filled.to(self.table.device)].cpu()
        atomic_torch_save(state, state_path)
        self.dirty = False

    def load(self, state_path: str | Path) -> bool:
        """Restore a saved cache; False (cache left empty) when there is none."""
        state_path = Path(state_path)
        if not state_path.is_file():
            return False
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("kind") != ("disk" if self.on_disk else "memory"):
            return False  # the store changed (teacher_cache=memory <-> disk): start empty
        if (state["num_rows"], state["dim"]) != (self.num_rows, self.dim):
            raise StarftError(
                f"teacher feature cache '{state_path}' holds {state['num_rows']} rows of width "
                f"{state['dim']}, this run needs {self.num_rows} of width {self.dim}"
            )
        self.dtype = getattr(torch, state["dtype"])
        self.filled = state["filled"].clone()
        if self.path is None:
            self.table = torch.zeros(self.num_rows, self.dim)
            self.table[self.filled] = state["table"]
        else:
            if not self.path.is_file() or self.path.stat().st_size != self.nbytes:
                raise StarftError(
                    f"teacher feature cache file '{self.path}' is missing or has the wrong size "
                    f"(expected {self.nbytes} bytes)"
                )
            self._memmap = np.memmap(self.path, np.float32, "r+", shape=(self.num_rows, self.dim))
            self.table = torch.from_numpy(self._memmap)
        return True

    def to(self, device: torch.device) -> ImageFeatureCache:
        """Move an in-memory table to ``device`` (a memory-mapped one stays on the host)."""
        if self.table is not None and self._memmap is None:
            self.table = self.table.to(device)
        return self

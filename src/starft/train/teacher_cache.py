"""Deciding, attaching and persisting the frozen teachers' image-feature caches of a run.

``teacher_cache`` (a :class:`~starft.config.TrainConfig` field):

- ``auto`` (default): cache when it is exact, i.e. the training set reads the same image for a row
  every time and the training transform has no random step (``data.augment=false``, which uses
  the model's evaluation transform); in memory up to :data:`MEMORY_LIMIT_BYTES` per teacher, else
  memory-mapped in ``OUT/teacher_cache/``;
- ``memory`` / ``disk``: that store, and an error when caching would not be exact;
- ``off``: never.

Every :class:`~starft.methods.teacher.FrozenTeacher` inside the method gets its own cache (StarFT,
CAR-FT, Lipsum-FT, flyp_distill; CaRot's EMA teacher changes during training and has none).
Under DDP each process caches the rows it sees. At every checkpoint each process writes its
caches' state to ``OUT/teacher_cache/``; a run resumed from its own checkpoint reloads it, so it
continues with the very values the interrupted run had.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from starft.data.determinism import row_is_deterministic
from starft.errors import StarftError
from starft.methods.feature_cache import ImageFeatureCache
from starft.methods.teacher import FrozenTeacher

log = logging.getLogger(__name__)

CACHE_DIR = "teacher_cache"
CACHE_MODES = ("auto", "memory", "disk", "off")
#: ``auto`` keeps a teacher's table in memory up to this size, larger ones go to disk.
MEMORY_LIMIT_BYTES = 512 * 2**20


class TeacherCaches:
    """The caches of one process: ``(name, teacher, cache)`` per frozen teacher of the method."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.folder = folder
        self.rank = rank
        self.entries: list[tuple[str, FrozenTeacher, ImageFeatureCache]] = []
        self.reason: str | None = None  # why there is no cache (None when there is one)

    def _state_path(self, name: str) -> Path:
        return self.folder / f"{name}.rank{self.rank}.pt"

    def save(self) -> None:
        for name, _, cache in self.entries:
            cache.save(self._state_path(name))

    def load(self, device: torch.device) -> None:
        for name, _, cache in self.entries:
            cache.load(self._state_path(name))
            cache.to(device)

    def describe(self) -> str:
        if not self.entries:
            return f"teacher image features are not cached: {self.reason}"
        where = ", ".join(
            f"{name} ({'file ' + str(c.path) if c.on_disk else 'memory'})"
            for name, _, c in self.entries
        )
        return f"teacher image features are cached per dataset row: {where}"

    def stats(self) -> dict[str, int]:
        return {
            "hits": sum(c.hits for _, _, c in self.entries),
            "misses": sum(c.misses for _, _, c in self.entries),
        }


def frozen_teachers(method: nn.Module) -> list[tuple[str, FrozenTeacher]]:
    return [(name, m) for name, m in method.named_modules() if isinstance(m, FrozenTeacher)]


def setup_teacher_caches(
    mode: str, method: nn.Module, train_set: Any, out_dir: Path, rank: int = 0
) -> TeacherCaches:
    """Attach a cache to every frozen teacher of ``method`` when ``mode`` and the data allow it.

    Raises :class:`StarftError` for an unknown mode, or for ``memory``/``disk`` when the training
    samples are not a pure function of their row (the cache would silently be wrong).
    """
    if mode not in CACHE_MODES:
        raise StarftError(f"teacher_cache must be one of {', '.join(CACHE_MODES)}, got '{mode}'")
    caches = TeacherCaches(out_dir / CACHE_DIR, rank)
    teachers = frozen_teachers(method)
    if not teachers:
        caches.reason = "the method has no frozen teacher"
        return caches
    if mode == "off":
        caches.reason = "teacher_cache=off"
        return caches
    blocker = row_is_deterministic(train_set)
    if blocker is not None:
        if mode != "auto":
            raise StarftError(
                f"teacher_cache={mode} would not be exact: {blocker} (use data.augment=false, "
                "or teacher_cache=auto/off)"
            )
        caches.reason = blocker
        return caches
    for name, teacher in teachers:
        name = name or "teacher"
        dim = int(teacher.model.embed_dim)
        cache = ImageFeatureCache(len(train_set), dim)
        disk = mode == "disk" or (mode == "auto" and cache.nbytes > MEMORY_LIMIT_BYTES)
        if disk:
            cache = ImageFeatureCache(len(train_set), dim, caches.folder / f"{name}.rank{rank}.f32")
        teacher.image_cache = cache
        caches.entries.append((name, teacher, cache))
    return caches

"""Fine-tuning methods: a registry of :class:`Method` classes with typed configs."""

from __future__ import annotations

import importlib
from dataclasses import fields
from typing import Any

from starft.method_configs import (
    METHOD_TABLE,
    CarFTConfig,
    CaRotConfig,
    FeatureDistillConfig,
    FLYPConfig,
    FTConfig,
    LipsumConfig,
    LPConfig,
    MethodConfig,
    StarFTConfig,
    method_config,
)
from starft.methods.base import Method, PrepareContext, StepInfo, Task
from starft.methods.carft import CarFT
from starft.methods.carot import CaRot
from starft.methods.distill import FeatureDistill
from starft.methods.flyp import FLYP
from starft.methods.ft import FT
from starft.methods.lipsum import Lipsum
from starft.methods.lp import LP, LPFT
from starft.methods.starft import StarFT
from starft.models import ClipModel
from starft.registry import Registry


def _method_class(target: str) -> type[Method]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# Built from the one table of methods (starft.method_configs), which also types their configs.
METHODS: Registry[type[Method]] = Registry("method")
for _name, _target, _config, _description in METHOD_TABLE:
    _cls = _method_class(_target)
    if _cls.Config is not _config:  # pragma: no cover - a wrong table row fails at import
        raise TypeError(f"method '{_name}': {_cls.__name__}.Config is not {_config.__name__}")
    METHODS.add(_name, _cls, _description)


def method_defaults(name: str) -> dict[str, Any]:
    cfg = METHODS.get(name).Config()
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}


def create_method(
    name: str,
    model: ClipModel,
    task: Task,
    params: dict[str, Any] | MethodConfig | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> Method:
    """Instantiate method ``name`` around ``model`` (params: dict of overrides or a config)."""
    cls = METHODS.get(name)
    config = params if isinstance(params, MethodConfig) else method_config(name, params)
    return cls(model, task, config, rank=rank, world_size=world_size)


__all__ = [
    "FLYP",
    "FT",
    "LP",
    "LPFT",
    "METHODS",
    "CaRot",
    "CaRotConfig",
    "CarFT",
    "CarFTConfig",
    "FLYPConfig",
    "FTConfig",
    "FeatureDistill",
    "FeatureDistillConfig",
    "LPConfig",
    "Lipsum",
    "LipsumConfig",
    "Method",
    "MethodConfig",
    "PrepareContext",
    "StarFT",
    "StarFTConfig",
    "StepInfo",
    "Task",
    "create_method",
    "method_config",
    "method_defaults",
]

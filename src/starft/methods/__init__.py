"""Fine-tuning methods: a registry of :class:`Method` classes with typed configs."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from starft.config import build_dataclass
from starft.methods.base import Method, MethodConfig, PrepareContext, StepInfo, Task
from starft.methods.carft import CarFT, CarFTConfig
from starft.methods.carot import CaRot, CaRotConfig
from starft.methods.flyp import FLYP, FLYPConfig
from starft.methods.ft import FT, FTConfig
from starft.methods.lipsum import Lipsum, LipsumConfig
from starft.methods.lp import LP, LPFT, LPConfig
from starft.methods.starft import StarFT, StarFTConfig
from starft.models import ClipModel
from starft.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")
METHODS.add("ft", FT, "cross-entropy fine-tuning of the image tower, zero-shot-initialised head")
METHODS.add("flyp", FLYP, "contrastive fine-tuning with class-name captions (FLYP)")
METHODS.add("lp", LP, "linear probe: L-BFGS logistic regression on frozen features, l2 by val")
METHODS.add("lpft", LPFT, "LP-FT: the linear probe of lp, then ft from that head")
METHODS.add("starft", StarFT, "FLYP + KL alignment on spurious captions to the zero-shot model")
METHODS.add("carft", CarFT, "FT + KL to the zero-shot model's distribution over contexts (CAR-FT)")
METHODS.add("carot", CaRot, "FLYP + orthogonal visual projection + EMA self-distillation (CaRot)")
METHODS.add("lipsum", Lipsum, "FT + zero-shot energies on random texts kept (Lipsum-FT)")


def method_config(name: str, params: dict[str, Any] | None = None) -> MethodConfig:
    """The typed config of method ``name`` from a dict of overrides (unknown keys are errors)."""
    cls = METHODS.get(name)
    return build_dataclass(cls.Config, params or {}, prefix="method")


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

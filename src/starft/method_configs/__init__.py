"""Every method's hyper-parameters as typed dataclasses, and the one table of method names.

This module imports neither torch nor any model code, so a config file's ``method:`` section is
checked in a fraction of a second when the config is loaded (a misspelt field or a bad choice
stops ``starft train`` before any model loads), and ``starft ls methods NAME`` answers at once.
Choice fields are ``Literal`` types: the config loader (:func:`starft.config.build_dataclass`)
accepts only the listed values, and constructing a config in Python checks them too. Each field
carries a one-line help text (``Annotated[type, help]``), which ``starft ls methods NAME`` prints.

:data:`METHOD_TABLE` is the single list of methods: :mod:`starft.methods` builds its registry of
method classes from it.

The dataclasses live by family (:mod:`~starft.method_configs.contrastive`,
:mod:`~starft.method_configs.cross_entropy`) on the shared machinery of
:mod:`~starft.method_configs.base`; every name is re-exported here.
"""

from __future__ import annotations

from typing import Any

from starft.config import build_dataclass
from starft.errors import StarftError
from starft.method_configs.base import (
    Decay,
    GroupSource,
    MaskSource,
    MethodConfig,
    RegionMethod,
    RelevanceBase,
    RelevanceMethod,
    RelevanceTarget,
    Suffix,
    TemplateMode,
    config_values,
    describe_fields,
    option,
    type_name,
)
from starft.method_configs.contrastive import (
    CaRotConfig,
    CFTConfig,
    FeatureDistillConfig,
    FLYPConfig,
    GroupDROConfig,
    RaVLConfig,
    RobustViTConfig,
    StarFTConfig,
)
from starft.method_configs.cross_entropy import (
    DEFAULT_L2_GRID,
    CarFTConfig,
    FTConfig,
    LipsumConfig,
    LPConfig,
    UpsampledFTConfig,
)
from starft.registry import Registry

__all__ = [
    "DEFAULT_L2_GRID",
    "METHOD_CONFIGS",
    "METHOD_TABLE",
    "CFTConfig",
    "CaRotConfig",
    "CarFTConfig",
    "Decay",
    "FLYPConfig",
    "FTConfig",
    "FeatureDistillConfig",
    "GroupDROConfig",
    "GroupSource",
    "LPConfig",
    "LipsumConfig",
    "MaskSource",
    "MethodConfig",
    "RaVLConfig",
    "RegionMethod",
    "RelevanceBase",
    "RelevanceMethod",
    "RelevanceTarget",
    "RobustViTConfig",
    "StarFTConfig",
    "Suffix",
    "TemplateMode",
    "UpsampledFTConfig",
    "config_values",
    "describe_fields",
    "method_config",
    "option",
    "resolve_method_section",
    "type_name",
]


#: name, "module:Class" of the method, its config class, one-line description.
METHOD_TABLE: tuple[tuple[str, str, type[MethodConfig], str], ...] = (
    (
        "ft",
        "starft.methods.ft:FT",
        FTConfig,
        "cross-entropy fine-tuning of the image tower, zero-shot-initialised head",
    ),
    (
        "flyp",
        "starft.methods.flyp:FLYP",
        FLYPConfig,
        "contrastive fine-tuning with class-name captions (FLYP)",
    ),
    (
        "lp",
        "starft.methods.lp:LP",
        LPConfig,
        "linear probe: L-BFGS logistic regression on frozen features, l2 by val",
    ),
    (
        "lpft",
        "starft.methods.lp:LPFT",
        LPConfig,
        "LP-FT: the linear probe of lp, then ft from that head",
    ),
    (
        "flyp_distill",
        "starft.methods.distill:FeatureDistill",
        FeatureDistillConfig,
        "FLYP + cosine distillation of image features from a frozen teacher",
    ),
    (
        "starft",
        "starft.methods.starft:StarFT",
        StarFTConfig,
        "FLYP + KL alignment on spurious captions to the zero-shot model",
    ),
    (
        "ravl",
        "starft.methods.ravl:RaVL",
        RaVLConfig,
        "FLYP + RaVL's region-aware loss; discovered spurious regions only as negatives",
    ),
    (
        "upsampled_ft",
        "starft.methods.group_robust:UpsampledFT",
        UpsampledFTConfig,
        "FT with group losses weighted by inverse training frequency (upsampling)",
    ),
    (
        "vl_gdro",
        "starft.methods.group_robust:VLGroupDRO",
        GroupDROConfig,
        "contrastive fine-tuning with group DRO over class x feature groups",
    ),
    (
        "robustvit",
        "starft.methods.relevance_guided:RobustViT",
        RobustViTConfig,
        "align relevance maps with foreground masks, MSE terms (RobustViT)",
    ),
    (
        "cft",
        "starft.methods.relevance_guided:CFT",
        CFTConfig,
        "align relevance maps with concept masks, BCE terms (CFT)",
    ),
    (
        "carft",
        "starft.methods.carft:CarFT",
        CarFTConfig,
        "FT + KL to the zero-shot model's distribution over contexts (CAR-FT)",
    ),
    (
        "carot",
        "starft.methods.carot:CaRot",
        CaRotConfig,
        "FLYP + orthogonal visual projection + EMA self-distillation (CaRot)",
    ),
    (
        "lipsum",
        "starft.methods.lipsum:Lipsum",
        LipsumConfig,
        "FT + zero-shot energies on random texts kept (Lipsum-FT)",
    ),
)

METHOD_CONFIGS: Registry[type[MethodConfig]] = Registry("method")
for _name, _target, _config, _description in METHOD_TABLE:
    METHOD_CONFIGS.add(_name, _config, _description)


def method_config(name: str, params: dict[str, Any] | None = None) -> MethodConfig:
    """The typed config of method ``name`` from a dict of overrides (unknown keys are errors)."""
    return build_dataclass(METHOD_CONFIGS.get(name), params or {}, prefix="method")


def resolve_method_section(section: dict[str, Any]) -> dict[str, Any]:
    """A config's ``method:`` mapping -> ``{"name": ..., every field with its value}``.

    Unknown methods, unknown fields, badly typed values and out-of-range values are one-line
    :class:`StarftError` s naming the field. The result is what a run saves and trains with.
    """
    if not isinstance(section, dict):
        raise StarftError(f"method: expected a mapping, got {section!r}")
    if "name" not in section:
        raise StarftError("method.name is required (see `starft ls methods`)")
    name = section["name"]
    if not isinstance(name, str):
        raise StarftError(f"method.name: expected a string, got {name!r}")
    params = {key: value for key, value in section.items() if key != "name"}
    config = method_config(name, params)
    return {"name": name, **config_values(config)}

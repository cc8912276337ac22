"""Every method's hyper-parameters as typed dataclasses, and the one table of method names.

This module imports neither torch nor any model code, so a config file's ``method:`` section is
checked in a fraction of a second when the config is loaded (a misspelt field or a bad choice
stops ``starft train`` before any model loads), and ``starft ls methods NAME`` answers at once.
Choice fields are ``Literal`` types: the config loader (:func:`starft.config.build_dataclass`)
accepts only the listed values, and constructing a config in Python checks them too. Each field
carries a one-line help text (``Annotated[type, help]``), which ``starft ls methods NAME`` prints.

:data:`METHOD_TABLE` is the single list of methods: :mod:`starft.methods` builds its registry of
method classes from it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from starft.config import build_dataclass, check_field_types
from starft.errors import StarftError
from starft.registry import Registry

TemplateMode = Literal["random", "fixed"]
Suffix = Literal["spurious", "random", "none"]
Decay = Literal["auto", "epoch", "step", "none"]
RelevanceMethod = Literal["auto", "rollout", "gradcam"]
RelevanceTarget = Literal["label", "pred"]
RelevanceBase = Literal["none", "flyp"]
MaskSource = Literal["mask", "parts"]
RegionMethod = Literal["crop", "fast", "auto"]
GroupSource = Literal["dataset", "discovery"]

DEFAULT_L2_GRID = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def option(default: Any, help: str) -> Any:
    """A dataclass field with a default and its one-line help text."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help}
        )
    return dataclasses.field(default=default, metadata={"help": help})


def _at_least(config: Any, name: str, low: float, *, strict: bool = False) -> None:
    value = getattr(config, name)
    if value < low or (strict and value == low) or not math.isfinite(value):
        relation = ">" if strict else ">="
        raise StarftError(f"method.{name} must be {relation} {low:g}, got {value}")


def _within(config: Any, name: str, low: float, high: float, *, open_high: bool = False) -> None:
    value = getattr(config, name)
    if not (low <= value <= high) or (open_high and value == high):
        bracket = ")" if open_high else "]"
        raise StarftError(f"method.{name} must be in [{low:g}, {high:g}{bracket}, got {value}")


@dataclass
class MethodConfig:
    """Base of every method's hyper-parameter dataclass.

    ``__post_init__`` checks every field against its type (choices included), so a config built
    in Python is held to the same rules as one read from YAML; subclasses add range checks.
    """

    def __post_init__(self) -> None:
        check_field_types(self, prefix="method")


# -- contrastive methods ------------------------------------------------------------------------
@dataclass
class FLYPConfig(MethodConfig):
    """FLYP: contrastive fine-tuning of both towers on class-name captions."""

    template_mode: Annotated[
        TemplateMode,
        "random: a template per sample (FLYP); fixed: always template_index",
    ] = "random"
    template_index: Annotated[int, "the template used when template_mode=fixed"] = 0
    dataset_captions: Annotated[
        bool,
        "train on the dataset's own caption column instead of templates",
    ] = False
    clamp_logit_scale: Annotated[
        bool, "clamp the logit scale to [0, ln 100] after every step (the releases never clamp)"
    ] = True
    freeze_text: Annotated[
        bool,
        "keep the text tower fixed; train the image tower and the scale against it (locked text)",
    ] = False


@dataclass
class FeatureDistillConfig(FLYPConfig):
    """FLYP + cosine distillation of the image features from a frozen image teacher."""

    teacher: Annotated[
        str,
        "the frozen image teacher: a model name or folder with the same embedding size and "
        "preprocessing; empty: the zero-shot start of the model being trained",
    ] = ""
    distill_weight: Annotated[float, "weight of the distillation term mean(1 - cos)"] = 1.0
    class_distill_weight: Annotated[
        float,
        "weight of KL(teacher || student) between the zero-shot class distributions over the "
        "task's class prompts (needs freeze_text: the class heads are built once)",
    ] = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "distill_weight", 0.0)
        _at_least(self, "class_distill_weight", 0.0)
        if self.class_distill_weight > 0 and not self.freeze_text:
            raise StarftError(
                "method.class_distill_weight > 0 needs method.freeze_text=true (the student's "
                "class head is built once from its frozen text tower)"
            )


@dataclass
class RaVLConfig(FLYPConfig):
    """RaVL stage 2: FLYP + region_weight·(L_R + L_A), discovered regions only as negatives."""

    discovery: Annotated[
        str,
        "discovery.json (or its folder) from `starft discover` on the model being fine-tuned; "
        "empty: no region is spurious",
    ] = ""
    region_weight: Annotated[
        float, "weight of L_R + L_A added to the contrastive loss (choose on validation)"
    ] = 1.0
    temperature: Annotated[float, "τ of the region-aware loss (RaVL: 0.07)"] = 0.07
    regions: Annotated[
        str, "training regions: grid:K (the K x K cells) or boxes (the samples' boxes field)"
    ] = "grid:2"
    region_method: Annotated[
        RegionMethod, "how the trained model embeds regions (model.region_features)"
    ] = "crop"

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "region_weight", 0.0)
        _at_least(self, "temperature", 0.0, strict=True)


@dataclass
class GroupDROConfig(FLYPConfig):
    """VL-GDRO: group DRO (Sagawa et al.) over class x feature groups, contrastive loss."""

    step_size: Annotated[
        float, "η of the online group weights q_g <- q_g·exp(η·L_g), renormalised (paper: 0.01)"
    ] = 0.01
    groups: Annotated[
        GroupSource,
        "dataset: the samples' group ids (class x marker in the marker tasks); "
        "discovery: class x (has a region in a discovered cluster)",
    ] = "dataset"
    discovery: Annotated[str, "discovery.json for groups=discovery"] = ""
    regions: Annotated[str, "regions for groups=discovery: grid:K or boxes"] = "grid:2"

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "step_size", 0.0)
        _check_group_source(self)


def _check_group_source(config: Any) -> None:
    if config.groups == "discovery" and not config.discovery:
        raise StarftError("method.groups=discovery needs method.discovery (a discovery.json)")


@dataclass
class StarFTConfig(FLYPConfig):
    """StarFT: FLYP + λ·KL to the zero-shot model on spuriosity-injected captions."""

    template_mode: Annotated[
        TemplateMode,
        "fixed (as released): one caption per class; random: a template per sample",
    ] = "fixed"
    lambda_star: Annotated[float, "weight λ of the Star term (paper: 0.5)"] = 0.5
    pool: Annotated[
        str,
        "descriptor pool: background|texture|resolution|all|sandbox_* or a JSON file",
    ] = "background"
    suffix: Annotated[
        Suffix, "spurious: pool descriptors; random: random-token suffixes; none: clean"
    ] = "spurious"
    mask_same_class: Annotated[
        bool,
        "drop same-class pairs from both softmaxes",
    ] = True
    decay: Annotated[
        Decay,
        "λ schedule: epoch λ(1-(e+1)/E) as released; step λ(1-(t+1)/T); none; "
        "auto: epoch when the run has E >= 2 epochs, else step",
    ] = "auto"
    teacher_text_cache: Annotated[
        bool,
        "embed each distinct spurious caption once with the frozen teacher (exact)",
    ] = True
    random_suffix_words: Annotated[int, "words per random-token suffix (suffix=random)"] = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "lambda_star", 0.0)
        _at_least(self, "random_suffix_words", 1)


@dataclass
class CaRotConfig(FLYPConfig):
    """CaRot: FLYP + orthogonal visual projection + EMA self-distillation (README defaults)."""

    lambda_oc: Annotated[
        float,
        "weight of ‖W_vᵀW_v − I‖_F on the visual projection",
    ] = 0.2
    lambda_sd: Annotated[float, "weight of the EMA self-distillation term (0: no teacher)"] = 1.5
    lambda_cross: Annotated[
        float,
        "weight of ‖W_v W_tᵀ‖_F (release --cross_fnorm; README command: 0.05)",
    ] = 0.0
    ema_every_steps: Annotated[int, "update the EMA teacher every k optimiser steps (0: never)"] = (
        500
    )
    ema_momentum: Annotated[
        float,
        "final EMA momentum m",
    ] = 0.9
    ema_momentum_start: Annotated[float, "EMA momentum at step 0"] = 0.05
    ema_warmup_fraction: Annotated[
        float,
        "share of the steps over which the momentum rises to ema_momentum",
    ] = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lambda_oc", "lambda_sd", "lambda_cross", "ema_every_steps"):
            _at_least(self, name, 0)
        for name in ("ema_momentum", "ema_momentum_start", "ema_warmup_fraction"):
            _within(self, name, 0.0, 1.0)


@dataclass
class RobustViTConfig(FLYPConfig):
    """RobustViT: align relevance maps with foreground masks (MSE terms), released defaults.

    The FLYP fields (templates, captions, logit-scale clamp, freeze_text) apply with base=flyp.
    """

    lambda_align: Annotated[float, "weight of the alignment loss, base=none (released 0.8)"] = 0.8
    lambda_acc: Annotated[float, "weight of CE(z/T, argmax z), base=none (released 0.2)"] = 0.2
    lambda_background: Annotated[
        float, "weight of the term outside the mask, R⊙(1−M) -> 0 (released 2)"
    ] = 2.0
    lambda_foreground: Annotated[
        float, "weight of the term inside the mask, R⊙M -> M (released 0.3)"
    ] = 0.3
    temperature: Annotated[float, "T of the confidence term CE(z/T, argmax z)"] = 1.0
    target: Annotated[
        RelevanceTarget, "class whose zero-shot logit is explained: label (released) or pred"
    ] = "label"
    relevance: Annotated[RelevanceMethod, "auto: attention rollout for ViTs, Grad-CAM for CNNs"] = (
        "auto"
    )
    stage: Annotated[int | None, "Grad-CAM stage (None: last with a grid >= 7x7)"] = None
    create_graph: Annotated[
        bool, "differentiate through the gradient factor too (the releases keep it constant)"
    ] = False
    base: Annotated[
        RelevanceBase,
        "none: the released loss, image tower only; flyp: FLYP + regularizer_weight·alignment",
    ] = "none"
    regularizer_weight: Annotated[float, "weight of the alignment term on top of FLYP"] = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (
            "lambda_align",
            "lambda_acc",
            "lambda_background",
            "lambda_foreground",
            "regularizer_weight",
        ):
            _at_least(self, name, 0.0)
        _at_least(self, "temperature", 0.0, strict=True)


@dataclass
class CFTConfig(RobustViTConfig):
    """CFT: align relevance maps with (weighted) concept masks (BCE terms), released defaults."""

    lambda_background: Annotated[
        float, "weight of the context term, R⊙(1−M) -> 0 (released lambda_ctx 1.2)"
    ] = 1.2
    lambda_foreground: Annotated[
        float, "weight of the concept term, R⊙M -> M (released lambda_concept 0.5)"
    ] = 0.5
    masks: Annotated[
        MaskSource, "mask: the sample's mask; parts: max_p(w_p·part_p) / max_p w_p"
    ] = "mask"


# -- cross-entropy methods ----------------------------------------------------------------------
@dataclass
class FTConfig(MethodConfig):
    """FT: image tower + zero-shot-initialised linear head, cross-entropy."""

    label_smoothing: Annotated[
        float,
        "cross-entropy label smoothing in [0, 1)",
    ] = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _within(self, "label_smoothing", 0.0, 1.0, open_high=True)


@dataclass
class UpsampledFTConfig(FTConfig):
    """Upsampled FT: FT with each group's loss weighted by its inverse training frequency."""

    groups: Annotated[
        GroupSource,
        "dataset: the samples' group ids (class x marker in the marker tasks); "
        "discovery: class x (has a region in a discovered cluster)",
    ] = "dataset"
    discovery: Annotated[str, "discovery.json for groups=discovery"] = ""
    regions: Annotated[str, "regions for groups=discovery: grid:K or boxes"] = "grid:2"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_group_source(self)


@dataclass
class CarFTConfig(FTConfig):
    """CAR-FT: FT + KL to the zero-shot model's distribution over template contexts."""

    beta: Annotated[
        float,
        "weight β of the context KL",
    ] = 1.0
    context_templates: Annotated[
        str | None, "template set or file whose templates are the contexts (default: training ones)"
    ] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "beta", 0.0)


@dataclass
class LipsumConfig(FTConfig):
    """Lipsum-FT: FT + the zero-shot model's energies on random texts (release defaults)."""

    lambda_lipsum: Annotated[
        float,
        "weight λ of the energy-gap term",
    ] = 1.0
    num_texts: Annotated[int, "K random texts per step"] = 80
    text_length: Annotated[
        int,
        "L random tokens per text",
    ] = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "lambda_lipsum", 0.0)
        _at_least(self, "num_texts", 1)
        _at_least(self, "text_length", 1)


@dataclass
class LPConfig(FTConfig):
    """LP / LP-FT: L-BFGS logistic regression on frozen features (label_smoothing applies)."""

    l2: Annotated[
        float | None,
        "fixed L2 strength (skips the choice on validation)",
    ] = None
    l2_grid: Annotated[
        list[float], "L2 candidates, chosen by validation accuracy when l2 is unset"
    ] = field(default_factory=lambda: list(DEFAULT_L2_GRID))
    val_fraction: Annotated[
        float,
        "held-out share of the training set when the run has no data.val",
    ] = 0.1
    max_iter: Annotated[int, "L-BFGS iteration cap per fit"] = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        values = self.l2_grid if self.l2 is None else [self.l2]
        name = "method.l2_grid" if self.l2 is None else "method.l2"
        if not values:
            raise StarftError(f"{name} is empty")
        for value in values:
            if not (math.isfinite(value) and value >= 0):
                raise StarftError(f"{name}: every value must be a finite number >= 0, got {value}")
        _within(self, "val_fraction", 0.0, 1.0, open_high=True)
        _at_least(self, "max_iter", 1)


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


def config_values(config: MethodConfig) -> dict[str, Any]:
    """Every field of a method config as plain values (lists copied)."""
    return {
        f.name: list(value) if isinstance(value := getattr(config, f.name), list) else value
        for f in dataclasses.fields(config)
    }


def describe_fields(config_cls: type[MethodConfig]) -> list[tuple[str, str, str, str]]:
    """``(field, type, default, help)`` rows for ``starft ls methods NAME``."""
    hints = typing.get_type_hints(config_cls)
    annotated = typing.get_type_hints(config_cls, include_extras=True)
    rows = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # pragma: no cover - every method field has a default
            default = "(required)"
        extras = getattr(annotated[f.name], "__metadata__", ())
        help_text = next((x for x in extras if isinstance(x, str)), "")
        rows.append((f.name, type_name(hints[f.name]), repr(default), help_text))
    return rows


def type_name(tp: Any) -> str:
    """A short readable type: ``float``, ``str | None``, ``epoch|step|none``, ``list[float]``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(str(arg) for arg in typing.get_args(tp))
    if origin is not None and typing.get_args(tp):
        args = typing.get_args(tp)
        if origin in (list, dict):
            return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
        return " | ".join(type_name(a) for a in args)
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))

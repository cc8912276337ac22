"""Configs of the contrastive methods: FLYP and the methods built on its loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

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
    _at_least,
    _check_group_source,
    _within,
)


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

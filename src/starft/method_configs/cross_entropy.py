"""Configs of the cross-entropy methods: FT (image tower + linear head) and its variants."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated

from starft.errors import StarftError
from starft.method_configs.base import (
    GroupSource,
    MethodConfig,
    _at_least,
    _check_group_source,
    _within,
)

DEFAULT_L2_GRID = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


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

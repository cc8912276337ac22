"""The machinery every method config shares: choice types, range checks, the base dataclass.

Also what reads a config back out (:func:`config_values`) and describes its fields for
``starft ls methods NAME`` (:func:`describe_fields`). Imports no torch (see
:mod:`starft.method_configs`).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

from starft.config import check_field_types
from starft.errors import StarftError

TemplateMode = Literal["random", "fixed"]
Suffix = Literal["spurious", "random", "none"]
Decay = Literal["auto", "epoch", "step", "none"]
RelevanceMethod = Literal["auto", "rollout", "gradcam"]
RelevanceTarget = Literal["label", "pred"]
RelevanceBase = Literal["none", "flyp"]
MaskSource = Literal["mask", "parts"]
RegionMethod = Literal["crop", "fast", "auto"]
GroupSource = Literal["dataset", "discovery"]


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


def _check_group_source(config: Any) -> None:
    if config.groups == "discovery" and not config.discovery:
        raise StarftError("method.groups=discovery needs method.discovery (a discovery.json)")


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

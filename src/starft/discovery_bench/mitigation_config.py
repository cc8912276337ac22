"""The configuration of ``starft mitigate-bench``: read, checked, before any rendering or training.

The defaults are data (``resources/discovery/mitigation.yaml``, or a user file of the same shape);
dotted ``key=value`` overrides change any key. A misspelt key, an unknown method or marker kind,
a Cramér's V outside (0, 1] fails in one line naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from starft.config import TrainConfig, apply_overrides, build_dataclass, load_yaml
from starft.discovery.clustering import parse_k_range
from starft.discovery.inputs import parse_regions
from starft.discovery.zeroshot import SCORINGS
from starft.errors import StarftError
from starft.eval.regions import MITIGATION_METRICS
from starft.models.protocol import REGION_METHODS
from starft.sandbox.markers import marker_kinds
from starft.sandbox.world import vocabulary

PACKAGED = "mitigation.yaml"
#: The methods of RaVL's mitigation table (ft = standard FT, flyp = VL-ERM).
MITIGATION_METHODS = ("ft", "upsampled_ft", "flyp", "vl_gdro", "ravl")
#: Methods whose groups come from ``groups`` (dataset: the marker annotation; or discovery).
GROUP_METHODS = ("upsampled_ft", "vl_gdro")
GROUP_SOURCES = ("dataset", "discovery")


@dataclass
class MarkerSetting:
    spurious: str = "star"
    cramers_v: float = 0.9
    kind: str = "plus"


@dataclass
class Stage1Spec:
    method: str = "flyp"
    seed: int = 0


@dataclass
class DrawSpec:
    n: int = 300
    seed: int = 51


@dataclass
class MitigationConfig:
    """Everything ``starft mitigate-bench`` runs: the stage-1 model, discovery, the methods."""

    model: str = "sandbox-clip"
    setting: MarkerSetting = field(default_factory=MarkerSetting)
    stage1: Stage1Spec = field(default_factory=Stage1Spec)
    train: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: list(MITIGATION_METHODS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    method_configs: dict[str, Any] = field(default_factory=dict)
    groups: str = "dataset"
    region_weights: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0])
    select_seed: int = 0
    select_by: str = "image_worst_group"
    val: DrawSpec = field(default_factory=DrawSpec)
    test: DrawSpec = field(default_factory=lambda: DrawSpec(500, 52))
    regions: str = "grid:4"
    region_method: str = "crop"
    scoring: str = "model"
    k_range: str | None = None
    discovery_seed: int = 0
    eval_region_method: str = "crop"


def _read(path: str | Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        text = (resources.files("starft") / "resources" / "discovery" / PACKAGED).read_text(
            encoding="utf-8"
        )
        return yaml.safe_load(text) or {}, f"starft/resources/discovery/{PACKAGED}"
    return load_yaml(path), str(path)


def load_mitigation_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> MitigationConfig:
    """The config file ``path`` (the packaged defaults when None) with dotted ``key=value``
    overrides, checked."""
    data, where = _read(path)
    data = apply_overrides(data, list(overrides or []))
    config = build_dataclass(MitigationConfig, data, prefix=where)
    check_mitigation_config(config, where)
    return config


def _unique(values: list[Any], name: str, where: str) -> None:
    if not values:
        raise StarftError(f"{where}: '{name}' is empty")
    if len(set(values)) != len(values):
        raise StarftError(f"{where}: '{name}' lists a value twice: {values}")


def check_mitigation_config(config: MitigationConfig, where: str = "mitigate-bench") -> None:
    """Every field known and in range: one error naming the field."""
    _unique(config.methods, "methods", where)
    _unique(config.seeds, "seeds", where)
    _unique(config.region_weights, "region_weights", where)
    setting = config.setting
    for value, known, what in (
        (setting.spurious, vocabulary("shape"), "setting.spurious"),
        (setting.kind, marker_kinds(), "setting.kind"),
        (config.stage1.method, ("flyp",), "stage1.method"),
        (config.groups, GROUP_SOURCES, "groups"),
        (config.select_by, tuple(MITIGATION_METRICS), "select_by"),
        (config.region_method, REGION_METHODS, "region_method"),
        (config.eval_region_method, REGION_METHODS, "eval_region_method"),
        (config.scoring, SCORINGS, "scoring"),
        *((m, MITIGATION_METHODS, "methods") for m in config.methods),
    ):
        if value not in known:
            raise StarftError(f"{where}: {what}: unknown '{value}' (known: {', '.join(known)})")
    if not 0.0 < setting.cramers_v <= 1.0:
        raise StarftError(f"{where}: setting.cramers_v {setting.cramers_v} is outside (0, 1]")
    if any(w < 0 for w in config.region_weights):
        raise StarftError(f"{where}: region_weights must be >= 0, got {config.region_weights}")
    if any(s < 0 for s in [*config.seeds, config.select_seed, config.stage1.seed]):
        raise StarftError(f"{where}: seeds must be >= 0")
    if parse_regions(config.regions) == "boxes":
        raise StarftError(
            f"{where}: regions must be grid:K (discovery's influence needs several regions per "
            "image)"
        )
    try:
        parse_k_range(config.k_range)
    except StarftError as err:
        raise StarftError(f"{where}: k_range: {err}") from None
    for name in ("val", "test"):
        if getattr(config, name).n < 2:
            raise StarftError(f"{where}: {name}.n must be >= 2, got {getattr(config, name).n}")
    if config.val.seed == config.test.seed:
        raise StarftError(
            f"{where}: val.seed and test.seed are both {config.val.seed}: the test draw must be "
            "independent of the one discovery and the region_weight choice used"
        )
    unknown = set(config.method_configs) - set(MITIGATION_METHODS)
    if unknown:
        raise StarftError(
            f"{where}: method_configs: unknown method '{sorted(unknown)[0]}' "
            f"(known: {', '.join(MITIGATION_METHODS)})"
        )
    for method, options in config.method_configs.items():
        if not isinstance(options or {}, dict):
            raise StarftError(f"{where}: method_configs.{method} must be a mapping")
        owned = {"discovery", "groups", "region_weight"} & set(options or {})
        if owned:
            raise StarftError(
                f"{where}: method_configs.{method}.{sorted(owned)[0]} is set by the bench "
                "(discovery: its own discovery.json; groups: the `groups` key; region_weight: "
                "the `region_weights` grid)"
            )
    for reserved in ("model", "method", "out_dir", "seed"):
        if reserved in config.train:
            raise StarftError(
                f"{where}: train.{reserved} is set per run; use the config's own keys instead"
            )
    if "dataset" in (config.train.get("data") or {}):
        raise StarftError(f"{where}: train.data.dataset is always sandbox_markers")
    build_dataclass(TrainConfig, config.train, prefix=f"{where} train")

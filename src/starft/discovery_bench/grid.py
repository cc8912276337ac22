"""The settings grids of ``starft discover-bench``: read, checked, expanded into settings.

Grids are data (``resources/discovery/bench_grids.yaml``, or a user file of the same shape): a
``defaults`` mapping and named grids under ``grids``, each overriding any default (mappings are
merged key by key). Everything is checked here, before any rendering or training, so a misspelt
key or an unknown marker kind fails in one line.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from starft.config import TrainConfig, apply_overrides, build_dataclass, load_yaml
from starft.discovery.clustering import parse_k_range
from starft.discovery.inputs import parse_regions
from starft.discovery.zeroshot import SCORINGS
from starft.discovery_bench.rankings import RANKING_NAMES
from starft.errors import StarftError
from starft.models.protocol import REGION_METHODS
from starft.sandbox.markers import marker_kinds
from starft.sandbox.world import vocabulary

PACKAGED = "bench_grids.yaml"


@dataclass
class EvalSpec:
    n: int = 300
    seed: int = 51


@dataclass
class BenchGrid:
    """One grid: its axes (classes x V x kinds x methods) and how each setting is run and scored."""

    name: str = "custom"
    classes: list[str] = field(default_factory=lambda: ["star"])
    cramers_v: list[float] = field(default_factory=lambda: [0.9])
    kinds: list[str] = field(default_factory=lambda: ["plus"])
    model: str = "sandbox-clip"
    methods: list[str] = field(default_factory=lambda: ["flyp", "ft"])
    method_configs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    eval: EvalSpec = field(default_factory=EvalSpec)
    regions: str = "grid:4"
    region_method: str = "crop"
    scoring: str = "model"
    k_range: str | None = None
    discovery_seed: int = 0
    min_marker_gap: float = 0.05
    min_coverage: float = 0.5
    rankings: list[str] = field(default_factory=lambda: list(RANKING_NAMES))
    ks: list[int] = field(default_factory=lambda: [10, 25])
    bootstrap_resamples: int = 2000
    seed: int = 0

    def settings(self) -> list[Setting]:
        """Every class x V x kind x method, in that nesting order."""
        return [
            Setting(c, v, k, m)
            for c, v, k, m in itertools.product(
                self.classes, self.cramers_v, self.kinds, self.methods
            )
        ]


@dataclass(frozen=True)
class Setting:
    spurious: str
    cramers_v: float
    kind: str
    method: str

    @property
    def key(self) -> str:
        """A folder-safe id, e.g. ``star-V0.9-plus-flyp``."""
        return f"{self.spurious}-V{self.cramers_v:g}-{self.kind}-{self.method}"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_grids(path: str | Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        text = (resources.files("starft") / "resources" / "discovery" / PACKAGED).read_text(
            encoding="utf-8"
        )
        return yaml.safe_load(text), f"starft/resources/discovery/{PACKAGED}"
    return load_yaml(path), str(path)


def grid_names(path: str | Path | None = None) -> list[str]:
    """The grids a grid file defines (the packaged one by default)."""
    data, _ = _read_grids(path)
    return list((data.get("grids") or {}).keys())


def load_grid(
    name: str, path: str | Path | None = None, overrides: list[str] | None = None
) -> BenchGrid:
    """Grid ``name`` of the grid file ``path`` (the packaged ``quick`` / ``full`` by default),
    with dotted ``key=value`` overrides (``train.optim.epochs=1``), checked."""
    data, where = _read_grids(path)
    grids = data.get("grids")
    if not isinstance(grids, dict) or not grids:
        raise StarftError(f"grid file {where}: needs a 'grids' mapping of named grids")
    unknown = set(data) - {"defaults", "grids"}
    if unknown:
        raise StarftError(f"grid file {where}: unknown top-level key '{sorted(unknown)[0]}'")
    if name not in grids:
        raise StarftError(f"grid file {where}: no grid '{name}' (known: {', '.join(grids)})")
    merged = _merge(data.get("defaults") or {}, grids[name] or {})
    merged = apply_overrides(merged, list(overrides or []))
    grid = build_dataclass(BenchGrid, {**merged, "name": name}, prefix=f"{where} grid '{name}'")
    check_grid(grid, f"{where} grid '{name}'")
    return grid


def check_grid(grid: BenchGrid, where: str = "bench grid") -> None:
    """Every axis non-empty and known, every option in range: one error naming the field."""
    for axis in ("classes", "cramers_v", "kinds", "methods", "rankings", "ks"):
        if not getattr(grid, axis):
            raise StarftError(f"{where}: '{axis}' is empty")
        values = getattr(grid, axis)
        if len(set(values)) != len(values):
            raise StarftError(f"{where}: '{axis}' lists a value twice: {values}")
    shapes = vocabulary("shape")
    for value, known, what in (
        *((c, shapes, "classes") for c in grid.classes),
        *((k, marker_kinds(), "kinds") for k in grid.kinds),
        *((r, RANKING_NAMES, "rankings") for r in grid.rankings),
        (grid.region_method, REGION_METHODS, "region_method"),
        (grid.scoring, SCORINGS, "scoring"),
    ):
        if value not in known:
            raise StarftError(f"{where}: {what}: unknown '{value}' (known: {', '.join(known)})")
    if "ravl" not in grid.rankings:
        raise StarftError(f"{where}: rankings must include 'ravl' (the method measured)")
    for v in grid.cramers_v:
        if not 0.0 < v <= 1.0:
            raise StarftError(f"{where}: cramers_v {v} is outside (0, 1]")
    if parse_regions(grid.regions) == "boxes":
        raise StarftError(
            f"{where}: regions must be grid:K: the marker's box is the ground truth, and "
            "discovery's influence needs several regions per image"
        )
    try:
        parse_k_range(grid.k_range)
    except StarftError as err:
        raise StarftError(f"{where}: k_range: {err}") from None
    if not 0.0 < grid.min_coverage <= 1.0:
        raise StarftError(f"{where}: min_coverage must lie in (0, 1], got {grid.min_coverage}")
    if not -1.0 <= grid.min_marker_gap <= 1.0:
        raise StarftError(f"{where}: min_marker_gap must lie in [-1, 1], got {grid.min_marker_gap}")
    if any(k < 1 for k in grid.ks):
        raise StarftError(f"{where}: ks must be >= 1, got {grid.ks}")
    if grid.eval.n < 2 or grid.bootstrap_resamples < 1:
        raise StarftError(f"{where}: eval.n must be >= 2 and bootstrap_resamples >= 1")
    for reserved in ("model", "method", "out_dir", "seed"):
        if reserved in grid.train:
            raise StarftError(
                f"{where}: train.{reserved} is set per setting; use the grid's own key instead"
            )
    if "dataset" in (grid.train.get("data") or {}):
        raise StarftError(
            f"{where}: train.data.dataset is always sandbox_markers (the setting's marker task)"
        )
    # The shared training fields must form a valid TrainConfig on their own.
    build_dataclass(TrainConfig, grid.train, prefix=f"{where} train")

"""``starft mitigate-bench``: RaVL's mitigation table on one sandbox marker setting.

1. Stage 1: fine-tune the model (``stage1.method``, FLYP by default) on ``sandbox_markers`` where
   the marker goes with one class at the setting's Cramér's V.
2. Discovery on that model, on a validation draw of ``sandbox_markers_eval`` (as in
   ``starft discover-bench``), written as ``discovery/discovery.json``.
3. Every mitigation method (ft, upsampled_ft, flyp = VL-ERM, vl_gdro, ravl) fine-tunes the
   stage-1 model for every seed; ravl's frozen copy is therefore the model discovery ran on.
   ravl's ``region_weight`` is chosen first on the validation draw (one run per weight, seed
   ``select_seed``, best image worst-group accuracy).
4. Every run's final weights are scored with :func:`starft.eval.regions.mitigation_metrics` on the
   validation and on the test draw; the table reports the test draw.

Every record (``stage1/record.json``, ``discovery/record.json``, ``runs/<run>/record.json``)
holds the key it was made with; ``resume`` reuses a record whose key is unchanged. A record's key
includes the id of the stage-1 model (and, for runs that read it, of the discovery) it depends
on, so a new stage-1 model invalidates everything made from the old one.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from starft.config import TrainConfig, build_dataclass, resolve_method, to_dict
from starft.data import create_dataset
from starft.discovery.clustering import parse_k_range
from starft.discovery.inputs import compute_discovery_inputs, discover_from_inputs
from starft.discovery.report import JSON_NAME as DISCOVERY_JSON
from starft.discovery.report import write_report
from starft.discovery_bench.mitigation_config import (
    GROUP_METHODS,
    MitigationConfig,
    check_mitigation_config,
)
from starft.discovery_bench.mitigation_report import (
    build_document,
    select_region_weight,
    write_mitigation,
)
from starft.errors import StarftError
from starft.eval.regions import mitigation_metrics
from starft.models import create_model
from starft.models.heads import load_head
from starft.utils.io import atomic_write_json, check_output_dir

TRAIN_DATASET = "sandbox_markers"
EVAL_DATASET = "sandbox_markers_eval"
RECORD_NAME = "record.json"


@dataclass(frozen=True)
class RunSpec:
    """One mitigation fine-tune: a method, a seed and (ravl) a region weight."""

    method: str
    seed: int
    region_weight: float | None = None

    @property
    def key(self) -> str:
        weight = "" if self.region_weight is None else f"-w{self.region_weight:g}"
        return f"{self.method}{weight}-s{self.seed}"


def train_config(
    config: MitigationConfig,
    method: str,
    seed: int,
    model: str,
    run_dir: Path,
    extra: dict[str, Any] | None = None,
) -> TrainConfig:
    """The checked ``TrainConfig`` of one fine-tune on the setting's training set."""
    data = json.loads(json.dumps(config.train))
    data_section = dict(data.get("data") or {})
    train_args = dict(data_section.get("train") or {})
    setting = config.setting
    train_args.update(spurious=setting.spurious, cramers_v=setting.cramers_v, kind=setting.kind)
    data_section.update(dataset=TRAIN_DATASET, train=train_args)
    options = dict(config.method_configs.get(method) or {})
    data.update(
        data=data_section,
        model={"name": model},
        method={"name": method, **options, **(extra or {})},
        out_dir=str(run_dir),
        seed=seed,
        log={"progress": False, "tensorboard": False, **(data.get("log") or {})},
    )
    where = f"mitigate-bench run {run_dir.name}"
    try:
        return resolve_method(build_dataclass(TrainConfig, data, prefix=where))
    except StarftError as err:
        message = str(err)
        raise StarftError(message if message.startswith(where) else f"{where}: {message}") from None


def method_extra(config: MitigationConfig, spec: RunSpec, discovery_file: str) -> dict[str, Any]:
    """The method fields the bench sets: groups, discovery, regions (discovery's grid unless
    ``method_configs`` names others), region_weight."""
    regions = (config.method_configs.get(spec.method) or {}).get("regions", config.regions)
    if spec.method == "ravl":
        weight = spec.region_weight
        return {"discovery": discovery_file, "region_weight": weight, "regions": regions}
    if spec.method in GROUP_METHODS:
        if config.groups == "dataset":
            return {"groups": "dataset"}
        return {"groups": "discovery", "discovery": discovery_file, "regions": regions}
    return {}


def uses_discovery(config: MitigationConfig, method: str) -> bool:
    return method == "ravl" or (method in GROUP_METHODS and config.groups == "discovery")


def run_plan(config: MitigationConfig) -> tuple[list[RunSpec], list[RunSpec]]:
    """The region_weight selection runs and the final runs (a final ravl run with the select
    seed is the selection run of the chosen weight, reused, so it is listed after the choice)."""
    selection = []
    if "ravl" in config.methods:
        selection = [RunSpec("ravl", config.select_seed, w) for w in config.region_weights]
    final = [RunSpec(m, s, None) for m in config.methods if m != "ravl" for s in config.seeds]
    return selection, final


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(to_dict(value)))


def _load_record(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if record.get("key") == key else None


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class _Bench:
    def __init__(
        self,
        config: MitigationConfig,
        out: Path,
        keep_weights: bool,
        resume: bool,
        status: Callable[[str], None] | None,
    ) -> None:
        self.config, self.out, self.keep_weights, self.resume = config, out, keep_weights, resume
        self.status = status or (lambda text: None)
        self.device = _device()
        self.stage1_dir = out / "stage1"
        self.discovery_dir = out / "discovery"
        self.discovery_file = str(self.discovery_dir / DISCOVERY_JSON)
        self.records: dict[str, dict[str, Any]] = {}
        self.seconds: dict[str, float] = {}
        self.eval_spec = _jsonable(
            {"val": config.val, "test": config.test, "method": config.eval_region_method}
        )

    # --- evaluation sets -------------------------------------------------------------------
    def eval_sets(self) -> None:
        pretrained = create_model(self.config.model)
        height, width = pretrained.image_size
        if height != width:
            raise StarftError(f"mitigate-bench: model input {height}x{width} is not square")
        setting = self.config.setting
        self.sets = {
            name: create_dataset(
                EVAL_DATASET,
                n=spec.n,
                seed=spec.seed,
                spurious=setting.spurious,
                kind=setting.kind,
                image_size=int(height),
                fields="mask",
                transform=pretrained.preprocess_val,
            )
            for name, spec in (("val", self.config.val), ("test", self.config.test))
        }

    def evaluate(self, weights: Path) -> dict[str, Any]:
        model = create_model(str(weights))
        loaded = load_head(weights)
        classnames = list(self.sets["test"].classnames)
        if loaded is not None and list(loaded[1]) != classnames:
            raise StarftError(
                f"{weights}: the trained head's classes {loaded[1]} are not the evaluation "
                f"set's {classnames}"
            )
        kwargs: dict[str, Any] = {
            "linear_head": None if loaded is None else loaded[0],
            "method": self.config.eval_region_method,
            "device": self.device,
        }
        return {name: mitigation_metrics(model, data, **kwargs) for name, data in self.sets.items()}

    # --- fine-tuning -----------------------------------------------------------------------
    def fine_tune(self, train: TrainConfig) -> tuple[Path, float]:
        from starft.train import fit

        run_dir = Path(train.out_dir)
        shutil.rmtree(run_dir, ignore_errors=True)  # a rerun starts the run afresh
        tic = time.perf_counter()
        fitted = fit(train)
        seconds = time.perf_counter() - tic
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        return fitted.final_dir, seconds

    def drop_weights(self, run_dir: Path) -> None:
        if not self.keep_weights:  # about 40 MB each; the record keeps what was measured
            for name in ("final", "best"):
                shutil.rmtree(run_dir / name, ignore_errors=True)

    # --- stage 1 ---------------------------------------------------------------------------
    def stage1(self, train: TrainConfig) -> dict[str, Any]:
        key = {"train_config": _jsonable(train), "eval": self.eval_spec}
        path = self.stage1_dir / RECORD_NAME
        final = self.stage1_dir / "final"
        saved = _load_record(path, key) if self.resume else None
        if saved is not None and final.is_dir():
            self.status(f"stage 1: reused {path}")
            return saved
        self.status(f"stage 1: fine-tune {self.config.stage1.method}")
        tic = time.perf_counter()
        weights, train_seconds = self.fine_tune(train)
        metrics = self.evaluate(weights)
        record = {
            "key": key,
            "id": uuid.uuid4().hex,
            "method": self.config.stage1.method,
            "seed": self.config.stage1.seed,
            **metrics,
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - tic,
        }
        atomic_write_json(path, record)
        return record

    # --- discovery -------------------------------------------------------------------------
    def discovery(self, stage1: dict[str, Any]) -> dict[str, Any]:
        c = self.config
        key = _jsonable(
            {
                "stage1": stage1["id"],
                "val": c.val,
                "setting": c.setting,
                "regions": c.regions,
                "region_method": c.region_method,
                "scoring": c.scoring,
                "k_range": c.k_range,
                "discovery_seed": c.discovery_seed,
            }
        )
        path = self.discovery_dir / RECORD_NAME
        saved = _load_record(path, key) if self.resume else None
        if saved is not None and Path(self.discovery_file).is_file():
            self.status(f"discovery: reused {path}")
            return saved
        self.status("discovery")
        tic = time.perf_counter()
        model = create_model(str(self.stage1_dir / "final"))
        loaded = load_head(self.stage1_dir / "final")
        if loaded is not None:
            raise StarftError(
                "mitigate-bench: discovery scores with the zero-shot head; stage1.method must be "
                "a contrastive method (flyp)"
            )
        dataset = self.sets["val"]
        inputs = compute_discovery_inputs(
            model,
            dataset,
            regions=c.regions,
            method=c.region_method,
            scoring=c.scoring,
            device=self.device,
        )
        k_range = parse_k_range(c.k_range)
        result = discover_from_inputs(inputs, k_range=k_range, seed=c.discovery_seed)
        settings = {
            "model": str(self.stage1_dir / "final"),
            "dataset": EVAL_DATASET,
            "dataset_args": _jsonable({"n": c.val.n, "seed": c.val.seed, **vars(c.setting)}),
            "regions": c.regions,
            "region_method": c.region_method,
            "scoring": c.scoring,
            "k_range": c.k_range,
            "seed": c.discovery_seed,
        }
        write_report(
            self.discovery_dir,
            model=model,
            dataset=dataset,
            inputs=inputs,
            result=result,
            names=[],
            config=settings,
        )
        record = {
            "key": key,
            "id": uuid.uuid4().hex,
            "found": result.found,
            "message": result.message,
            "k": result.k,
            "silhouette": None if result.silhouette is None else float(result.silhouette),
            "has_medoids": result.medoids is not None,
            "clusters": [
                {
                    "cluster": int(cl.cluster),
                    "gap": float(cl.gap),
                    "influence": None if cl.influence is None else float(cl.influence),
                    "size": len(cl.regions),
                }
                for cl in result.clusters
            ],
            "file": str(Path("discovery") / DISCOVERY_JSON),
            "seconds": time.perf_counter() - tic,
        }
        atomic_write_json(path, record)
        return record

    # --- mitigation runs -------------------------------------------------------------------
    def run(
        self, spec: RunSpec, train: TrainConfig, depends: dict[str, Any], where: str
    ) -> dict[str, Any]:
        if spec.key in self.records:
            return self.records[spec.key]
        run_dir = Path(train.out_dir)
        key = {"train_config": _jsonable(train), "eval": self.eval_spec, "depends": depends}
        path = run_dir / RECORD_NAME
        saved = _load_record(path, key) if self.resume else None
        if saved is not None:
            self.status(f"{where}: reused {path}")
            self.records[spec.key] = saved
            return saved
        self.status(f"{where}: fine-tune")
        tic = time.perf_counter()
        weights, train_seconds = self.fine_tune(train)
        metrics = self.evaluate(weights)
        self.drop_weights(run_dir)
        record = {
            "key": key,
            "run": spec.key,
            "method": spec.method,
            "seed": spec.seed,
            "region_weight": spec.region_weight,
            **metrics,
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - tic,
        }
        atomic_write_json(path, record)
        self.records[spec.key] = record
        return record


@dataclass
class MitigationRun:
    document: dict[str, Any]
    paths: dict[str, Path]
    seconds: float


def run_mitigation_bench(
    config: MitigationConfig,
    out_dir: str | Path,
    *,
    keep_weights: bool = False,
    resume: bool = False,
    status: Callable[[str], None] | None = None,
    command: str | None = None,
) -> MitigationRun:
    """Stage 1, discovery, the region_weight choice and every mitigation run; writes
    ``mitigation.json`` and ``mitigation.md`` into ``out_dir`` (see the module docstring)."""
    check_mitigation_config(config)
    check_output_dir(out_dir, "mitigate-bench output folder")
    out = Path(out_dir)
    tic = time.perf_counter()
    bench = _Bench(config, out, keep_weights, resume, status)
    start = str(bench.stage1_dir / "final")
    # Every config is built now, so a bad training or method field fails before any rendering.
    stage1_train = train_config(
        config, config.stage1.method, config.stage1.seed, config.model, bench.stage1_dir
    )
    selection_specs, final_specs = run_plan(config)

    def config_for(spec: RunSpec, discovery_file: str) -> TrainConfig:
        extra = method_extra(config, spec, discovery_file)
        return train_config(config, spec.method, spec.seed, start, out / "runs" / spec.key, extra)

    for spec in [*selection_specs, *final_specs]:
        config_for(spec, bench.discovery_file)

    bench.eval_sets()
    record1 = bench.stage1(stage1_train)
    bench.seconds["stage1"] = record1["seconds"]
    discovery = bench.discovery(record1)
    bench.seconds["discovery"] = discovery["seconds"]
    group_discovery = config.groups == "discovery" and set(GROUP_METHODS) & set(config.methods)
    if group_discovery and not discovery["has_medoids"]:
        raise StarftError(
            "mitigate-bench: discovery's clustering was degenerate (no medoids): "
            "groups=discovery cannot be built; use groups=dataset"
        )
    # Without medoids (degenerate clustering) ravl runs with no spurious regions.
    ravl_file = bench.discovery_file if discovery["has_medoids"] else ""

    def depends(spec: RunSpec) -> dict[str, Any]:
        found = {"stage1": record1["id"]}
        if uses_discovery(config, spec.method):
            found["discovery"] = discovery["id"]
        return found

    reused = "ravl" in config.methods and config.select_seed in config.seeds
    total = len(selection_specs) + len(final_specs) + len(config.seeds) * ("ravl" in config.methods)
    total -= int(reused)  # the chosen weight's selection run is that seed's final ravl run
    number = 0
    runs: list[dict[str, Any]] = []
    selection = None
    if selection_specs:
        scores = {}
        for spec in selection_specs:
            number += 1
            record = bench.run(
                spec, config_for(spec, ravl_file), depends(spec), f"{number}/{total} {spec.key}"
            )
            scores[spec.region_weight] = record["val"].get(config.select_by)
        chosen = select_region_weight(scores)
        selection = {
            "select_by": config.select_by,
            "seed": config.select_seed,
            "scores": [{"region_weight": w, "score": s} for w, s in scores.items()],
            "chosen": chosen,
        }
        final_specs = [*final_specs, *(RunSpec("ravl", s, chosen) for s in config.seeds)]
    final_keys = set()
    for spec in final_specs:
        if spec.key not in bench.records:
            number += 1
        file = ravl_file if spec.method == "ravl" else bench.discovery_file
        bench.run(spec, config_for(spec, file), depends(spec), f"{number}/{total} {spec.key}")
        final_keys.add(spec.key)
    for key, record in bench.records.items():
        runs.append({k: v for k, v in record.items() if k != "key"} | {"final": key in final_keys})
    # Seconds each stage took when it ran (a reused record keeps its own).
    selection_keys = {spec.key for spec in selection_specs}
    bench.seconds["region_weight_selection"] = sum(
        bench.records[k]["seconds"] for k in selection_keys
    )
    bench.seconds["mitigation_runs"] = sum(
        bench.records[k]["seconds"] for k in final_keys - selection_keys
    )
    stage1 = {k: v for k, v in record1.items() if k != "key"}
    discovery_out = {k: v for k, v in discovery.items() if k != "key"}
    discovery_out["ravl_spurious_regions"] = bool(discovery["found"] and ravl_file)
    seconds = time.perf_counter() - tic
    bench.seconds["this_invocation"] = seconds
    document = build_document(
        config,
        stage1=stage1,
        discovery=discovery_out,
        selection=selection,
        runs=runs,
        seconds=bench.seconds,
        command=command,
    )
    paths = write_mitigation(out, document)
    return MitigationRun(document, paths, seconds)

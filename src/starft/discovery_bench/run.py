"""``starft discover-bench``: does discovery find the marker a fine-tuned model learned?

For every setting of a grid (:mod:`.bench_grid`: spurious class x Cramér's V x marker kind x
fine-tuning method) the bench

1. fine-tunes the model on ``sandbox_markers`` (the marker goes with the class at that V) with
   :func:`starft.train.fit`, the loop ``starft train`` runs;
2. embeds the grid regions of ``sandbox_markers_eval`` (the marker on half of every class) and
   scores images and regions with the fine-tuned model's own classifier: the zero-shot head of
   its text tower, or the trained linear head of FT;
3. keeps the setting if the model learned the correlation: accuracy on evaluation images whose
   marker agrees with the training correlation (the spurious class with it, the others without)
   minus accuracy where it disagrees is at least ``min_marker_gap``;
4. runs discovery, ranks the regions by RaVL and by the baselines (:mod:`.bench_rankings`) and
   scores every ranking against the marker boxes (:mod:`.bench_metrics`).

Settings that are not kept are still recorded, with their scores, but left out of the summary.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from starft.config import TrainConfig, build_dataclass, resolve_method, to_dict
from starft.data import create_dataset
from starft.discovery.clustering import parse_k_range
from starft.discovery.discover import DiscoveryResult
from starft.discovery.inputs import DiscoveryInputs, compute_discovery_inputs, discover_from_inputs
from starft.discovery_bench.grid import BenchGrid, Setting, check_grid
from starft.discovery_bench.metrics import ranking_metrics, relevant_regions
from starft.discovery_bench.rankings import rank_regions
from starft.discovery_bench.report import summarise_records, write_bench
from starft.errors import StarftError
from starft.methods import METHODS
from starft.models import ClipModel, create_model
from starft.models.heads import load_head
from starft.sandbox.marker_tasks import achieved_cramers_v
from starft.utils.io import atomic_write_json, check_output_dir

EVAL_DATASET = "sandbox_markers_eval"
TRAIN_DATASET = "sandbox_markers"


def train_config(grid: BenchGrid, setting: Setting, model: str, run_dir: Path) -> TrainConfig:
    """The checked fine-tuning config of one setting (the grid's shared ``train`` fields, the
    setting's training set, method and options)."""
    if setting.method not in METHODS:
        raise StarftError(
            f"bench grid '{grid.name}': unknown method '{setting.method}' "
            f"(known: {', '.join(METHODS.names())})"
        )
    data = dict(grid.train)
    data_section = dict(data.get("data") or {})
    train_args = dict(data_section.get("train") or {})
    train_args.update(spurious=setting.spurious, cramers_v=setting.cramers_v, kind=setting.kind)
    data_section.update(dataset=TRAIN_DATASET, train=train_args)
    method = {"name": setting.method, **(grid.method_configs.get(setting.method) or {})}
    data.update(
        data=data_section,
        model={"name": model},
        method=method,
        out_dir=str(run_dir),
        seed=grid.seed,
        log={"progress": False, "tensorboard": False, **(data.get("log") or {})},
    )
    where = f"bench grid '{grid.name}', setting {setting.key}"
    try:
        return resolve_method(build_dataclass(TrainConfig, data, prefix=where))
    except StarftError as err:
        message = str(err)
        raise StarftError(message if message.startswith(where) else f"{where}: {message}") from None


def marker_gap(
    labels: np.ndarray, predictions: np.ndarray, marked: np.ndarray, spurious: int
) -> dict[str, float]:
    """Accuracy where the marker agrees with the training correlation (class ``spurious`` with
    it, the others without) minus accuracy where it disagrees."""
    correct = labels == predictions
    aligned = (labels == spurious) == marked
    if aligned.all() or not aligned.any():
        raise StarftError("marker gap: the evaluation set needs images on both sides")
    agree, disagree = float(correct[aligned].mean()), float(correct[~aligned].mean())
    return {
        "accuracy": float(correct.mean()),
        "acc_agree": agree,
        "acc_disagree": disagree,
        "gap": agree - disagree,
    }


def head_probs(inputs: DiscoveryInputs, head: torch.nn.Linear) -> DiscoveryInputs:
    """Inputs scored by a trained linear head on the normalised embeddings (FT's classifier)."""
    with torch.inference_mode():
        head = head.float().cpu()
        image = torch.softmax(head(inputs.image_embeddings.float()), dim=-1)
        region = torch.softmax(head(inputs.region_embeddings.float()), dim=-1)
    return dataclasses.replace(
        inputs, image_probs=image, region_probs=region, scoring="linear head", scale=1.0
    )


def score_setting(
    grid: BenchGrid,
    setting: Setting,
    model: ClipModel,
    head: torch.nn.Linear | None,
    dataset: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Steps 2-4 for a fine-tuned ``model`` on the evaluation ``dataset``: the setting's record."""
    inputs = compute_discovery_inputs(
        model,
        dataset,
        regions=grid.regions,
        method=grid.region_method,
        scoring=grid.scoring,
        batch_size=batch_size,
        device=device,
    )
    if head is not None:
        inputs = head_probs(inputs, head)
    labels = inputs.image_labels.numpy()
    predictions = inputs.image_probs.argmax(dim=1).numpy()
    images = inputs.image_indices.numpy()
    boxes = np.asarray(dataset.marker_boxes)[images]  # model-input pixels (rendered at its size)
    marked = ~np.isnan(boxes[:, 0])
    spurious = list(dataset.classnames).index(setting.spurious)
    gap = marker_gap(labels, predictions, marked, spurious)
    result = discover_from_inputs(
        inputs, k_range=parse_k_range(grid.k_range), seed=grid.discovery_seed
    )
    region_image = inputs.region_image.numpy()
    relevant = relevant_regions(inputs.region_boxes.numpy(), boxes[region_image], grid.min_coverage)
    if not relevant.any():
        raise StarftError(
            f"setting {setting.key}: no region covers {grid.min_coverage} of a marker box "
            f"with regions {grid.regions}; use a grid whose cells hold the marker"
        )
    scores = {}
    for name in grid.rankings:
        ranking = rank_regions(
            name,
            result=result,
            region_image=region_image,
            image_embeddings=inputs.image_embeddings.numpy(),
            labels=labels,
            predictions=predictions,
            num_classes=inputs.image_probs.shape[1],
            seed=grid.seed,
        )
        scores[name] = {**ranking_metrics(ranking, relevant, grid.ks), "returned": len(ranking)}
    return {
        "setting": dataclasses.asdict(setting),
        "key": setting.key,
        "kept": gap["gap"] >= grid.min_marker_gap,
        "marker": gap,
        "scoring": inputs.scoring,
        "images": len(labels),
        "regions": len(region_image),
        "relevant_regions": int(relevant.sum()),
        "discovery": _discovery_summary(result, relevant),
        "scores": scores,
    }


def _discovery_summary(result: DiscoveryResult, relevant: np.ndarray) -> dict[str, Any]:
    return {
        "message": result.message,
        "k": result.k,
        "silhouette": result.silhouette,
        "clusters": [
            {
                "cluster": c.cluster,
                "gap": c.gap,
                "influence": c.influence,
                "size": len(c.regions),
                "relevant_share": float(relevant[c.regions].mean()),
            }
            for c in result.clusters
        ],
    }


class _EvalSets:
    """Evaluation sets rendered once per (spurious class, marker kind), at the model's input
    size, so marker boxes are in the pixels regions are cut from."""

    def __init__(self, grid: BenchGrid, transform: Callable[..., Any], size: int) -> None:
        self.grid, self.transform, self.size = grid, transform, size
        self.cache: dict[tuple[str, str], Any] = {}

    def get(self, setting: Setting) -> Any:
        key = (setting.spurious, setting.kind)
        if key not in self.cache:
            self.cache[key] = create_dataset(
                EVAL_DATASET,
                n=self.grid.eval.n,
                seed=self.grid.eval.seed,
                spurious=setting.spurious,
                kind=setting.kind,
                image_size=self.size,
                transform=self.transform,
            )
        return self.cache[key]


def _fine_tune(
    config: TrainConfig, keep_weights: bool, classnames: list[str]
) -> tuple[ClipModel, Any, float]:
    from starft.train import fit

    run_dir = Path(config.out_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # a rerun starts the setting afresh
    tic = time.perf_counter()
    fitted = fit(config)
    seconds = time.perf_counter() - tic
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    weights = fitted.best_dir if fitted.best_dir is not None else fitted.final_dir
    model = create_model(str(weights))
    loaded = load_head(weights)
    if loaded is not None and list(loaded[1]) != classnames:
        raise StarftError(
            f"{weights}: the trained head's classes {loaded[1]} are not the evaluation set's "
            f"{classnames}"
        )
    if not keep_weights:  # about 40 MB per setting; the record keeps what was measured
        for folder in (fitted.final_dir, fitted.best_dir):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    return model, None if loaded is None else loaded[0], seconds


RECORD_NAME = "record.json"
# Grid fields that change how a fine-tuned model is scored (the rest only change which settings
# run); a record is reused on resume only when these and its training config are unchanged.
SCORING_FIELDS = (
    "model",
    "eval",
    "regions",
    "region_method",
    "scoring",
    "k_range",
    "discovery_seed",
    "min_marker_gap",
    "min_coverage",
    "rankings",
    "ks",
    "seed",
)


def scoring_config(grid: BenchGrid) -> dict[str, Any]:
    """The grid fields a setting's scores depend on, JSON-ready."""
    return json.loads(json.dumps({f: to_dict(getattr(grid, f)) for f in SCORING_FIELDS}))


def _reusable(path: Path, config: TrainConfig, scoring: dict[str, Any]) -> dict[str, Any] | None:
    """The record saved at ``path`` if it was made with the same training and scoring config."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same_train = record.get("train_config") == json.loads(json.dumps(to_dict(config)))
    return record if same_train and record.get("scoring_config") == scoring else None


def run_settings(
    grid: BenchGrid,
    out_dir: str | Path,
    *,
    keep_weights: bool = False,
    resume: bool = False,
    status: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Fine-tune, discover and score every setting of ``grid``; one record per setting, also
    saved as ``runs/<setting>/record.json``. With ``resume``, a setting whose saved record was
    made with the same training and scoring config is not run again."""
    check_grid(grid, f"bench grid '{grid.name}'")
    out = Path(out_dir)
    settings = grid.settings()
    # Every config is built now, so a bad training field fails before any rendering.
    configs = {s: train_config(grid, s, grid.model, out / "runs" / s.key) for s in settings}
    scoring = scoring_config(grid)
    pretrained = create_model(grid.model)
    height, width = pretrained.image_size
    if height != width:
        raise StarftError(f"discover-bench: model input {height}x{width} is not square")
    eval_sets = _EvalSets(grid, pretrained.preprocess_val, int(height))
    records = []
    for number, setting in enumerate(settings, 1):
        where = f"{number}/{len(settings)} {setting.key}"
        path = out / "runs" / setting.key / RECORD_NAME
        saved = _reusable(path, configs[setting], scoring) if resume else None
        if saved is not None:
            if status is not None:
                status(f"{where}: reused {path}")
            records.append(saved)
            continue
        if status is not None:
            status(f"{where}: fine-tune")
        tic = time.perf_counter()
        dataset = eval_sets.get(setting)
        model, head, train_seconds = _fine_tune(
            configs[setting], keep_weights, list(dataset.classnames)
        )
        if status is not None:
            status(f"{where}: discover")
        record = score_setting(grid, setting, model, head, dataset)
        record["achieved_cramers_v"] = _achieved_v(configs[setting])
        record["train_config"] = to_dict(configs[setting])
        record["scoring_config"] = scoring
        record["train_seconds"] = train_seconds
        record["seconds"] = time.perf_counter() - tic
        atomic_write_json(path, record)
        records.append(record)
    return records


def _achieved_v(config: TrainConfig) -> float:
    """The training table's Cramér's V (recomputed from the same arguments, without rendering)."""
    args = config.data.train
    keys = ("n", "spurious", "cramers_v", "seed")
    return achieved_cramers_v(**{k: args[k] for k in keys if k in args})


@dataclass
class BenchRun:
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    paths: dict[str, Path]
    seconds: float


def run_bench(
    grid: BenchGrid,
    out_dir: str | Path,
    *,
    keep_weights: bool = False,
    resume: bool = False,
    status: Callable[[str], None] | None = None,
    command: str | None = None,
) -> BenchRun:
    """Run every setting of ``grid`` and write ``bench.json`` and ``bench.md`` into ``out_dir``
    (fine-tuning runs go to ``out_dir/runs/<setting>``; their weights are removed unless
    ``keep_weights``; ``resume`` reuses the settings already scored with the same configs)."""
    check_output_dir(out_dir, "discover-bench output folder")
    tic = time.perf_counter()
    records = run_settings(grid, out_dir, keep_weights=keep_weights, resume=resume, status=status)
    seconds = time.perf_counter() - tic
    paths = write_bench(out_dir, grid, records, seconds=seconds, command=command)
    return BenchRun(records, summarise_records(grid, records), paths, seconds)

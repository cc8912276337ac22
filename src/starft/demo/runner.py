"""``run_demo``: zero-shot, FT, FLYP and StarFT on the sandbox task, evaluated on every axis.

For each seed and fine-tuning method the runner trains with :func:`starft.train.fit` (the same
loop as ``starft train``), reloads the best-on-validation weights from disk (so it evaluates
exactly what a user would load) and evaluates them on every evaluation set of the recipe. The
zero-shot model does not depend on the training seed, so it is evaluated once.

Run folder::

    runs/<method>-seed<k>/          fit()'s run folder: config.yaml, metrics.jsonl, best/ (the
                                    evaluated weights; final/ and checkpoints/ are removed)
        results/*.json              one result JSON per evaluation set (and fit()'s val result)
    runs/zeroshot/results/*.json    the pretrained model's results
    report.md  summary.json  group_accuracy.png  id_vs_ood.png
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from starft.config import TrainConfig, to_dict
from starft.data import ClassificationDataset
from starft.demo.recipe import ZEROSHOT, DemoRecipe, load_recipe
from starft.demo.report import write_report
from starft.errors import StarftError
from starft.eval import load_result
from starft.eval.harness import (
    ModelSubject,
    build_entry_dataset,
    evaluate_entries,
    write_entry_results,
)
from starft.methods import METHODS, method_config
from starft.models import MODELS, ClipModel, create_model
from starft.models.heads import load_head
from starft.report.runs import RunRecord, run_record
from starft.train.distributed import resolve_autocast, resolve_device
from starft.utils.distributed import DistInfo

DEFAULT_MODEL = "sandbox-clip"


@dataclass
class GroupInfo:
    """Names of the group-shift set's groups and which of them are minority groups."""

    names: list[str]
    minority: list[str]
    scene_of: dict[str, str] = field(default_factory=dict)


@dataclass
class DemoResult:
    """Everything a report needs: what ran, every record, and the files written."""

    out_dir: Path
    model: str
    methods: list[str]
    seeds: list[int]
    quick: bool
    recipe: DemoRecipe
    records: list[RunRecord]
    groups: GroupInfo
    num_classes: int = 0  # of the ID task, for chance level
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)


def resolve_demo_model(name: str | None) -> str:
    """The model to fine-tune: ``name`` if given, else the shipped ``sandbox-clip``.

    ``sandbox-clip`` is only usable once its pretrained checkpoint exists; without it the demo
    would silently fine-tune random weights, which measures nothing, so that is an error.
    """
    if name is not None and name != DEFAULT_MODEL:
        return name
    if DEFAULT_MODEL not in MODELS:
        raise StarftError(
            f"the pretrained '{DEFAULT_MODEL}' checkpoint is missing from this installation "
            "(re-create it with `starft sandbox pretrain`); pass --model NAME to run the demo "
            "on another model, e.g. --model starft-sandbox-rn (random weights)"
        )
    weights = MODELS.get(DEFAULT_MODEL).weights
    if weights and not Path(str(resources.files("starft") / "resources" / weights)).is_file():
        raise StarftError(
            f"the pretrained '{DEFAULT_MODEL}' checkpoint file starft/resources/{weights} is "
            "missing (re-create it with `starft sandbox pretrain`)"
        )
    return DEFAULT_MODEL


def check_methods(methods: list[str], recipe: DemoRecipe | None = None) -> list[str]:
    """Run names without duplicates, in the given order.

    A run name is ``zeroshot``, a registered method, or a variant that ``recipe`` defines in
    ``method_configs`` (``method.name`` naming the registered method it runs).
    """
    if not methods:
        raise StarftError("no methods to run (choose from: " + _known(recipe) + ")")
    for name in methods:
        if name == ZEROSHOT:
            continue
        method = recipe.method_of(name) if recipe is not None else name
        if method not in METHODS:
            what = f"'{name}'" if method == name else f"'{name}' (method '{method}')"
            raise StarftError(f"unknown demo method {what} (known: {_known(recipe)})")
    return list(dict.fromkeys(methods))


def _known(recipe: DemoRecipe | None = None) -> str:
    variants = [] if recipe is None else [m for m in recipe.method_configs if m not in METHODS]
    return ", ".join([ZEROSHOT, *METHODS.names(), *variants])


def run_demo(
    out_dir: str | Path,
    *,
    methods: list[str] | None = None,
    seeds: list[int] | None = None,
    quick: bool = False,
    validation: bool = False,
    model: str | None = None,
    recipe: DemoRecipe | None = None,
    progress: bool = True,
    report: bool = True,
) -> DemoResult:
    """Run the demo and write its run folder; returns every record (and the report's files).

    ``methods``/``seeds``/``model`` default to the recipe's (``model``: ``sandbox-clip``, which
    must be installed); ``recipe`` defaults to the packaged one (with its ``quick`` part if
    ``quick``, its ``validation`` part if ``validation``: evaluation sets from validation seeds).
    """
    tic = time.perf_counter()
    if recipe is None:
        recipe = load_recipe(quick=quick, validation=validation)
    methods = check_methods(list(methods) if methods is not None else recipe.methods, recipe)
    seeds = list(dict.fromkeys(seeds if seeds is not None else recipe.seeds))
    if not seeds:
        raise StarftError("no seeds to run")
    model_name = resolve_demo_model(model if model is not None else _recipe_model(recipe))
    out = Path(out_dir)
    device = resolve_device(str(recipe.train.get("device", "auto")), DistInfo(0, 1, 0))
    autocast = resolve_autocast(str(recipe.train.get("precision", "auto")), device)

    jobs: list[tuple[str, int | None]] = []
    if ZEROSHOT in methods:
        jobs.append((ZEROSHOT, None))
    jobs += [(m, s) for s in seeds for m in methods if m != ZEROSHOT]
    # Every run's config is built and checked now, so a misspelt recipe key or method option
    # fails in one line before minutes of rendering and training, not at the first fine-tune.
    configs = {
        (m, s): _train_config(recipe, m, s, model_name, out) for m, s in jobs if s is not None
    }
    records: list[RunRecord] = []
    bar = _progress_bar(len(jobs), progress)
    try:
        if bar is not None:
            bar.set_postfix_str("load model, render evaluation sets")
        # Seeded so that a randomly initialised development model (starft-sandbox-rn) gives the
        # same zero-shot row on every run; pretrained weights do not depend on it.
        torch.manual_seed(0)
        pretrained = create_model(model_name)
        # Rendering is the costly part of a sandbox dataset and every model here shares the same
        # preprocessing, so each evaluation set is built once and reused by every run.
        datasets = {
            s.label: build_entry_dataset(s, pretrained.preprocess_val) for s in recipe.evaluation
        }
        groups = _group_info(datasets[recipe.sets("group")[0].label])
        evaluator = _Evaluator(recipe, datasets, methods, model_name, device, autocast)
        for method, seed in jobs:
            label = method if seed is None else f"{method} seed {seed}"

            def status(phase: str, label: str = label) -> None:
                # Each job takes tens of seconds, so the postfix also names its current phase.
                if bar is not None:
                    bar.set_postfix_str(f"{label}: {phase}")

            if seed is None:
                run_dir = out / "runs" / ZEROSHOT
                records.append(evaluator.run(pretrained, method, None, run_dir, status=status))
            else:
                records.append(_fine_tune(configs[method, seed], method, evaluator, status))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    result = DemoResult(
        out_dir=out,
        model=model_name,
        methods=methods,
        seeds=seeds,
        quick=quick,
        recipe=recipe,
        records=records,
        groups=groups,
        num_classes=len(datasets[recipe.sets("id")[0].label].classnames),
    )
    result.seconds = time.perf_counter() - tic
    if report:
        result.files = write_report(result)
    return result


def _recipe_model(recipe: DemoRecipe) -> str | None:
    # The packaged recipe names sandbox-clip; going through resolve_demo_model gives the clear
    # "checkpoint is missing" error instead of open_clip's "unknown model".
    return None if recipe.model == DEFAULT_MODEL else recipe.model


def _train_config(recipe: DemoRecipe, method: str, seed: int, model: str, out: Path) -> TrainConfig:
    run_dir = out / "runs" / f"{method}-seed{seed}"
    try:
        config = recipe.train_config(method, seed=seed, model=model, out_dir=run_dir)
        method_config(
            config.method["name"], {k: v for k, v in config.method.items() if k != "name"}
        )
    except StarftError as err:
        raise StarftError(f"demo recipe, {method} run: {err}") from None
    return config


def _fine_tune(
    config: TrainConfig, run: str, evaluator: _Evaluator, status: Callable[[str], None]
) -> RunRecord:
    """Train run ``run`` (a method or a recipe variant of one) and evaluate its best weights."""
    from starft.train import fit

    run_dir = Path(config.out_dir)
    seed = config.seed
    # A rerun into the same --out starts this run afresh: fit() appends to metrics.jsonl and
    # would mix the two runs' curves, and a stale best/ must never be evaluated.
    shutil.rmtree(run_dir, ignore_errors=True)
    status(f"train ({config.optim.epochs} epochs)")
    tic = time.perf_counter()
    fitted = fit(config)
    train_seconds = time.perf_counter() - tic
    # latest.pt (weights + optimiser state) only serves `--resume`, and the demo evaluates the
    # best-on-validation weights only; dropping both keeps nine runs from filling the disk with
    # copies of the model (about 40 MB each for the sandbox architecture).
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    weights = fitted.final_dir
    if fitted.best_dir is not None and fitted.best_dir.is_dir():
        weights = fitted.best_dir
        shutil.rmtree(fitted.final_dir, ignore_errors=True)
    trained = create_model(str(weights))
    record = evaluator.run(
        trained,
        run,
        seed,
        run_dir,
        weights=weights,
        train_config=to_dict(config),
        status=status,
    )
    record.train_seconds = train_seconds
    return record


class _Evaluator:
    """Evaluates one model on every set (the one evaluation path), writes its result JSONs and
    returns its record, read back from those files as ``starft report`` reads them."""

    def __init__(
        self,
        recipe: DemoRecipe,
        datasets: dict[str, ClassificationDataset],
        methods: list[str],
        model_name: str,
        device: torch.device,
        autocast: torch.dtype | None,
    ) -> None:
        self.recipe = recipe
        self.datasets = datasets
        self.methods = methods
        self.model_name = model_name
        self.device = device
        self.autocast = autocast

    def run(
        self,
        model: ClipModel,
        method: str,
        seed: int | None,
        run_dir: Path,
        *,
        weights: Path | None = None,
        train_config: dict[str, Any] | None = None,
        status: Callable[[str], None] | None = None,
    ) -> RunRecord:
        tic = time.perf_counter()
        # FT's trained head is used on the label space it was trained on (shape); other label
        # spaces (zero-shot transfer) get a zero-shot head from the fine-tuned text tower.
        head = load_head(weights) if weights is not None else None
        outcomes = evaluate_entries(
            ModelSubject(model, head),
            self.recipe.evaluation,
            datasets=self.datasets,
            batch_size=self.recipe.eval_batch_size,
            device=self.device,
            autocast_dtype=self.autocast,
            status=status,
        )
        used = str(weights) if weights is not None else self.model_name
        paths = write_entry_results(
            outcomes,
            run_dir / "results",
            model=self.model_name,
            method=method,
            config={"weights": used, "train": train_config},
            seed=seed,
            method_config=(train_config or {}).get("method"),
            by_label=True,
            # ``order`` keeps the rows of `starft report` in the demo's method order.
            extra={
                "split": self.recipe.split,
                "order": self.methods.index(method),
                "weights": used,
            },
        )
        record = run_record([load_result(path) for path in paths])
        record.weights = str(weights) if weights is not None else None
        record.eval_seconds = time.perf_counter() - tic
        return record


def _group_info(dataset: ClassificationDataset) -> GroupInfo:
    """Group names and minority groups of the group-shift set (ids or names accepted)."""
    names = list(getattr(dataset, "group_names", None) or [])
    if not names:
        raise StarftError(
            f"the demo's group-shift set ({type(dataset).__name__}) has no group names"
        )
    minority = [
        names[g] if isinstance(g, int) else str(g)
        for g in (getattr(dataset, "minority_groups", None) or [])
    ]
    # Sandbox group names join the ``group_by`` attribute words with "|" ("circle|water"); the
    # plots aggregate groups per scene, the task's spurious attribute.
    scene_of: dict[str, str] = {}
    group_by = list(getattr(dataset, "group_by", None) or [])
    if "scene" in group_by:
        position = group_by.index("scene")
        for name in names:
            parts = name.split("|")
            if len(parts) == len(group_by):
                scene_of[name] = parts[position]
    return GroupInfo(names=names, minority=minority, scene_of=scene_of)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="demo", unit="run", dynamic_ncols=True)

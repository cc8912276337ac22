"""Building a training run's parts from a :class:`TrainConfig`, with up-front checks.

Everything that can be wrong in a config is caught here, before the first step, with a one-line
:class:`StarftError` naming the field.
"""

from __future__ import annotations

import copy
from typing import Any

from starft.config import TrainConfig, resolve_method
from starft.data import ClassificationDataset, create_dataset, get_templates
from starft.data.label_space import align_classes
from starft.errors import StarftError
from starft.eval.metric_registry import METRICS, selectable_metrics
from starft.method_configs import method_config
from starft.methods import METHODS, Method, Task, create_method
from starft.models import ClipModel
from starft.train.nonfinite import ACTIONS as NONFINITE_ACTIONS
from starft.utils.distributed import DistInfo


def check_config(config: TrainConfig, info: DistInfo) -> None:
    """Values that are well-typed but out of range, or unsupported in this launch."""
    if config.optim.accum_steps < 1:
        raise StarftError(f"optim.accum_steps must be >= 1, got {config.optim.accum_steps}")
    if config.optim.epochs < 1:
        raise StarftError(f"optim.epochs must be >= 1, got {config.optim.epochs}")
    if config.data.batch_size < 1:
        raise StarftError(f"data.batch_size must be >= 1, got {config.data.batch_size}")
    if config.optim.on_nonfinite not in NONFINITE_ACTIONS:
        raise StarftError(
            f"optim.on_nonfinite must be one of {NONFINITE_ACTIONS}, got "
            f"'{config.optim.on_nonfinite}'"
        )
    if config.optim.warmup_steps < 0:
        raise StarftError(f"optim.warmup_steps must be >= 0, got {config.optim.warmup_steps}")
    if config.checkpoint_every_steps < 0:
        raise StarftError(
            f"checkpoint_every_steps must be >= 0, got {config.checkpoint_every_steps}"
        )
    if config.log.every_steps < 1:
        raise StarftError(f"log.every_steps must be >= 1, got {config.log.every_steps}")
    if config.select_by not in selectable_metrics():
        raise StarftError(
            f"select_by must be a metric of the predictions ({', '.join(selectable_metrics())}), "
            f"got '{config.select_by}'"
        )
    if config.data.on_bad_image == "skip" and info.world_size > 1:
        # Skipping changes local batch sizes, which cross-rank feature gathers cannot take.
        raise StarftError(
            "data.on_bad_image=skip works in a single process only; under torchrun, remove "
            "the unreadable files listed by a single-process run first"
        )


def build_datasets(
    config: TrainConfig, model: ClipModel
) -> tuple[ClassificationDataset, ClassificationDataset | None]:
    """Training set (model's train preprocessing unless ``data.augment=false``) and ID val set.

    The validation set is numbered in the training set's label space by class *name* (a
    validation folder lacking a class numbers the rest differently); a validation class the
    training set lacks stops the run here, before any training.
    """
    data = config.data
    train_tf = model.preprocess_train if data.augment else model.preprocess_val
    train_set = create_dataset(
        data.dataset, **data.train, transform=train_tf, on_bad_image=data.on_bad_image
    )
    val_set = None
    if data.val is not None:
        val_set = create_dataset(
            data.val_dataset or data.dataset,
            **data.val,
            transform=model.preprocess_val,
            on_bad_image=data.on_bad_image,
        )
        what = f"validation set (data.val of dataset '{data.val_dataset or data.dataset}')"
        val_set = align_classes(val_set, train_set.classnames, what)
    missing = [
        attr
        for attr in METRICS.get(config.select_by).requires
        if val_set is None or getattr(val_set, attr, None) is None
    ]
    if missing:
        raise StarftError(
            f"select_by={config.select_by} needs a validation set (data.val) with {missing[0]}"
        )
    return train_set, val_set


def eval_view(dataset: ClassificationDataset, transform: Any) -> ClassificationDataset:
    """The same samples under another transform (a shallow copy: images are not duplicated)."""
    view = copy.copy(dataset)
    view.transform = transform
    return view


def build_task(config: TrainConfig, dataset: Any) -> Task:
    """Class names from the dataset; templates from the config if given, else the dataset's."""
    data = config.data
    templates = get_templates(data.templates) if data.templates else dataset.templates
    eval_templates = (
        get_templates(data.eval_templates) if data.eval_templates else dataset.templates
    )
    return Task(list(dataset.classnames), list(templates), list(eval_templates))


def check_data_keys(config: TrainConfig, dataset: ClassificationDataset) -> None:
    """The batch contract: every key the method reads is a field of the dataset's samples."""
    name = config.method["name"]
    params = {key: value for key, value in config.method.items() if key != "name"}
    needed = METHODS.get(name).batch_keys(method_config(name, params))
    provided = dataset.sample_keys
    missing = [key for key in needed if key not in provided]
    if missing:
        raise StarftError(
            f"dataset '{config.data.dataset}' has no batch key '{missing[0]}', which method "
            f"'{name}' needs (the dataset provides: {', '.join(sorted(provided))})"
        )


def build_method(
    config: TrainConfig, model: ClipModel, train_set: ClassificationDataset, info: DistInfo
) -> Method:
    """The method, its section of ``config`` resolved in place first (every default filled in).

    ``load_train_config`` has resolved it already; a config built in Python is resolved here,
    before the run folder's ``config.yaml`` is written, so both record the same complete section.
    """
    resolve_method(config)
    check_data_keys(config, train_set)
    params = {k: v for k, v in config.method.items() if k != "name"}
    return create_method(
        config.method["name"],
        model,
        build_task(config, train_set),
        params,
        rank=info.rank,
        world_size=info.world_size,
    )


def steps_per_epoch(config: TrainConfig, num_samples: int, world_size: int) -> int:
    """Optimiser steps per epoch: full global batches only (``drop_last``), then accumulation."""
    data = config.data
    steps = num_samples // (data.batch_size * world_size) // config.optim.accum_steps
    if steps == 0:
        raise StarftError(
            f"data.batch_size={data.batch_size} x {world_size} process(es) x "
            f"optim.accum_steps={config.optim.accum_steps} is larger than the training set "
            f"({num_samples} samples)"
        )
    return steps

"""The one evaluation path: a model (or a method being trained) on the entries of a suite.

Every evaluation in starft goes through :func:`evaluate_entries`: ``starft eval`` (one dataset is
a one-entry suite), suites, the trainer's per-epoch validation, ``starft wise-ft`` (once per α),
``starft demo`` and ``starft ablate``. An entry is a :class:`~starft.eval.suites.SuiteEntry`
(dataset + arguments + metrics + optional axis label); the demo recipe and suite YAML files write
it in the same format. :func:`write_entry_results` writes the result JSONs, each with the seed,
the axis and the resolved method config, so ``starft report`` needs nothing else.

What a result is scored with is the *subject*'s choice (:class:`ModelSubject`: a saved model with
its linear head if it has one for the dataset's classes, else a zero-shot head;
:class:`MethodSubject`: a method's own classifier during training).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from starft.data import DatasetNotFoundError, create_dataset
from starft.data.label_space import ClassProjection, resolve_projection
from starft.errors import StarftError
from starft.eval.alignment import alignment_of
from starft.eval.evaluate import evaluate
from starft.eval.metric_registry import METRICS, MetricInput
from starft.eval.predict import Predictions
from starft.eval.projection import ProjectedClassifier
from starft.eval.results import build_result, result_filename, write_result
from starft.eval.suites import SuiteEntry
from starft.models import ClipModel, ZeroShotClassifier, build_zeroshot_head
from starft.models.heads import LinearHeadClassifier
from starft.utils.distributed import DistInfo

logger = logging.getLogger(__name__)

#: ``projection: auto``: the label space the dataset itself declares (IN-R/-A, ObjectNet), if any.
AUTO_PROJECTION = "auto"


class Subject(Protocol):
    """What is evaluated: gives an images -> logits module for a dataset's label space."""

    def classifier(
        self, dataset: Any, projection: ClassProjection | None, device: torch.device
    ) -> nn.Module: ...


@dataclass
class ModelSubject:
    """A model: its trained linear head where the classes match, else a zero-shot head.

    ``templates`` replaces each dataset's own caption templates for zero-shot heads.
    """

    model: ClipModel
    linear_head: tuple[nn.Linear, list[str]] | None = None
    templates: Sequence[str] | None = None

    def classifier(
        self, dataset: Any, projection: ClassProjection | None, device: torch.device
    ) -> nn.Module:
        classnames = list(
            projection.source_classnames if projection is not None else dataset.classnames
        )
        templates = list(self.templates if self.templates is not None else dataset.templates)
        model = self.model.to(device).eval()
        if self.linear_head is not None and self.linear_head[1] == classnames:
            return LinearHeadClassifier(model, self.linear_head[0].to(device))
        head = build_zeroshot_head(model, classnames, templates, device=device)
        return ZeroShotClassifier(model, head)


@dataclass
class MethodSubject:
    """A method during training: its own classifier (its head, or a zero-shot head from its
    current text tower with the task's evaluation templates)."""

    method: Any

    def classifier(
        self, dataset: Any, projection: ClassProjection | None, device: torch.device
    ) -> nn.Module:
        task_classes = self.method.task.classnames
        classnames = list(
            projection.source_classnames if projection is not None else dataset.classnames
        )
        return self.method.classifier(None if classnames == task_classes else classnames)


@dataclass
class EntryOutcome:
    """One entry's evaluation: ``ok`` (with metrics), or ``missing`` / ``invalid`` (skipped)."""

    entry: SuiteEntry
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    per_group: dict[str, Any] = field(default_factory=dict)
    predictions: Predictions | None = None
    dataset_args: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    result_file: str | None = None
    #: The label space the logits were projected into (None: the dataset's own classes).
    projection: str | None = None
    #: Names of the dataset's minority groups, if it declares them (for reports).
    minority_groups: list[str] | None = None


def entry_dataset_args(
    entry: SuiteEntry, root: str | Path | None = None, roots: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The entry's dataset arguments, with its root (per label or dataset name) and split."""
    args = dict(entry.args)
    roots = dict(roots or {})
    chosen = roots.get(entry.label, roots.get(entry.dataset, None if root is None else str(root)))
    if chosen is not None:
        args["root"] = chosen
    if entry.split is not None:
        args["split"] = entry.split
    return args


def build_entry_dataset(
    entry: SuiteEntry,
    transform: Callable[..., Any] | None,
    *,
    root: str | Path | None = None,
    roots: Mapping[str, str] | None = None,
) -> Dataset:
    """The registered dataset of ``entry`` under ``transform``."""
    return create_dataset(
        entry.dataset, **entry_dataset_args(entry, root, roots), transform=transform
    )


def entry_projection(entry: SuiteEntry, dataset: Any) -> ClassProjection | None:
    if entry.projection == AUTO_PROJECTION:
        projection = getattr(dataset, "projection", None)
        return projection if isinstance(projection, ClassProjection) else None
    return resolve_projection(dataset, entry.projection)


def evaluate_subject(
    subject: Subject,
    dataset: Dataset,
    projection: ClassProjection | None = None,
    *,
    device: str | torch.device = "cpu",
    **eval_kwargs: Any,
) -> tuple[dict, dict, Predictions]:
    """One subject on one built dataset: its classifier (projected if asked), then the metrics."""
    device = torch.device(device)
    classifier = subject.classifier(dataset, projection, device)
    if projection is not None:
        classifier = ProjectedClassifier(classifier, projection)
    return evaluate(classifier, dataset, device=device, **eval_kwargs)


def evaluate_entries(
    subject: Subject,
    entries: Sequence[SuiteEntry],
    *,
    datasets: Mapping[str, Dataset] | None = None,
    transform: Callable[..., Any] | None = None,
    root: str | Path | None = None,
    roots: Mapping[str, str] | None = None,
    skip_unavailable: bool = False,
    warn: Callable[[str], None] | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    dist: DistInfo | None = None,
    progress: bool = False,
    autocast_dtype: torch.dtype | None = None,
    status: Callable[[str], None] | None = None,
) -> list[EntryOutcome]:
    """Evaluate ``subject`` on every entry; the one function all evaluations go through.

    ``datasets`` holds already-built datasets by entry label (built once, reused for many
    models); the others are built with ``transform`` under ``root``/``roots``. With
    ``skip_unavailable`` a dataset that is not on disk (*missing*) or does not match its layout
    (*invalid*) is skipped with a one-line ``warn`` instead of stopping the run. In a multi-rank
    job every rank calls this and receives the same full-set results.
    """
    warn = warn or logger.warning
    device = torch.device(device)
    outcomes = []
    for entry in entries:
        args = entry_dataset_args(entry, root, roots)
        try:
            if datasets is not None and entry.label in datasets:
                dataset = datasets[entry.label]
            else:
                dataset = create_dataset(entry.dataset, **args, transform=transform)
            projection = entry_projection(entry, dataset)
        except DatasetNotFoundError as error:
            if not skip_unavailable:
                raise
            warn(f"skipping {entry.label} (missing): {error}")
            outcomes.append(EntryOutcome(entry, "missing", dataset_args=args, reason=str(error)))
            continue
        except StarftError as error:
            if not skip_unavailable:
                raise
            warn(f"skipping {entry.label} (invalid): {error}")
            outcomes.append(EntryOutcome(entry, "invalid", dataset_args=args, reason=str(error)))
            continue
        if status is not None:
            status(f"eval {entry.label}")
        metrics, per_group, predictions = evaluate_subject(
            subject,
            dataset,
            projection,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            dist=dist,
            progress=progress,
            autocast_dtype=autocast_dtype,
        )
        if entry.axis == "alignment":
            metrics.update(
                _alignment_metrics(subject, dataset, predictions, entry, device, batch_size)
            )
        space = None if projection is None else projection.space
        outcome = EntryOutcome(
            entry, "ok", metrics, per_group, predictions, dataset_args=args, projection=space
        )
        outcome.minority_groups = _minority_names(dataset)
        outcomes.append(outcome)
    return outcomes


def _alignment_metrics(
    subject: Subject,
    dataset: Any,
    predictions: Predictions,
    entry: SuiteEntry,
    device: torch.device,
    batch_size: int,
) -> dict[str, Any]:
    """The relevance metrics of an ``alignment`` entry (maps of the true label vs masks)."""
    classifier = subject.classifier(dataset, None, device)
    values = alignment_of(
        classifier, dataset, where=f"entry {entry.label}", device=device, batch_size=batch_size
    )
    data = MetricInput(predictions.logits, predictions.labels, alignment=values)
    out: dict[str, Any] = {
        e.name: e.obj.fn(data) for e in METRICS.in_order() if e.obj.needs_relevance
    }
    out["n_alignment_images"] = values["n_images"]
    return out


def _minority_names(dataset: Any) -> list[str] | None:
    ids = getattr(dataset, "minority_groups", None)
    names = getattr(dataset, "group_names", None)
    if ids is None or names is None:
        return None
    return [str(names[g]) for g in ids]


def _jsonable_args(args: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in args.items()}


def write_entry_results(
    outcomes: Sequence[EntryOutcome],
    out: str | Path,
    *,
    model: str,
    method: str,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    method_config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    file_label: str | None = None,
    by_label: bool = False,
    save_predictions: bool = False,
) -> list[Path]:
    """One result JSON per evaluated entry under ``out`` (skipped entries write nothing).

    Every result carries ``seed``, ``axis`` (the entry's, or None), ``method_config`` (the
    resolved method options) and ``label``, besides the :func:`~starft.eval.results.build_result`
    keys; ``extra`` adds more (``alpha``, ``epoch``, ...). ``file_label`` names the files
    (default ``model``). Files and the ``dataset`` field name the registered dataset (and split),
    or with ``by_label`` the entry's label (sets of one dataset told apart by their arguments).
    """
    paths = []
    for position, outcome in enumerate(outcomes):
        if outcome.status != "ok":
            continue
        entry = outcome.entry
        entry_config = {
            **dict(config or {}),
            "dataset": entry.dataset,
            "dataset_args": _jsonable_args(outcome.dataset_args),
            "projection": outcome.projection,
        }
        name = entry.label if by_label else entry.dataset
        result = build_result(
            model=model,
            method=method,
            dataset=name,
            config=entry_config,
            metrics=outcome.metrics,
            per_group=outcome.per_group,
            n_samples=outcome.metrics["n_samples"],
            extra={
                "seed": seed,
                "axis": entry.axis,
                "label": entry.label,
                "split": entry.split,
                "method_config": dict(method_config or {}),
                "position": position,
                **(
                    {"minority_groups": outcome.minority_groups}
                    if outcome.minority_groups is not None
                    else {}
                ),
                **dict(extra or {}),
            },
        )
        if entry.split is not None and not by_label:
            name = f"{name}-{entry.split}"
        path = Path(out) / result_filename(file_label or model, method, name)
        predictions = outcome.predictions if save_predictions else None
        write_result(path, result, predictions=predictions)
        outcome.result_file = path.name
        paths.append(path)
    return paths

"""Evaluation suites as data: which datasets, splits, metrics and aggregates make up a paper table.

A suite is a YAML file (``resources/suites/*.yaml`` for the built-in ones, registered in
:data:`SUITES`; or any user file with the same schema)::

    name: imagenet-ood
    description: "..."
    datasets:
      - {dataset: imagenet_r, split: test, label: IN-R, metrics: [top1], projection: imagenet}
      - {dataset: waterbirds, label: Waterbirds, metrics: {worst_group_acc: WG, top1: Avg}}
    aggregates:
      - {name: OOD avg, metric: top1, over: [IN-R, IN-A, IN-S, IN-V2]}

``metrics`` is a list of registered metric names (:mod:`starft.eval.metric_registry`) or a mapping
from name to the column title; ``projection`` names the label space the model is evaluated in
(:mod:`starft.data.label_space`; ``auto``: the one the dataset declares, if any); ``args`` holds
extra dataset arguments; ``axis`` (``id``, ``group``, ``domain``, ``transfer``) says what the
entry measures, for reports; ``alignment`` also computes the relevance-map metrics (``miou``,
``energy_in_mask``, ...; the dataset's samples must carry masks). ``datasets`` may also be a
mapping from label to entry (the demo recipe's form, so quick/validation sections and
``key=value`` overrides address entries by label). Keeping suites as data means a new table is
a new file, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from starft.errors import StarftError
from starft.eval.metric_registry import METRICS, check_metric, metric_names
from starft.registry import Registry

_ENTRY_KEYS = {"dataset", "split", "label", "metrics", "projection", "args", "axis"}
#: What an entry measures with accuracy: ID accuracy, group shift, domain shift, transfer.
ACCURACY_AXES = ("id", "group", "domain", "transfer")
#: ``alignment``: relevance maps against the dataset's masks (the relevance metrics).
AXES = (*ACCURACY_AXES, "alignment")
_SUITE_KEYS = {"name", "description", "datasets", "aggregates"}
_AGGREGATE_KEYS = {"name", "metric", "over"}


@dataclass(frozen=True)
class SuiteEntry:
    """One dataset of a suite: what to build and which metrics become table columns."""

    dataset: str
    label: str
    split: str | None = None
    metrics: dict[str, str] = field(default_factory=lambda: {"top1": "Acc"})
    projection: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    axis: str | None = None

    def columns(self) -> list[tuple[str, str]]:
        """``(metric, column title)``; a single metric's column is just the label."""
        if len(self.metrics) == 1:
            return [(metric, self.label) for metric in self.metrics]
        return [(metric, f"{self.label} {title}") for metric, title in self.metrics.items()]


@dataclass(frozen=True)
class Aggregate:
    """Mean of ``metric`` over the entries labelled ``over`` (e.g. the paper's "OOD avg")."""

    name: str
    metric: str
    over: tuple[str, ...]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    entries: tuple[SuiteEntry, ...]
    aggregates: tuple[Aggregate, ...] = ()


def _fail(where: str, message: str) -> StarftError:
    return StarftError(f"suite {where}: {message}")


def _check_keys(data: Any, allowed: set[str], where: str, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(where, f"{what} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(
            where, f"{what} has unknown key '{unknown[0]}' (keys: {', '.join(sorted(allowed))})"
        )
    return data


def _metrics(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {"top1": METRICS.get("top1").short}
    pairs = value.items() if isinstance(value, dict) else ((m, None) for m in value)
    metrics = {}
    for metric, title in pairs:
        short = check_metric(str(metric), f"suite {where}").short
        metrics[str(metric)] = str(title) if title is not None else short
    if not metrics:
        raise _fail(where, "an entry lists no metrics")
    return metrics


def parse_entry(data: Any, where: str, name: str, label: str | None = None) -> SuiteEntry:
    """One entry (``name`` locates it in errors; ``label`` is its key in mapping form)."""
    data = _check_keys(data, _ENTRY_KEYS, where, name)
    if not isinstance(data.get("dataset"), str):
        raise _fail(where, f"{name} needs a 'dataset' name")
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise _fail(where, f"{name}.args must be a mapping")
    axis = data.get("axis")
    if axis is not None and axis not in AXES:
        raise _fail(where, f"{name}.axis must be one of {', '.join(AXES)}, got {axis!r}")
    metrics = _metrics(data.get("metrics"), where)
    relevance = [m for m in metrics if METRICS.get(m).needs_relevance]
    if relevance and axis != "alignment":
        raise _fail(
            where, f"{name}: metric '{relevance[0]}' needs relevance maps: set axis: alignment"
        )
    return SuiteEntry(
        dataset=data["dataset"],
        label=str(data.get("label") or label or data["dataset"]),
        split=None if data.get("split") is None else str(data["split"]),
        metrics=metrics,
        projection=data.get("projection"),
        args=dict(args),
        axis=axis,
    )


def parse_entries(data: Any, where: str, key: str = "datasets") -> tuple[SuiteEntry, ...]:
    """A non-empty list of entries, or a mapping label -> entry; labels must be unique."""
    if isinstance(data, dict) and data:
        entries = tuple(
            parse_entry(item, where, f"{key}.{label}", str(label)) for label, item in data.items()
        )
    elif isinstance(data, list) and data:
        entries = tuple(parse_entry(item, where, f"{key}[{i}]") for i, item in enumerate(data))
    else:
        raise _fail(where, f"needs a non-empty '{key}' list (or mapping of label to entry)")
    labels = [entry.label for entry in entries]
    duplicate = next((label for label in labels if labels.count(label) > 1), None)
    if duplicate is not None:
        raise _fail(where, f"label '{duplicate}' is used twice (labels name table columns)")
    return entries


def parse_suite(data: Any, where: str) -> Suite:
    """A :class:`Suite` from parsed YAML, every field checked; ``where`` names the source."""
    data = _check_keys(data, _SUITE_KEYS, where, "the file")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise _fail(where, "needs a 'name'")
    entries = parse_entries(data.get("datasets"), where)
    labels = [entry.label for entry in entries]
    aggregates = []
    for i, item in enumerate(data.get("aggregates") or []):
        item = _check_keys(item, _AGGREGATE_KEYS, where, f"aggregates[{i}]")
        over = tuple(str(label) for label in item.get("over") or ())
        missing = [label for label in over if label not in labels]
        if not over or missing or item.get("metric") not in METRICS or not item.get("name"):
            raise _fail(
                where,
                f"aggregates[{i}] needs a name, a metric in ({', '.join(metric_names())}) and "
                "'over' "
                f"labels of its datasets" + (f" (unknown label '{missing[0]}')" if missing else ""),
            )
        aggregates.append(Aggregate(str(item["name"]), str(item["metric"]), over))
    return Suite(data["name"], str(data.get("description") or ""), entries, tuple(aggregates))


def _load_text(text: str, where: str) -> Suite:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise _fail(where, "is not valid YAML") from None
    return parse_suite(data, where)


def _builtin_suites() -> Registry[Suite]:
    registry: Registry[Suite] = Registry("suite")
    folder = resources.files("starft") / "resources" / "suites"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            suite = _load_text(item.read_text(encoding="utf-8"), f"'{item.name}'")
            registry.add(suite.name, suite, suite.description)
    return registry


SUITES: Registry[Suite] = _builtin_suites()


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name (``starft ls suites``) or a suite YAML file."""
    if isinstance(name_or_path, str) and name_or_path in SUITES:
        return SUITES.get(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(SUITES.names())
        raise StarftError(f"unknown suite '{name_or_path}' (known: {known}; or a YAML file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read suite file '{path}': {error}") from None
    return _load_text(text, f"file '{path}'")

"""The metric registry: every evaluation metric with its display name, format and direction.

Each entry is a :class:`Metric`: a function of the whole set's predictions, a display name (report
tables and plot axes), a short column title (paper-style suite tables), how its values print and
whether higher is better (average ranks, selection, arrows in tables). Every table and plot reads
names and formats from here, so adding a metric is one ``METRICS.add(...)`` call: it is computed
for every evaluation (:func:`~starft.eval.metrics.compute_metrics`), accepted in suite files,
selectable with ``select_by`` when it is an accuracy of the whole set, and shown by
``starft report``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from starft.errors import StarftError
from starft.eval import metrics as _m
from starft.registry import Registry


@dataclass
class MetricInput:
    """What a metric function sees: the gathered logits and labels of the whole set, and the
    per-group accuracies ``{group id: (acc, n)}`` (empty without groups)."""

    logits: Tensor
    labels: Tensor
    per_group: dict[int, tuple[float, int]] = field(default_factory=dict)
    minority_groups: Sequence[int] | None = None
    #: Logits of each sample's ground-truth object *region* (see :mod:`starft.eval.regions`), and
    #: the per-group accuracies of those region predictions; None/empty when not evaluated.
    region_logits: Tensor | None = None
    region_per_group: dict[int, tuple[float, int]] = field(default_factory=dict)
    _preds: Tensor | None = None

    @property
    def preds(self) -> Tensor:
        if self._preds is None:
            self._preds = self.logits.argmax(dim=1)
        return self._preds


@dataclass(frozen=True)
class Metric:
    """One metric: ``fn(MetricInput) -> float | None`` (None: does not apply to this set)."""

    fn: Callable[[MetricInput], float | None]
    title: str
    short: str
    percent: bool = True
    higher_is_better: bool = True
    needs_groups: bool = False
    #: Computed only when the evaluation has region logits (:mod:`starft.eval.regions`).
    needs_regions: bool = False
    digits: int = 3
    #: Dataset attributes the metric needs (not None), checked before a run selects by it.
    requires: tuple[str, ...] = ()

    def format(self, value: float | None) -> str:
        """Paper-table style: percent with one decimal, else ``digits`` decimals, ``-`` if none."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{100 * value:.1f}" if self.percent else f"{value:.{self.digits}f}"

    def format_pm(self, mean: float, std: float) -> str:
        """Report style: ``mean ± std`` as fractions with ``digits`` decimals, ``n/a`` if NaN."""
        if math.isnan(mean):
            return "n/a"
        return f"{mean:.{self.digits}f} ± {std:.{self.digits}f}"


METRICS: Registry[Metric] = Registry("metric")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _minority(data: MetricInput, minority: bool) -> float | None:
    if data.minority_groups is None:
        return None
    ids = set(data.minority_groups)
    accs = [acc for g, (acc, _) in data.per_group.items() if (g in ids) == minority]
    return _mean(accs)


METRICS.add(
    "top1",
    Metric(lambda d: _m.top1_accuracy(d.preds, d.labels), "top-1", "Acc"),
    "top-1 accuracy: mean over samples",
)
METRICS.add(
    "ece",
    Metric(
        lambda d: _m.expected_calibration_error(torch.softmax(d.logits.double(), 1), d.labels),
        "ECE",
        "ECE",
        higher_is_better=False,
    ),
    "expected calibration error, 15 equal-width bins over the whole set",
)
METRICS.add(
    "nll",
    Metric(
        lambda d: _m.negative_log_likelihood(d.logits, d.labels),
        "NLL",
        "NLL",
        percent=False,
        higher_is_better=False,
    ),
    "negative log-likelihood (mean cross-entropy)",
)
METRICS.add(
    "macro_f1",
    Metric(lambda d: _m.macro_f1(d.preds, d.labels), "macro-F1", "F1"),
    "unweighted mean F1 over the classes present (WILDS iWildCam's headline metric)",
)
METRICS.add(
    "per_class_acc",
    Metric(lambda d: _m.per_class_accuracy(d.preds, d.labels), "per-class acc", "PCA"),
    "mean per-class accuracy (balanced accuracy) over the classes present",
)
METRICS.add(
    "worst_group_acc",
    Metric(
        lambda d: _m.worst_group_accuracy(d.per_group),
        "worst-group",
        "WG",
        needs_groups=True,
        requires=("groups",),
    ),
    "lowest accuracy over the groups present",
)
METRICS.add(
    "avg_group_acc",
    Metric(
        lambda d: _m.average_group_accuracy(d.per_group),
        "avg-group",
        "GAvg",
        needs_groups=True,
        requires=("groups",),
    ),
    "unweighted mean of the per-group accuracies",
)
METRICS.add(
    "minority_group_acc",
    Metric(
        lambda d: _minority(d, True),
        "minority-group",
        "Min",
        needs_groups=True,
        requires=("groups", "minority_groups"),
    ),
    "unweighted mean accuracy of the dataset's minority groups (when it names them)",
)
METRICS.add(
    "majority_group_acc",
    Metric(
        lambda d: _minority(d, False),
        "majority-group",
        "Maj",
        needs_groups=True,
        requires=("groups", "minority_groups"),
    ),
    "unweighted mean accuracy of the groups that are not minority groups",
)

# RaVL's region metrics: zero-shot classification of each image's ground-truth object region.
METRICS.add(
    "region_top1",
    Metric(
        lambda d: (
            None
            if d.region_logits is None
            else _m.top1_accuracy(d.region_logits.argmax(dim=1), d.labels)
        ),
        "region top-1",
        "RAcc",
        needs_regions=True,
        requires=("object_regions",),
    ),
    "top-1 accuracy of the ground-truth object region's embedding, classified like an image",
)
METRICS.add(
    "region_worst_group_acc",
    Metric(
        lambda d: _m.worst_group_accuracy(d.region_per_group) if d.region_per_group else None,
        "region worst-group",
        "RWG",
        needs_groups=True,
        needs_regions=True,
        requires=("groups", "object_regions"),
    ),
    "lowest per-group accuracy of the object-region predictions",
)


def get_metric(name: str) -> Metric:
    """The registered metric ``name`` (a :class:`StarftError` listing the known ones otherwise)."""
    return METRICS.get(name)


def metric_names() -> list[str]:
    """Names in registration order (the column order of tables)."""
    return [entry.name for entry in METRICS.in_order()]


def selectable_metrics() -> list[str]:
    """Metrics that model selection may maximise: higher is better."""
    return [e.name for e in METRICS.in_order() if e.obj.higher_is_better]


def check_metric(name: str, where: str) -> Metric:
    if name not in METRICS:
        raise StarftError(
            f"{where}: unknown metric '{name}' (metrics: {', '.join(metric_names())})"
        )
    return METRICS.get(name)

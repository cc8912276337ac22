"""The metric registry: every evaluation metric with its display name, format and direction.

Each entry is a :class:`Metric`: a function of the whole set's predictions, a display name (report
tables and plot axes), a short column title (paper-style suite tables), how its values print and
whether higher is better (average ranks, selection, arrows in tables). Every table and plot reads
names and formats from here, so adding a metric is one ``METRICS.add(...)`` call: it is computed
for every evaluation (:func:`~starft.eval.metrics.compute_metrics`), accepted in suite files,
selectable with ``select_by`` (maximised or minimised by its direction), and shown by
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
from starft.explain.alignment import ALIGNMENT_METRICS
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
    #: ``starft.explain.alignment_metrics`` of the set's relevance maps (alignment entries only)
    alignment: dict[str, float] | None = None
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
    #: Computed from relevance maps against masks (an ``alignment`` suite entry), not from the
    #: predictions: ``fn`` reads ``MetricInput.alignment``.
    needs_relevance: bool = False

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


def _alignment(name: str) -> Callable[[MetricInput], float | None]:
    return lambda d: None if d.alignment is None else d.alignment.get(name)


# Relevance-map alignment (computed for suite entries with ``axis: alignment``); directions come
# from starft.explain.alignment's table.
for _name, (_title, _short, _about) in {
    "pixel_acc": ("pixel acc", "PixAcc", "pixels on the right side of the map's mean (RobustViT)"),
    "miou": ("mIoU", "mIoU", "mean IoU of foreground and background, map > its mean (RobustViT)"),
    "map": ("mAP", "mAP", "mean per-image AP of [1 - R, R] against the mask (RobustViT)"),
    "ap": ("AP", "AP", "mean per-image average precision of the map against the mask"),
    "energy_in_mask": ("energy in mask", "EiM", "mean share of relevance inside the mask"),
}.items():
    METRICS.add(
        _name,
        Metric(
            _alignment(_name),
            _title,
            _short,
            higher_is_better=ALIGNMENT_METRICS[_name],
            needs_relevance=True,
        ),
        f"alignment of relevance maps (true label) with masks: {_about}",
    )


def relevance_metric_names() -> list[str]:
    """Metrics computed from relevance maps against masks (``axis: alignment`` entries)."""
    return [e.name for e in METRICS.in_order() if e.obj.needs_relevance]


def get_metric(name: str) -> Metric:
    """The registered metric ``name`` (a :class:`StarftError` listing the known ones otherwise)."""
    return METRICS.get(name)


def metric_names() -> list[str]:
    """Names in registration order (the column order of tables)."""
    return [entry.name for entry in METRICS.in_order()]


def selectable_metrics() -> list[str]:
    """Metrics that model selection may use (``select_by``): every metric of the predictions,
    maximised or, when lower is better (``nll``, the validation loss), minimised."""
    return [e.name for e in METRICS.in_order() if not e.obj.needs_relevance]


def is_better(name: str, score: float, best: float | None) -> bool:
    """Whether ``score`` of metric ``name`` beats ``best`` (None: nothing yet), by its direction."""
    if best is None:
        return True
    return score > best if METRICS.get(name).higher_is_better else score < best


def check_metric(name: str, where: str) -> Metric:
    if name not in METRICS:
        raise StarftError(
            f"{where}: unknown metric '{name}' (metrics: {', '.join(metric_names())})"
        )
    return METRICS.get(name)

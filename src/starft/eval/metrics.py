"""Classification metrics as pure functions over whole-set tensors.

Conventions: ``logits``/``probs`` are float ``[N, C]``, ``labels`` and ``preds`` long ``[N]`` with
values in ``[0, C)``, ``groups`` long ``[N]`` where an id < 0 means "no group". Every metric is
computed over the full evaluation set at once (callers gather predictions first): accuracy is
additive, but ECE and worst-group accuracy are not, so per-batch averages would be wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from starft.errors import StarftError

PerGroup = dict[int, tuple[float, int]]


def _check_nonempty(labels: Tensor) -> None:
    if labels.numel() == 0:
        raise StarftError("no samples to evaluate")


def _check_same_length(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{what}: length mismatch {a.shape[0]} vs {b.shape[0]}")


def top1_accuracy(preds: Tensor, labels: Tensor) -> float:
    """Fraction of samples with ``preds == labels`` (unweighted mean over samples)."""
    _check_same_length(preds, labels, "top1_accuracy")
    _check_nonempty(labels)
    return (preds == labels).double().mean().item()


def group_accuracies(preds: Tensor, labels: Tensor, groups: Tensor) -> PerGroup:
    """Accuracy and sample count per group id, in increasing id order; ids < 0 are ignored."""
    _check_same_length(preds, labels, "group_accuracies")
    _check_same_length(groups, labels, "group_accuracies")
    valid = groups >= 0
    gids = groups[valid].long()
    if gids.numel() == 0:
        return {}
    # bincount over ids keeps this O(N) even for datasets with thousands of groups.
    counts = torch.bincount(gids)
    hits = torch.bincount(gids, weights=(preds[valid] == labels[valid]).double())
    return {
        int(g): ((hits[g] / counts[g]).item(), int(counts[g].item()))
        for g in torch.nonzero(counts).flatten().tolist()
    }


def _check_groups(per_group: Mapping[int, tuple[float, int]]) -> None:
    if not per_group:
        raise StarftError("no groups to evaluate: every sample has a group id < 0")


def worst_group_accuracy(per_group: Mapping[int, tuple[float, int]]) -> float:
    """Lowest accuracy over the groups present."""
    _check_groups(per_group)
    return min(acc for acc, _ in per_group.values())


def average_group_accuracy(per_group: Mapping[int, tuple[float, int]]) -> float:
    """UNWEIGHTED mean of the per-group accuracies over the groups present.

    Every group counts equally regardless of its size, so a rare minority group weighs as much as
    the majority one (this is the "average group accuracy" of the group-robustness literature, not
    the sample-weighted mean, which equals :func:`top1_accuracy`). For the Waterbirds-style
    "average accuracy" weighted by training group proportions use :func:`weighted_group_accuracy`.
    """
    _check_groups(per_group)
    return sum(acc for acc, _ in per_group.values()) / len(per_group)


def weighted_group_accuracy(
    per_group: Mapping[int, tuple[float, int]], weights: Mapping[int, float]
) -> float:
    """Per-group accuracies averaged with ``weights`` (e.g. training group proportions).

    Weights are renormalised over the groups present in ``per_group``, so weights of groups absent
    from the evaluation set are ignored. A present group without a weight is an error, because
    silently giving it weight 0 would hide it from the metric.
    """
    _check_groups(per_group)
    missing = [g for g in per_group if g not in weights]
    if missing:
        raise StarftError(f"group weights: no weight for group id(s) {missing}")
    negative = {g: w for g, w in weights.items() if w < 0}
    if negative:
        raise StarftError(f"group weights must be >= 0, got {negative}")
    total = sum(weights[g] for g in per_group)
    if total <= 0:
        raise StarftError("group weights: the groups present have a total weight of 0")
    return sum(weights[g] * acc for g, (acc, _) in per_group.items()) / total


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins over (0, 1], over the whole set.

    confidence = max class probability; bin b holds confidences in (b/n_bins, (b+1)/n_bins] (a
    confidence of exactly 0 goes to the first bin). ECE = Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|.
    """
    if probs.ndim != 2:
        raise ValueError(
            f"expected_calibration_error: probs must be [N, C], not {tuple(probs.shape)}"
        )
    _check_same_length(probs, labels, "expected_calibration_error")
    _check_nonempty(labels)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, pred = probs.double().max(dim=1)
    correct = (pred == labels).double()
    inner_edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)[1:-1]
    # right=False: edges[i-1] < x <= edges[i] -> i, i.e. bins closed on the right.
    bins = torch.bucketize(conf, inner_edges, right=False)
    conf_sum = torch.bincount(bins, weights=conf, minlength=n_bins)
    acc_sum = torch.bincount(bins, weights=correct, minlength=n_bins)
    # |B|/N · |acc − conf| = |acc_sum − conf_sum| / N, which also makes empty bins contribute 0.
    return ((acc_sum - conf_sum).abs().sum() / labels.numel()).item()


def negative_log_likelihood(logits: Tensor, labels: Tensor) -> float:
    """Mean cross-entropy of ``labels`` under ``softmax(logits)``, computed in float64."""
    _check_same_length(logits, labels, "negative_log_likelihood")
    _check_nonempty(labels)
    return F.cross_entropy(logits.double(), labels.long(), reduction="mean").item()


def macro_f1(preds: Tensor, labels: Tensor) -> float:
    """Unweighted mean over the classes present in ``labels`` of F1 = 2·TP / (2·TP + FP + FN).

    The WILDS convention (the headline metric of iWildCam): classes that occur only among the
    predictions add their false positives to no class's average.
    """
    _check_same_length(preds, labels, "macro_f1")
    _check_nonempty(labels)
    n = int(max(preds.max().item(), labels.max().item())) + 1
    tp = torch.bincount(labels[preds == labels], minlength=n).double()
    support = torch.bincount(labels, minlength=n).double()
    predicted = torch.bincount(preds, minlength=n).double()
    present = support > 0
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    return f1.mean().item()


def per_class_accuracy(preds: Tensor, labels: Tensor) -> float:
    """Mean over the classes present in ``labels`` of their accuracy (balanced accuracy)."""
    _check_same_length(preds, labels, "per_class_accuracy")
    _check_nonempty(labels)
    n = int(labels.max().item()) + 1
    hits = torch.bincount(labels[preds == labels], minlength=n).double()
    support = torch.bincount(labels, minlength=n).double()
    present = support > 0
    return (hits[present] / support[present]).mean().item()


def _group_name(gid: int, group_names: Sequence[str] | None) -> str:
    if group_names is None:
        return str(gid)
    if gid >= len(group_names):
        raise StarftError(
            f"group id {gid} has no name: the dataset lists {len(group_names)} group names"
        )
    return str(group_names[gid])


def compute_metrics(
    logits: Tensor,
    labels: Tensor,
    groups: Tensor | None = None,
    group_names: Sequence[str] | None = None,
    minority_groups: Sequence[int] | None = None,
    region_logits: Tensor | None = None,
) -> tuple[dict, dict]:
    """Every registered metric (:data:`starft.eval.metric_registry.METRICS`) that applies.

    Returns ``(metrics, per_group)``. ``metrics`` holds the metrics that need no groups
    (``top1, ece, nll, macro_f1, per_class_acc``), ``n_samples`` and, when ``groups`` has at least
    one id >= 0, the group metrics (``worst_group_acc``, ``avg_group_acc``: unweighted mean over
    groups, see :func:`average_group_accuracy`; with ``minority_groups`` ids also
    ``minority_group_acc``/``majority_group_acc``) and ``worst_group`` (its name; ties go to the
    lowest group id). ``per_group`` maps the group name (or ``str(id)``) to ``{"acc", "n"}``.
    With ``region_logits`` (``[N, C]``, one ground-truth object region per sample, see
    :mod:`starft.eval.regions`) the region metrics are added too (``region_top1``, and with groups
    ``region_worst_group_acc``; ``per_group`` entries then also hold ``region_acc``).
    """
    from starft.eval.metric_registry import METRICS, MetricInput

    if logits.ndim != 2:
        raise ValueError(f"compute_metrics: logits must be [N, C], got {tuple(logits.shape)}")
    _check_same_length(logits, labels, "compute_metrics")
    _check_nonempty(labels)
    labels = labels.long()
    n_classes = logits.shape[1]
    bad = labels[(labels < 0) | (labels >= n_classes)]
    if bad.numel():
        raise StarftError(
            f"label {bad[0].item()} is outside the {n_classes} classes of the logits "
            "(for class subsets, project the logits and remap the labels to subset positions)"
        )
    logits = logits.detach().cpu()
    labels = labels.cpu()
    by_id = (
        {} if groups is None else group_accuracies(logits.argmax(1), labels, groups.long().cpu())
    )
    region_by_id: dict = {}
    if region_logits is not None:
        if region_logits.shape != logits.shape:
            raise StarftError(
                f"compute_metrics: region_logits {tuple(region_logits.shape)} must match the "
                f"image logits {tuple(logits.shape)}"
            )
        region_logits = region_logits.detach().cpu()
        if groups is not None:
            region_by_id = group_accuracies(region_logits.argmax(1), labels, groups.long().cpu())
    data = MetricInput(logits, labels, by_id, minority_groups, region_logits, region_by_id)
    metrics: dict = {}
    for entry in METRICS.in_order():
        if (
            entry.obj.needs_groups
            or entry.obj.needs_relevance
            or (entry.obj.needs_regions and region_logits is None)
        ):
            continue
        metrics[entry.name] = entry.obj.fn(data)
    metrics["n_samples"] = int(labels.numel())
    per_group: dict = {}
    if not by_id:
        return metrics, per_group
    for gid, (acc, n) in by_id.items():
        per_group[_group_name(gid, group_names)] = {"acc": acc, "n": n}
        if gid in region_by_id:
            per_group[_group_name(gid, group_names)]["region_acc"] = region_by_id[gid][0]
    for entry in METRICS.in_order():
        if entry.obj.needs_regions and region_logits is None:
            continue
        if entry.obj.needs_groups:
            value = entry.obj.fn(data)
            if value is not None:
                metrics[entry.name] = value
    worst_id = min(by_id, key=lambda g: (by_id[g][0], g))
    metrics["worst_group"] = _group_name(worst_id, group_names)
    return metrics, per_group


def project_logits(logits: Tensor, class_indices: Sequence[int]) -> Tensor:
    """Keep only the columns ``class_indices`` (in that order), e.g. ImageNet-R/-A's 200 classes.

    Column j of the result is class ``class_indices[j]``; labels must be expressed in these subset
    positions before computing metrics.
    """
    if len(class_indices) == 0:
        raise ValueError("project_logits: class_indices is empty")
    index = torch.as_tensor(list(class_indices), dtype=torch.long, device=logits.device)
    n_classes = logits.shape[-1]
    if index.min().item() < 0 or index.max().item() >= n_classes:
        raise ValueError(f"project_logits: class_indices must lie in [0, {n_classes})")
    if torch.unique(index).numel() != index.numel():
        raise ValueError("project_logits: class_indices contains duplicates")
    return logits.index_select(-1, index)

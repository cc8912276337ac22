import math

import pytest
import torch

from starft.errors import StarftError
from starft.eval.metrics import (
    average_group_accuracy,
    compute_metrics,
    expected_calibration_error,
    group_accuracies,
    negative_log_likelihood,
    project_logits,
    top1_accuracy,
    weighted_group_accuracy,
    worst_group_accuracy,
)

# 6 samples, 3 groups of sizes 3/2/1 (uneven, so sample- and group-averages differ):
#   group 0: preds 0,1,1 vs labels 0,1,0 -> 2/3
#   group 1: preds 0,2   vs labels 0,2   -> 1
#   group 2: preds 2     vs labels 1     -> 0
# top1 = 4/6, unweighted group mean = (2/3 + 1 + 0) / 3 = 5/9, worst = 0 (group 2).
PREDS = torch.tensor([0, 1, 1, 0, 2, 2])
LABELS = torch.tensor([0, 1, 0, 0, 2, 1])
GROUPS = torch.tensor([0, 0, 0, 1, 1, 2])


def one_hot_logits(preds: torch.Tensor, n_classes: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(preds, n_classes).float() * 5.0


def test_top1_and_group_accuracies_hand_computed():
    assert top1_accuracy(PREDS, LABELS) == pytest.approx(4 / 6)
    per_group = group_accuracies(PREDS, LABELS, GROUPS)
    assert list(per_group) == [0, 1, 2]
    assert per_group[0] == (pytest.approx(2 / 3), 3)
    assert per_group[1] == (1.0, 2)
    assert per_group[2] == (0.0, 1)
    assert worst_group_accuracy(per_group) == 0.0
    assert average_group_accuracy(per_group) == pytest.approx(5 / 9)
    # 0.5 * 2/3 + 0.3 * 1 + 0.2 * 0 = 0.6333...
    weights = {0: 0.5, 1: 0.3, 2: 0.2}
    assert weighted_group_accuracy(per_group, weights) == pytest.approx(0.5 * 2 / 3 + 0.3)


def test_negative_group_ids_are_ignored():
    groups = torch.tensor([0, 0, 0, 1, 1, -1])
    per_group = group_accuracies(PREDS, LABELS, groups)
    assert set(per_group) == {0, 1}
    assert sum(n for _, n in per_group.values()) == 5


def test_weighted_group_accuracy_renormalises_and_validates():
    per_group = {0: (1.0, 10), 1: (0.0, 10)}
    # Weight of group 7 (absent from the evaluation set) is ignored: 3/(3+1).
    assert weighted_group_accuracy(per_group, {0: 3.0, 1: 1.0, 7: 5.0}) == pytest.approx(0.75)
    with pytest.raises(StarftError, match=r"\[1\]"):
        weighted_group_accuracy(per_group, {0: 1.0})
    with pytest.raises(StarftError):
        weighted_group_accuracy(per_group, {0: 0.0, 1: 0.0})
    with pytest.raises(StarftError):
        worst_group_accuracy({})


def test_compute_metrics_with_named_groups():
    metrics, per_group = compute_metrics(one_hot_logits(PREDS), LABELS, GROUPS, ["a", "b", "c"])
    assert list(metrics) == [
        "top1",
        "ece",
        "nll",
        "macro_f1",
        "per_class_acc",
        "n_samples",
        "worst_group_acc",
        "avg_group_acc",
        "worst_group",
    ]
    assert metrics["top1"] == pytest.approx(4 / 6)
    assert metrics["n_samples"] == 6
    assert metrics["worst_group_acc"] == 0.0
    assert metrics["avg_group_acc"] == pytest.approx(5 / 9)
    assert metrics["worst_group"] == "c"
    assert per_group == {
        "a": {"acc": pytest.approx(2 / 3), "n": 3},
        "b": {"acc": 1.0, "n": 2},
        "c": {"acc": 0.0, "n": 1},
    }


def test_compute_metrics_without_names_and_without_groups():
    metrics, per_group = compute_metrics(one_hot_logits(PREDS), LABELS, GROUPS)
    assert set(per_group) == {"0", "1", "2"} and metrics["worst_group"] == "2"
    metrics, per_group = compute_metrics(one_hot_logits(PREDS), LABELS)
    assert per_group == {} and "worst_group_acc" not in metrics
    # All ids < 0 behaves like "no groups".
    metrics, per_group = compute_metrics(one_hot_logits(PREDS), LABELS, torch.full((6,), -1))
    assert per_group == {} and "worst_group_acc" not in metrics


def test_compute_metrics_one_group_and_class_subset():
    # 5 classes, but only classes 0 and 3 occur in the labels.
    logits = torch.tensor([[3.0, 0, 0, 1, 0], [0, 0, 0, 2, 0], [0, 4, 0, 0, 0], [1, 0, 0, 0, 0]])
    labels = torch.tensor([0, 3, 3, 0])
    metrics, per_group = compute_metrics(logits, labels, torch.zeros(4, dtype=torch.long), ["all"])
    assert metrics["top1"] == 0.75
    assert metrics["worst_group_acc"] == metrics["avg_group_acc"] == metrics["top1"]
    assert per_group == {"all": {"acc": 0.75, "n": 4}}


def test_compute_metrics_errors():
    with pytest.raises(StarftError, match="no samples to evaluate"):
        compute_metrics(torch.empty(0, 3), torch.empty(0, dtype=torch.long))
    with pytest.raises(StarftError, match="label 5"):
        compute_metrics(torch.zeros(2, 3), torch.tensor([0, 5]))
    with pytest.raises(StarftError, match="group id 2"):
        compute_metrics(one_hot_logits(PREDS), LABELS, GROUPS, ["a", "b"])


def test_ece_hand_computed():
    # Binary probs; confidence = max prob; 15 bins of width 1/15 closed on the right.
    #   conf 0.95 (bin 14, correct)  -> |1 - 0.95|          = 0.05
    #   conf 0.90 (bin 13, wrong)    -> |0 - 0.90|          = 0.90
    #   conf 0.65, 0.62 (bin 9: (0.6, 0.667], one right) -> 2 * |0.5 - 0.635| = 0.27
    #   conf 0.75 (bin 11, correct)  -> |1 - 0.75|          = 0.25
    # ECE = (0.05 + 0.90 + 0.27 + 0.25) / 5 = 0.294
    probs = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.35, 0.65], [0.62, 0.38], [0.25, 0.75]])
    labels = torch.tensor([0, 1, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.294)
    # Via compute_metrics from logits = log(probs): softmax recovers the same probabilities.
    metrics, _ = compute_metrics(probs.log(), labels)
    assert metrics["ece"] == pytest.approx(0.294, abs=1e-6)


def test_ece_bins_are_closed_on_the_right():
    # 2 bins: (0, 0.5], (0.5, 1]. conf 0.5 (correct) falls in the first bin on its own:
    # (|1 - 0.5| + |0 - 0.9|) / 2 = 0.7. Left-closed bins would give |0.5 - 0.7| = 0.2.
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    assert expected_calibration_error(probs, torch.tensor([0, 1]), n_bins=2) == pytest.approx(0.7)


def test_ece_over_whole_set_differs_from_per_batch_average():
    # All confidences 0.9, in one bin. Batch 1: both right (ECE 0.1); batch 2: both wrong
    # (ECE 0.9); per-batch mean 0.5. Whole set: acc 0.5 vs conf 0.9 -> 0.4.
    probs = torch.tensor([[0.9, 0.1]] * 4)
    labels = torch.tensor([0, 0, 1, 1])
    whole = expected_calibration_error(probs, labels)
    per_batch = [expected_calibration_error(probs[i : i + 2], labels[i : i + 2]) for i in (0, 2)]
    assert whole == pytest.approx(0.4)
    assert sum(per_batch) / 2 == pytest.approx(0.5)
    metrics, _ = compute_metrics(probs.log(), labels)
    assert metrics["ece"] == pytest.approx(0.4, abs=1e-6)


def test_nll_matches_manual_log_softmax():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 4, generator=gen) * 3
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    manual = 0.0
    for row, label in zip(logits.double().tolist(), labels.tolist()):
        log_z = math.log(sum(math.exp(v) for v in row))
        manual -= row[label] - log_z
    assert negative_log_likelihood(logits, labels) == pytest.approx(manual / 7, rel=1e-6)
    # float64 keeps huge logits finite where a naive float32 softmax would overflow.
    big = torch.tensor([[1e4, 0.0], [0.0, 1e4]])
    assert negative_log_likelihood(big, torch.tensor([0, 0])) == pytest.approx(5e3)


def test_project_logits_selects_columns_in_order():
    logits = torch.arange(12.0).reshape(2, 6)
    projected = project_logits(logits, [4, 1])
    assert torch.equal(projected, torch.tensor([[4.0, 1.0], [10.0, 7.0]]))
    for bad in ([], [6], [-1], [1, 1]):
        with pytest.raises(ValueError):
            project_logits(logits, bad)


def test_macro_f1_and_per_class_accuracy_by_hand():
    from starft.eval.metrics import macro_f1, per_class_accuracy

    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 2, 3])  # class 3 only predicted: a false positive only
    # F1: class 0 = 2·2/(3+2) = 0.8; class 1 = 2·1/(1+2) = 2/3; class 2 = 2·1/(2+1) = 2/3.
    assert macro_f1(preds, labels) == pytest.approx((0.8 + 2 / 3 + 2 / 3) / 3)
    assert per_class_accuracy(preds, labels) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)


def test_adding_a_metric_is_one_registration(monkeypatch):
    from starft.eval.metric_registry import METRICS, Metric
    from starft.eval.suites import parse_suite

    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))
    METRICS.add(
        "error_rate",
        Metric(
            lambda d: 1 - (d.preds == d.labels).double().mean().item(),
            "error",
            "Err",
            higher_is_better=False,
        ),
        "1 - top-1",
    )
    metrics, _ = compute_metrics(one_hot_logits(PREDS), LABELS)
    assert metrics["error_rate"] == pytest.approx(1 - metrics["top1"])
    suite = parse_suite(
        {"name": "s", "datasets": [{"dataset": "d", "metrics": ["error_rate"]}]}, "t"
    )
    assert suite.entries[0].metrics == {"error_rate": "Err"}


def test_minority_and_majority_group_accuracy():
    metrics, _ = compute_metrics(one_hot_logits(PREDS), LABELS, GROUPS, minority_groups=[2])
    by_group = compute_metrics(one_hot_logits(PREDS), LABELS, GROUPS)[1]
    assert metrics["minority_group_acc"] == by_group["2"]["acc"]
    assert metrics["majority_group_acc"] == pytest.approx(
        (by_group["0"]["acc"] + by_group["1"]["acc"]) / 2
    )

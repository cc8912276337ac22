"""Relevance alignment metrics in the metric registry and in suites (``axis: alignment``)."""

from __future__ import annotations

import pytest
import torch

from starft.data import create_dataset
from starft.errors import StarftError
from starft.eval.harness import ModelSubject, evaluate_entries
from starft.eval.metric_registry import METRICS, relevance_metric_names, selectable_metrics
from starft.eval.suites import SuiteEntry, parse_entry
from starft.explain import ALIGNMENT_METRICS, alignment_metrics, explain
from starft.models import build_zeroshot_head

ARGS = {"per_group": 1, "fields": "mask", "mask_mode": "binary"}


def test_alignment_metrics_are_registered_with_their_direction():
    assert relevance_metric_names() == list(ALIGNMENT_METRICS)
    for name, higher in ALIGNMENT_METRICS.items():
        assert METRICS.get(name).higher_is_better is higher
        assert name not in selectable_metrics()  # not computed on validation predictions
    assert "nll" in selectable_metrics() and not METRICS.get("nll").higher_is_better


def test_a_relevance_metric_needs_the_alignment_axis():
    entry = parse_entry(
        {"dataset": "sandbox_groups", "metrics": ["miou", "top1"], "axis": "alignment"}, "s", "e"
    )
    assert entry.axis == "alignment" and list(entry.metrics) == ["miou", "top1"]
    with pytest.raises(
        StarftError, match="metric 'miou' needs relevance maps: set axis: alignment"
    ):
        parse_entry({"dataset": "sandbox_groups", "metrics": ["miou"], "axis": "id"}, "s", "e")


def test_alignment_entry_scores_the_true_label_maps_against_the_masks(tiny_model):
    model = tiny_model.eval()
    dataset = create_dataset("sandbox_groups", **ARGS, transform=model.preprocess_val)
    entry = SuiteEntry(
        dataset="sandbox_groups",
        label="groups-masks",
        metrics={"miou": "mIoU", "energy_in_mask": "EiM"},
        args=ARGS,
        axis="alignment",
    )
    (outcome,) = evaluate_entries(
        ModelSubject(model), [entry], datasets={"groups-masks": dataset}, batch_size=256
    )
    # the same maps by hand: every sample, its true label, the dataset's zero-shot head
    samples = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([s["image"] for s in samples])
    labels = torch.tensor([s["label"] for s in samples])
    head = build_zeroshot_head(model, dataset.classnames, dataset.templates)
    maps = explain(model, images, head, labels).maps.detach()
    expected = alignment_metrics(maps, torch.stack([s["mask"] for s in samples]))
    for name in ALIGNMENT_METRICS:
        assert outcome.metrics[name] == pytest.approx(
            expected[name], abs=1e-9
        )  # one identical batch
    assert outcome.metrics["n_alignment_images"] == len(dataset)
    assert "top1" in outcome.metrics  # the accuracy metrics are computed as for any entry


def test_alignment_entry_without_masks_is_one_clear_error(tiny_model):
    dataset = create_dataset("sandbox_groups", per_group=1, transform=tiny_model.preprocess_val)
    entry = SuiteEntry(
        dataset="sandbox_groups", label="g", metrics={"miou": "mIoU"}, axis="alignment"
    )
    with pytest.raises(StarftError, match="entry g: an alignment entry needs samples with masks"):
        evaluate_entries(ModelSubject(tiny_model), [entry], datasets={"g": dataset})

"""Sandbox markers: RaVL-style contingency tables, glyphs clear of the object, exact boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from starft.data import DATASETS
from starft.errors import StarftError
from starft.sandbox.contingency import (
    balanced_markers,
    class_counts,
    confounded_table,
    cramers_v,
)
from starft.sandbox.datasets import SandboxDataset
from starft.sandbox.fields import MarkerPlan
from starft.sandbox.layers import object_mask, row_object
from starft.sandbox.markers import marker_kinds
from starft.sandbox.world import sample_attributes, vocabulary


@pytest.mark.parametrize("target", [0.7, 0.8, 0.9, 0.95, 0.99])
def test_achieved_cramers_v_is_within_0_01_of_the_target(target: float) -> None:
    for seed in range(3):
        rng = np.random.default_rng(seed)
        counts = class_counts(2000, 10, rng)
        assert (np.abs(counts - 200) <= 20).all()
        table = confounded_table(counts, 3, target, rng)
        assert target - 0.01 <= table.cramers_v <= target
        assert table.cramers_v == pytest.approx(cramers_v(table.counts, table.marked))
        rate = table.marked / table.counts
        assert rate[3] == rate.max() and (table.marked <= table.counts).all()


def test_cramers_v_extremes_and_bad_targets() -> None:
    counts = np.array([50, 60, 70])
    assert cramers_v(counts, np.array([50, 0, 0])) == pytest.approx(1.0)
    assert cramers_v(counts, np.array([25, 30, 35])) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    assert confounded_table(counts, 0, 1.0, rng).cramers_v == pytest.approx(1.0)
    with pytest.raises(StarftError, match="Cramér's V must lie in"):
        confounded_table(counts, 0, 0.0, rng)
    with pytest.raises(StarftError, match="spurious class 5 outside"):
        confounded_table(counts, 5, 0.9, rng)
    with pytest.raises(StarftError, match="use n > 210"):
        class_counts(200, 10, rng)


def test_evaluation_markers_are_half_of_every_class() -> None:
    labels = np.repeat(np.arange(10), 101)
    present = balanced_markers(labels, np.random.default_rng(0))
    per_class = np.bincount(labels, weights=present)
    assert ((per_class == 50) | (per_class == 51)).all()


def test_marker_dataset_records_v_and_markers_never_touch_objects() -> None:
    ds = DATASETS.get("sandbox_markers")(n=400, cramers_v=0.8, kind="dot", fields="boxes,mask")
    plain = DATASETS.get("sandbox_markers")(n=400, cramers_v=0.8, kind="dot")
    assert ds.markers is not None and abs(ds.markers.cramers_v - 0.8) <= 0.02
    labels = np.array(ds.labels)
    counts = np.bincount(labels, minlength=10)
    assert cramers_v(counts, np.bincount(labels, weights=ds.markers.present, minlength=10)) == (
        pytest.approx(ds.markers.cramers_v)
    )
    assert np.array_equal(ds.images, plain.images)  # fields change no pixel
    star = vocabulary("shape").index("star")
    assert ds.groups is not None and ds.group_names is not None
    assert ds.group_names[star * 2 : star * 2 + 2] == ["star|none", "star|dot"]
    marked = np.flatnonzero(ds.markers.present)
    assert len(marked) > 20
    for index in marked[:40]:
        sample = ds[int(index)]
        x0, y0, x1, y1 = sample["boxes"][0].int().tolist()
        assert sample["box_labels"].tolist() == [marker_kinds().index("dot")]
        assert sample["mask"][y0:y1, x0:x1].sum() == 0  # never on the object
        assert ds.groups[index] == ds.labels[index] * 2 + 1
    unmarked = np.flatnonzero(~ds.markers.present)[0]
    assert ds[int(unmarked)]["boxes"].shape == (0, 4)


def test_markers_change_only_their_box_and_sit_in_one_grid_cell() -> None:
    n = 60
    rng = np.random.default_rng(4)
    table = sample_attributes(n, rng, style=0)
    kwargs = {"label_attribute": "shape", "seed": 9, "image_size": 64}
    base = SandboxDataset(table, **kwargs)
    for kind in marker_kinds():
        plan = MarkerPlan(kind=kind, grid=4, present=np.ones(n, bool))
        ds = SandboxDataset(table, markers=plan, **kwargs)
        for i in range(n):
            x0, y0, x1, y1 = ds.marker_boxes[i].astype(int)
            assert x1 - x0 == y1 - y0 == 10  # 0.15 x the 64 px side
            assert x0 // 16 == (x1 - 1) // 16 and y0 // 16 == (y1 - 1) // 16  # one cell
            changed = np.any(ds.images[i] != base.images[i], axis=-1)
            outside = changed.copy()
            outside[y0:y1, x0:x1] = False
            assert not outside.any() and changed.sum() > 10, (kind, i)
            obj = row_object(table[i], 9, i, 64)
            # Clear of the object by the clearance (3.2 px): the box grown by 2 px in every
            # direction (2.8 px at the corners) never meets object coverage.
            assert object_mask(obj)[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2].sum() == 0


def test_marker_arguments_are_checked() -> None:
    with pytest.raises(StarftError, match="unknown marker kind 'star'"):
        DATASETS.get("sandbox_markers")(n=400, kind="star")
    with pytest.raises(StarftError, match="has 4 px cells, smaller than the 10 px marker"):
        DATASETS.get("sandbox_markers_eval")(n=20, grid=16)
    with pytest.raises(StarftError, match="spurious class 'blob' is not a shape"):
        DATASETS.get("sandbox_markers")(n=400, spurious="blob")
    ev = DATASETS.get("sandbox_markers_eval")(n=100, kind="xmark", grid=3, fields="boxes")
    assert ev.markers is not None and ev.markers.present.sum() == 50
    assert ev.minority_groups is not None and len(ev.minority_groups) == 10
    boxes = [ev[i]["boxes"] for i in range(len(ev))]
    assert sum(len(b) for b in boxes) == 50 and all(b.dtype == torch.float32 for b in boxes)


def test_fields_follow_the_image_through_the_transform():
    """Masks and marker boxes go through the dataset's transform with the image (one v2 call)."""
    from torchvision.transforms import v2

    native = DATASETS.get("sandbox_markers")(n=300, cramers_v=0.9, kind="plus", fields="mask,boxes")
    flipped = DATASETS.get("sandbox_markers")(
        n=300,
        cramers_v=0.9,
        kind="plus",
        fields="mask,boxes",
        transform=v2.Compose([v2.PILToTensor(), v2.RandomHorizontalFlip(p=1.0)]),
    )
    assert {"mask", "boxes", "box_labels"} <= flipped.sample_keys
    with_box = next(i for i in range(300) if len(native[i]["boxes"]))
    a, b = native[with_box], flipped[with_box]
    width = a["mask"].shape[-1]
    assert torch.equal(b["mask"], a["mask"].flip(-1))
    x1, y1, x2, y2 = a["boxes"][0].tolist()
    assert b["boxes"][0].tolist() == [width - x2, y1, width - x1, y2]
    assert b["box_labels"].tolist() == a["box_labels"].tolist()

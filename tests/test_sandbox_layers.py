"""Sandbox masks and parts: replayed from each image's own stream, pixels unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from starft.data import collate_samples
from starft.errors import StarftError
from starft.sandbox import layers
from starft.sandbox.layers import (
    max_parts,
    object_mask,
    part_masks,
    part_names,
    row_object,
    shape_parts,
)
from starft.sandbox.tasks import sandbox_groups, sandbox_train
from starft.sandbox.world import AttributeTable, render_table, vocabulary

REFERENCE = Path(__file__).parent / "data" / "sandbox_reference_images.npz"


def _table(n: int) -> AttributeTable:
    i = np.arange(n)
    return AttributeTable(shape=i % 10, colour=(i * 3) % 8, scene=(i * 5) % 8, style=i % 5)


def test_todays_images_are_unchanged() -> None:
    """Images of the renderer before masks existed (every shape and style, two seeds/sizes).

    The reference was rendered on one machine; another CPU kind may round a rare pixel
    differently, but any change of what the renderer draws or in what order changes most pixels.
    """
    reference = np.load(REFERENCE)
    table = _table(10)
    for key, images in (
        ("seed5_size64", render_table(table, 5, 64)),
        ("seed9_size32_start100", render_table(table, 9, 32, start=100)),
    ):
        expected = reference[key]
        assert images.shape == expected.shape
        assert (images != expected).mean() < 1e-3, key


def test_mask_of_every_row_is_the_replay_and_chunking_does_not_matter() -> None:
    table = _table(30)
    whole = np.empty((30, 48, 48), np.float32)
    images = render_table(table, 3, 48, masks=whole)
    chunked = np.empty_like(whole)
    chunked_images = np.empty_like(images)
    for start, stop in ((0, 7), (7, 8), (8, 30)):
        render_table(
            table.subset(np.arange(start, stop)),
            3,
            48,
            start=start,
            out=chunked_images[start:stop],
            masks=chunked[start:stop],
        )
    assert np.array_equal(images, chunked_images)
    assert np.array_equal(whole, chunked)
    for i in range(30):
        replay = object_mask(row_object(table[i], 3, i, 48))
        assert np.array_equal(replay, whole[i]), i
    assert 0.03 < whole.mean() < 0.5 and whole.max() == 1.0
    with pytest.raises(StarftError, match="masks must be float32"):
        render_table(table, 3, 48, masks=np.empty((30, 48, 48), np.float64))


def test_mask_marks_the_drawn_object() -> None:
    """Cartoon objects are flat colour over a palette-snapped scene: the binary mask must be
    where the object's colour is, and the scene mask where it is not."""
    n = 10
    table = AttributeTable(
        shape=np.arange(n), colour=np.full(n, 2), scene=np.full(n, 3), style=np.full(n, 2)
    )
    images = render_table(table, 0, 64).astype(int)
    blue = np.array([30, 70, 235])
    for i in range(n):
        obj = row_object(table[i], 0, i, 64)
        binary = object_mask(obj, "binary").astype(bool)
        close = np.abs(images[i] - blue).sum(-1) < 60
        # Inside, away from the 3 px outline: object colour; outside, never the object colour.
        core = object_mask(obj, "binary").astype(bool) & (obj.d < -3)
        assert close[core].mean() > 0.99, i
        assert close[~binary].mean() < 0.01, i


def test_parts_partition_the_mask_and_follow_the_table() -> None:
    names = part_names()
    assert set(names) == set(vocabulary("shape"))
    assert names["star"] == ("tips", "core") and names["arrow"] == ("head", "shaft")
    assert names["moon"] == ("belly", "horns") and names["ring"] == ("band",)
    assert max_parts() == max(len(v) for v in names.values())
    table = _table(20)
    for i in range(20):
        shape = vocabulary("shape")[table[i]["shape"]]
        obj = row_object(table[i], 1, i, 64)
        for mode in ("soft", "binary"):
            parts = part_masks(shape, obj, mode)
            assert parts.shape == (len(names[shape]), 64, 64)
            np.testing.assert_array_equal(parts.sum(0), object_mask(obj, mode))
            assert ((parts > 0).sum(0) <= 1).all()  # each pixel in one part
            assert all(part.sum() > 0 for part in parts), (shape, mode)
    assert shape_parts("star").weights == (2.0, 1.0)


def test_star_tips_are_far_from_the_centre_and_arrow_head_is_ahead() -> None:
    """Parts follow the pose: the star's tips lie farther out than its core, whatever the
    rotation; an arrow's head lies on one side of its shaft."""
    star = vocabulary("shape").index("star")
    for i in range(10):
        attrs = {"shape": star, "colour": 0, "scene": 0, "style": 0}
        obj = row_object(attrs, 7, i, 64)
        tips, core = part_masks("star", obj, "binary")
        ys, xs = np.nonzero(tips + core)
        cy, cx = ys.mean(), xs.mean()
        dist = np.hypot(*np.mgrid[0:64, 0:64] - np.array([cy, cx])[:, None, None])
        assert dist[tips > 0].mean() > 1.5 * dist[core > 0].mean()


def test_bad_part_tables_fail_with_one_line(monkeypatch) -> None:
    def table_with(entries):
        monkeypatch.setattr(layers, "read_sandbox_json", lambda name: {"parts": entries})
        layers._part_table.cache_clear()
        try:
            return layers._part_table()
        finally:
            layers._part_table.cache_clear()

    good = {shape: [{"name": "all", "weight": 1.0}] for shape in vocabulary("shape")}
    assert table_with(good)["star"].names == ("all",)
    cases = [
        ({**good, "blob": good["star"]}, "unknown shape 'blob'"),
        ({k: v for k, v in good.items() if k != "moon"}, "no parts for 'moon'"),
        ({**good, "star": [{"name": "tips", "weight": 0}]}, "needs a weight > 0"),
        (
            {**good, "star": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
            "has no 'where' but is not last",
        ),
        (
            {
                **good,
                "star": [
                    {"name": "a", "weight": 1, "where": [{"of": "size", "min": 0}]},
                    {"name": "b", "weight": 1},
                ],
            },
            "unknown quantity 'size'",
        ),
        (
            {
                **good,
                "star": [
                    {"name": "a", "weight": 1, "where": [{"of": "radius", "min": 5}]},
                    {"name": "b", "weight": 1},
                ],
            },
            "covers 0.0% of the shape",
        ),
    ]
    for entries, message in cases:
        with pytest.raises(StarftError, match=message):
            table_with(entries)


def test_dataset_fields_only_when_asked() -> None:
    plain = sandbox_train(n=4)
    assert set(plain[0]) == {"image", "label", "group", "index"}
    ds = sandbox_groups(per_group=1, fields="mask,scene_mask,parts,boxes", mask_mode="binary")
    sample = ds[5]
    assert sample["mask"].dtype == torch.float32 and sample["mask"].shape == (64, 64)
    assert set(sample["mask"].unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(sample["scene_mask"], 1 - sample["mask"])
    assert sample["parts"].shape == (max_parts(), 64, 64)
    assert sample["part_weights"].shape == (max_parts(),)
    shape = ds.table.words(5)["shape"]
    count = len(ds.part_names[shape])
    assert (sample["part_weights"][count:] == 0).all() and (
        sample["part_weights"][:count] > 0
    ).all()
    torch.testing.assert_close(sample["parts"].sum(0), sample["mask"])
    assert sample["boxes"].shape == (0, 4) and sample["box_labels"].dtype == torch.int64
    assert np.array_equal(ds.images, sandbox_groups(per_group=1).images)
    batch = collate_samples([ds[i] for i in range(4)])  # fixed-size fields stack
    assert batch["mask"].shape == (4, 64, 64) and batch["parts"].shape == (4, max_parts(), 64, 64)
    soft = sandbox_groups(per_group=1, fields=["mask"])[5]["mask"]
    assert ((soft > 0) & (soft < 1)).any()  # anti-aliased edge
    with pytest.raises(StarftError, match="unknown field 'depth'"):
        sandbox_groups(per_group=1, fields="mask,depth")
    with pytest.raises(StarftError, match="mask_mode must be one of soft, binary"):
        sandbox_groups(per_group=1, fields="mask", mask_mode="hard")


def test_contact_sheet_command_writes_a_png(tmp_path: Path) -> None:
    from PIL import Image

    from starft.cli.main import main

    out = tmp_path / "sheet.png"
    assert main(["sandbox", "sheet", "--out", str(out), "--rows", "3"]) == 0
    with Image.open(out) as sheet:
        assert sheet.size[1] > 3 * 128 and sheet.size[0] > 4 * 128

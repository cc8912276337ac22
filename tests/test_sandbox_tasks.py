"""Sandbox datasets and tasks: labels, groups, captions, distributions and split disjointness."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch

from starft.data import DATASETS, ClassificationDataset, collate_samples, create_dataset
from starft.errors import StarftError
from starft.sandbox import SandboxDataset, home_scenes, minority_groups, task_common, tasks
from starft.sandbox.world import render_table, sample_attributes, vocabulary
from starft.train.sampling import SeededSamples

SMALL = 16  # image size for tests: the task logic does not depend on it


def test_every_task_is_registered_with_a_description() -> None:
    for name in tasks.TASKS:
        assert name in DATASETS and DATASETS.entry(name).description.startswith("sandbox world")
    assert {"sandbox_train", "sandbox_groups", "sandbox_pretrain"} <= set(DATASETS.names())


def test_dataset_labels_groups_and_images() -> None:
    table = sample_attributes(12, np.random.default_rng(0))
    ds = SandboxDataset(
        table, label_attribute="scene", seed=5, image_size=SMALL, group_by=("shape", "colour")
    )
    assert isinstance(ds, ClassificationDataset) and len(ds) == 12
    assert ds.classnames == vocabulary("scene") and ds.labels == table["scene"].tolist()
    assert len(ds.group_names) == 80 and ds.group_names[:2] == ["circle|red", "circle|green"]
    assert ds.groups == (table["shape"] * 8 + table["colour"]).tolist()
    assert all("{}" in template for template in ds.templates)
    assert np.array_equal(ds.images, render_table(table, 5, SMALL))
    sample = ds[3]
    assert sample["label"] == ds.labels[3] and sample["group"] == ds.groups[3]
    assert np.array_equal(np.asarray(sample["image"]), ds.images[3])
    assert "caption" not in sample and ds.attributes(3) == table[3]
    assert "label='scene'" in repr(ds)
    with pytest.raises(StarftError, match="label_attribute must be one of"):
        SandboxDataset(table, label_attribute="size", seed=0)
    with pytest.raises(StarftError, match="group_by must name distinct keys"):
        SandboxDataset(table, label_attribute="shape", seed=0, group_by=("shape", "shape"))


def test_templates_read_well_for_every_class() -> None:
    for task in ("shape", "colour", "scene", "style"):
        for template in tasks.read_sandbox_json("tasks.json")["templates"][task]:
            for word in vocabulary(task):
                text = template.format(word)
                assert not re.search(r"\ba [aeiou]", text), text  # never "a orange", "a arrow"
                assert text.endswith(".")


def test_captions_come_from_the_seeded_torch_rng() -> None:
    ds = create_dataset("sandbox_pretrain", n=8, image_size=SMALL)
    assert ds.label_attribute == "shape" and ds.groups is None
    seeded = SeededSamples(ds, seed=3)
    epoch0 = [seeded[(0, i)]["caption"] for i in range(8)]
    assert epoch0 == [seeded[(0, i)]["caption"] for i in range(8)]  # reproducible
    epoch1 = [seeded[(1, i)]["caption"] for i in range(8)]
    assert epoch0 != epoch1  # fresh captions every epoch
    torch.manual_seed(0)
    batch = collate_samples([ds[i] for i in range(8)])
    assert all(isinstance(text, str) and text.endswith(".") for text in batch["caption"])


def test_train_split_home_scene_fraction() -> None:
    ds = create_dataset("sandbox_train", image_size=SMALL)  # default n=6000, correlation 0.95
    assert len(ds) == 6000 and ds.label_attribute == "shape"
    table = ds.table
    home = home_scenes()[table["shape"]] == table["scene"]
    assert abs(home.mean() - 0.95) < 0.02
    assert set(table["style"].tolist()) == {vocabulary("style").index("photo")}
    # Off-home scenes are spread over the other seven scenes, never the home one.
    away = table["scene"][~home] - home_scenes()[table["shape"][~home]]
    assert set((away % 8).tolist()) == set(range(1, 8))
    in_minority = np.isin(ds.groups, ds.minority_groups)
    assert np.array_equal(in_minority, ~home)
    assert home_scenes().tolist() == [k % 8 for k in range(10)]  # the documented rule


def test_correlation_extremes_and_errors() -> None:
    rng = np.random.default_rng(0)
    table = tasks.correlated_table(500, 1.0, rng)
    assert np.array_equal(table["scene"], home_scenes()[table["shape"]])
    table = tasks.correlated_table(500, 0.0, rng)
    assert not np.any(table["scene"] == home_scenes()[table["shape"]])
    with pytest.raises(StarftError, match="correlation must lie in"):
        create_dataset("sandbox_val", n=3, correlation=1.5, image_size=SMALL)


def test_groups_split_is_exactly_balanced() -> None:
    ds = create_dataset("sandbox_groups", per_group=3, image_size=SMALL)
    assert len(ds) == 240 and len(ds.group_names) == 80
    assert np.bincount(ds.groups, minlength=80).tolist() == [3] * 80
    assert np.bincount(ds.labels).tolist() == [24] * 10
    assert len(ds.minority_groups) == 70 == len(minority_groups())
    majority = sorted(set(range(80)) - set(ds.minority_groups))
    for group in majority:
        shape, scene = ds.group_names[group].split("|")
        assert tasks.read_sandbox_json("tasks.json")["home_scene"][shape] == scene
    assert ds.groups != sorted(ds.groups)  # shuffled, not sorted by group


@pytest.mark.parametrize("style", ["sketch", "cartoon", "painting", "blurry"])
def test_style_split(style: str) -> None:
    ds = create_dataset("sandbox_style", style=style, n=20, image_size=SMALL)
    assert set(ds.table["style"].tolist()) == {vocabulary("style").index(style)}
    assert np.bincount(ds.labels).tolist() == [2] * 10  # shapes balanced
    assert ds.classnames == vocabulary("shape")


def test_zeroshot_and_transfer_splits() -> None:
    colour = create_dataset("sandbox_zeroshot", attribute="colour", n=80, image_size=SMALL)
    assert colour.classnames == vocabulary("colour")
    assert np.bincount(colour.labels).tolist() == [10] * 8
    assert vocabulary("style").index("sketch") not in colour.table["style"].tolist()
    style = create_dataset("sandbox_zeroshot", attribute="style", n=50, image_size=SMALL)
    assert np.bincount(style.labels).tolist() == [10] * 5
    scene = create_dataset("sandbox_transfer", attribute="scene", n=16, image_size=SMALL)
    assert scene.classnames == vocabulary("scene") and scene.labels == scene.table["scene"].tolist()
    assert set(scene.table["style"].tolist()) == {0}
    with pytest.raises(StarftError, match="'shape' is not one of colour, scene"):
        create_dataset("sandbox_transfer", attribute="shape", n=4)
    with pytest.raises(StarftError, match="'photo' is not one of sketch"):
        create_dataset("sandbox_style", style="photo", n=4)


def test_splits_are_deterministic() -> None:
    first = create_dataset("sandbox_val", n=20, image_size=SMALL)
    second = create_dataset("sandbox_val", n=20, image_size=SMALL)
    assert np.array_equal(first.images, second.images) and first.labels == second.labels
    other = create_dataset("sandbox_val", n=20, seed=99, image_size=SMALL)
    assert not np.array_equal(first.images, other.images)


def _hashes(ds: SandboxDataset) -> set[str]:
    return {hashlib.sha1(image.tobytes()).hexdigest() for image in ds.images}


def test_default_splits_share_no_image() -> None:
    """Every split has its own seed, so no image (hence no (seed, index) stream) is shared."""
    splits = {
        "pretrain": create_dataset("sandbox_pretrain", n=300, image_size=SMALL),
        "train": create_dataset("sandbox_train", n=300, image_size=SMALL),
        "val": create_dataset("sandbox_val", n=100, image_size=SMALL),
        "id_test": create_dataset("sandbox_id_test", n=100, image_size=SMALL),
        "groups": create_dataset("sandbox_groups", per_group=1, image_size=SMALL),
    }
    for attribute in ("shape", "colour", "scene", "style"):
        splits[f"zeroshot_{attribute}"] = create_dataset(
            "sandbox_zeroshot", attribute=attribute, n=40, image_size=SMALL
        )
    for style in ("sketch", "cartoon", "painting", "blurry"):
        splits[f"style_{style}"] = create_dataset(
            "sandbox_style", style=style, n=40, image_size=SMALL
        )
    for attribute in ("colour", "scene"):
        splits[f"transfer_{attribute}"] = create_dataset(
            "sandbox_transfer", attribute=attribute, n=40, image_size=SMALL
        )
    seeds = [ds.seed for ds in splits.values()]
    assert len(set(seeds)) == len(seeds)
    seen: dict[str, str] = {}
    for name, ds in splits.items():
        hashes = _hashes(ds)
        assert len(hashes) == len(ds), name  # no duplicate within a split either
        shared = [seen[h] for h in hashes if h in seen]
        assert not shared, (name, shared[:1])
        seen.update(dict.fromkeys(hashes, name))


def test_table_stream_differs_from_render_streams() -> None:
    """A task's attribute table is never drawn from an image's render generator."""
    table_draw = task_common.table_rng(1).random(4).tolist()
    for index in (0, 1, task_common.TABLE_STREAM):
        assert table_draw != np.random.default_rng((1, index)).random(4).tolist()

"""The superclass task: new class names over shapes, scene-biased splits, balanced groups."""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np
import pytest
import torch

from starft.data import DATASETS
from starft.sandbox.superclass import SUPERCLASS_TASKS, super_minority_groups, superclass_space
from starft.sandbox.world import ATTRIBUTES, vocabulary


def test_registered_and_label_space_is_new_words() -> None:
    for name in SUPERCLASS_TASKS:
        assert name in DATASETS
    space = superclass_space()
    assert space.classnames == ["pointed", "rounded"]
    captions = (resources.files("starft") / "resources/sandbox/captions.json").read_text()
    caption_words = set(re.findall(r"[a-z]+", json.dumps(json.loads(captions)).lower()))
    world_words = {w for a in ATTRIBUTES for w in vocabulary(a)}
    for name in space.classnames:
        assert name not in caption_words and name not in world_words
    shapes = vocabulary("shape")
    assert space.label_map[shapes.index("star")] == 0 and space.label_map[shapes.index("moon")] == 1
    assert sorted(np.bincount(space.label_map).tolist()) == [4, 6]


def test_splits_are_scene_biased_and_groups_balanced() -> None:
    space = superclass_space()
    train = DATASETS.get("sandbox_super_train")(n=2000, image_size=16)
    assert train.classnames == space.classnames and "object" in train.templates[0]
    labels = np.array(train.labels)
    home = space.class_homes[labels] == train.table["scene"]
    assert 0.93 < home.mean() < 0.97
    assert np.array_equal(labels, space.label_map[train.table["shape"]])
    assert train.groups == (labels * 8 + train.table["scene"]).tolist()
    groups = DATASETS.get("sandbox_super_groups")(per_group=3, image_size=16)
    assert len(groups) == 48 and np.bincount(groups.groups).tolist() == [3] * 16
    assert groups.group_names is not None and groups.group_names[0] == "pointed|water"
    assert groups.minority_groups == super_minority_groups() and len(super_minority_groups()) == 14
    sketch = DATASETS.get("sandbox_super_style")(style="sketch", n=20, image_size=16)
    assert set(sketch.table["style"].tolist()) == {vocabulary("style").index("sketch")}
    val = DATASETS.get("sandbox_super_val")(n=50, image_size=16)
    test = DATASETS.get("sandbox_super_id_test")(n=50, image_size=16)
    assert not np.array_equal(val.images, test.images)


def test_shipped_model_does_not_know_the_new_names() -> None:
    """Zero-shot in distribution stays weak (0.665 on the validation split): the label space is
    what fine-tuning must teach. 300 images of a fresh draw; a model that read the names would
    be near 1."""
    from starft.models import create_model
    from starft.models.zeroshot import build_zeroshot_head

    model = create_model("sandbox-clip").eval()
    ds = DATASETS.get("sandbox_super_id_test")(n=300, seed=900, transform=model.preprocess_val)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    with torch.no_grad():
        features = model.encode_image(images, normalize=True)
        head = build_zeroshot_head(model, ds.classnames, ds.templates)
    accuracy = ((features @ head.T).argmax(1) == torch.tensor(ds.labels)).float().mean().item()
    assert 0.5 <= accuracy <= 0.8, accuracy


@pytest.mark.parametrize("name", ["sandbox_super_train", "sandbox_super_groups"])
def test_superclass_datasets_take_fields(name: str) -> None:
    kwargs = {"n": 4} if name.endswith("train") else {"per_group": 1}
    sample = DATASETS.get(name)(**kwargs, fields="mask,parts")[0]
    assert sample["mask"].shape == (64, 64) and sample["parts"].shape[1:] == (64, 64)


def test_recipe_runs_the_superclass_task_on_disjoint_draws() -> None:
    from starft.demo.recipe import list_recipes, load_recipe

    assert "sandbox_super" in list_recipes()
    test, validation = load_recipe("sandbox_super"), load_recipe("sandbox_super", validation=True)
    data = test.train["data"]
    assert (data["dataset"], data["val_dataset"]) == ("sandbox_super_train", "sandbox_super_val")
    transfer = {"sandbox_transfer"}  # the other label spaces are the shape demo's sets
    for recipe in (test, validation):
        names = {s.dataset for s in recipe.evaluation} - transfer
        assert all(name.startswith("sandbox_super_") for name in names), names

    def draws(recipe):
        return {(s.dataset.removesuffix("_val").removesuffix("_id_test"), s.args["seed"])
                for s in recipe.evaluation}  # fmt: skip

    assert not draws(test) & draws(validation)
    used = {data["train"]["seed"], data["val"]["seed"]}
    assert all(s.args["seed"] not in used for s in test.evaluation)

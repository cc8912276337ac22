"""The superclass task: a label space the pretraining captions never name, biased by scene.

On the shape task the shipped model is already near-perfect zero-shot, so fine-tuning has little
to gain and the StarFT paper's trade-off (fine-tuning raises ID accuracy, and loses robustness
unless done carefully) cannot show. Here shapes are grouped into a few classes with new names
(as Waterbirds groups bird species into waterbird/landbird): zero-shot knows every shape but not
what the class names mean, so it is weak, and fine-tuning must teach the names. As in the shape
task, each class has a home scene that train/val/id_test photos sit on with probability
``correlation``, so fine-tuning can also learn the scene shortcut, which the balanced
class x scene groups expose (``sandbox_super_groups``). Classes, names, home scenes, templates
and seeds are data (``resources/sandbox/tasks.json``, key ``superclass``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.task_common import (
    TaskTable,
    biased_splits,
    build_dataset,
    default_seed,
    group_cells,
    sandbox_task,
    style_id,
    style_table,
)
from starft.sandbox.world import AttributeTable, sample_attributes, vocabulary

if TYPE_CHECKING:
    from starft.sandbox.datasets import SandboxDataset

_DEFAULTS: dict[str, Any] = read_sandbox_json("tasks.json")["superclass"]
GROUP_BY = ("label", "scene")
SUPERCLASS_TASKS: TaskTable = {}


@dataclass(frozen=True)
class SuperclassSpace:
    """Class names, the class of every shape id and the home scene id of every shape id."""

    classnames: list[str]
    label_map: np.ndarray  # (shapes,) class id per shape id
    homes: np.ndarray  # (shapes,) home scene id per shape id (its class's home)
    class_homes: np.ndarray  # (classes,) home scene id per class


@functools.cache
def superclass_space() -> SuperclassSpace:
    """The task's label space from tasks.json, checked: every shape in exactly one class."""
    classes, homes = _DEFAULTS["classes"], _DEFAULTS["home_scene"]
    shapes, scenes = vocabulary("shape"), vocabulary("scene")
    label_map = np.full(len(shapes), -1, np.int64)
    for class_id, (name, members) in enumerate(classes.items()):
        for shape in members:
            if shape not in shapes:
                raise StarftError(f"sandbox tasks.json: superclass '{name}': no shape '{shape}'")
            if label_map[shapes.index(shape)] >= 0:
                raise StarftError(f"sandbox tasks.json: shape '{shape}' is in two superclasses")
            label_map[shapes.index(shape)] = class_id
    if (label_map < 0).any():
        missing = shapes[int(np.flatnonzero(label_map < 0)[0])]
        raise StarftError(f"sandbox tasks.json: shape '{missing}' has no superclass")
    names = list(classes)
    clash = [
        name
        for name in names
        if name in {w for a in ("shape", "colour", "scene", "style") for w in vocabulary(a)}
    ]
    if clash:
        raise StarftError(f"sandbox tasks.json: superclass name '{clash[0]}' is a world word")
    if set(homes) != set(names) or any(homes[name] not in scenes for name in names):
        raise StarftError("sandbox tasks.json: superclass home_scene needs one scene per class")
    class_homes = np.array([scenes.index(homes[name]) for name in names], np.int64)
    return SuperclassSpace(names, label_map, class_homes[label_map], class_homes)


def super_minority_groups() -> list[int]:
    """Ids of the class x scene groups (``group_by=("label", "scene")``) off the home scene."""
    space = superclass_space()
    num_scenes = len(vocabulary("scene"))
    return [
        c * num_scenes + scene
        for c in range(len(space.classnames))
        for scene in range(num_scenes)
        if scene != space.class_homes[c]
    ]


def _super_dataset(
    table: AttributeTable, name: str, seed: int, render: dict[str, Any]
) -> SandboxDataset:
    space = superclass_space()
    templates = render["templates"]
    if templates is None:
        templates = list(_DEFAULTS["templates"])
    return build_dataset(
        table,
        name,
        seed,
        {**render, "templates": templates},
        classnames=space.classnames,
        label_map=space.label_map,
        group_by=GROUP_BY,
        minority_groups=super_minority_groups(),
    )


_SPLIT_TEXTS = {
    "train": (
        "sandbox world: shape superclass (new names) of photos, home scene 95% (n=6k)",
        "Superclass of photos, scene = the class's home scene with ``correlation``.",
    ),
    "val": (
        "sandbox world: validation split of sandbox_super_train",
        "Validation split of :func:`sandbox_super_train` (same distribution, its own seed).",
    ),
    "id_test": (
        "sandbox world: ID test split of sandbox_super_train",
        "ID test split of :func:`sandbox_super_train` (same distribution, its own seed).",
    ),
}
sandbox_super_train, sandbox_super_val, sandbox_super_id_test = biased_splits(
    SUPERCLASS_TASKS,
    "sandbox_super",
    _DEFAULTS,
    _SPLIT_TEXTS,
    lambda: superclass_space().homes,
    _super_dataset,
    __name__,
)


@sandbox_task(
    SUPERCLASS_TASKS,
    "sandbox world: balanced superclass x scene groups of photos, the worst-group test",
)
def sandbox_super_groups(
    *,
    per_group: int = _DEFAULTS["groups"]["per_group"],
    seed: int = _DEFAULTS["groups"]["seed"],
    **render: Any,
) -> SandboxDataset:
    """Exactly ``per_group`` photos of every class x scene group (shapes uniform in the class)."""
    space = superclass_space()
    num_classes = len(space.classnames)
    classes, scenes, rng = group_cells(per_group, num_classes, seed)
    members = [np.flatnonzero(space.label_map == c) for c in range(num_classes)]
    picks = rng.random(len(classes))
    shapes = np.array(
        [members[c][int(p * len(members[c]))] for c, p in zip(classes, picks)], np.int64
    )
    table = sample_attributes(
        len(classes), rng, shape=shapes, scene=scenes, style=style_id("photo")
    )
    return _super_dataset(table, "sandbox_super_groups", seed, render)


@sandbox_task(
    SUPERCLASS_TASKS,
    "sandbox world: the superclass task in another style (sketch/cartoon/painting/blurry)",
)
def sandbox_super_style(
    *,
    style: str = "sketch",
    n: int = _DEFAULTS["style"]["n"],
    seed: int | None = None,
    **render: Any,
) -> SandboxDataset:
    """The superclass task in another style (domain shift), shapes balanced, scenes uniform."""
    seeds = _DEFAULTS["style"]["seed"]
    seed = default_seed("sandbox_super_style", style, seed, seeds, tuple(seeds))
    table = style_table(n, style, seed)
    return _super_dataset(table, f"sandbox_super_style[{style}]", seed, render)

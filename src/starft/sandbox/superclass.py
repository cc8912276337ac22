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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.task_common import (
    IMAGE_SIZE,
    build_dataset,
    check_n,
    scene_biased_table,
    style_id,
    table_rng,
)
from starft.sandbox.world import balanced_ids, sample_attributes, vocabulary

if TYPE_CHECKING:
    from starft.data.base import Transform
    from starft.data.templates import TemplateSpec
    from starft.sandbox.datasets import SandboxDataset

_DEFAULTS: dict[str, Any] = read_sandbox_json("tasks.json")["superclass"]
GROUP_BY = ("label", "scene")


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


def _super_dataset(table: Any, name: str, seed: int, **kwargs: Any) -> SandboxDataset:
    space = superclass_space()
    templates = kwargs.pop("templates")
    return build_dataset(
        table,
        label_attribute="shape",
        classnames=space.classnames,
        label_map=space.label_map,
        templates=list(_DEFAULTS["templates"]) if templates is None else templates,
        seed=seed,
        group_by=GROUP_BY,
        minority_groups=super_minority_groups(),
        name=name,
        **kwargs,
    )


def _biased(name: str, n: int, correlation: float, seed: int, **kwargs: Any) -> SandboxDataset:
    check_n(n)
    table = scene_biased_table(n, correlation, table_rng(seed), superclass_space().homes)
    return _super_dataset(table, name, seed, **kwargs)


def sandbox_super_train(
    *,
    n: int = _DEFAULTS["train"]["n"],
    correlation: float = _DEFAULTS["train"]["correlation"],
    seed: int = _DEFAULTS["train"]["seed"],
    image_size: int = IMAGE_SIZE,
    transform: Transform | None = None,
    templates: TemplateSpec | None = None,
    on_bad_image: str = "error",
    fields: str | Sequence[str] | None = None,
    mask_mode: str = "soft",
) -> SandboxDataset:
    """Superclass of photos, scene = the class's home scene with ``correlation``."""
    return _biased(
        "sandbox_super_train", n, correlation, seed, image_size=image_size,
        transform=transform, templates=templates, on_bad_image=on_bad_image, fields=fields,
        mask_mode=mask_mode,
    )  # fmt: skip


def sandbox_super_val(
    *,
    n: int = _DEFAULTS["val"]["n"],
    correlation: float = _DEFAULTS["train"]["correlation"],
    seed: int = _DEFAULTS["val"]["seed"],
    image_size: int = IMAGE_SIZE,
    transform: Transform | None = None,
    templates: TemplateSpec | None = None,
    on_bad_image: str = "error",
    fields: str | Sequence[str] | None = None,
    mask_mode: str = "soft",
) -> SandboxDataset:
    """Validation split of :func:`sandbox_super_train` (same distribution, its own seed)."""
    return _biased(
        "sandbox_super_val", n, correlation, seed, image_size=image_size, transform=transform,
        templates=templates, on_bad_image=on_bad_image, fields=fields, mask_mode=mask_mode,
    )  # fmt: skip


def sandbox_super_id_test(
    *,
    n: int = _DEFAULTS["id_test"]["n"],
    correlation: float = _DEFAULTS["train"]["correlation"],
    seed: int = _DEFAULTS["id_test"]["seed"],
    image_size: int = IMAGE_SIZE,
    transform: Transform | None = None,
    templates: TemplateSpec | None = None,
    on_bad_image: str = "error",
    fields: str | Sequence[str] | None = None,
    mask_mode: str = "soft",
) -> SandboxDataset:
    """ID test split of :func:`sandbox_super_train` (same distribution, its own seed)."""
    return _biased(
        "sandbox_super_id_test", n, correlation, seed, image_size=image_size,
        transform=transform, templates=templates, on_bad_image=on_bad_image, fields=fields,
        mask_mode=mask_mode,
    )  # fmt: skip


def sandbox_super_groups(
    *,
    per_group: int = _DEFAULTS["groups"]["per_group"],
    seed: int = _DEFAULTS["groups"]["seed"],
    image_size: int = IMAGE_SIZE,
    transform: Transform | None = None,
    templates: TemplateSpec | None = None,
    on_bad_image: str = "error",
    fields: str | Sequence[str] | None = None,
    mask_mode: str = "soft",
) -> SandboxDataset:
    """Exactly ``per_group`` photos of every class x scene group (shapes uniform in the class)."""
    check_n(per_group, "per_group")
    rng = table_rng(seed)
    space = superclass_space()
    num_classes, num_scenes = len(space.classnames), len(vocabulary("scene"))
    cells = np.repeat(np.arange(num_classes * num_scenes), per_group)
    cells = cells[rng.permutation(len(cells))]
    members = [np.flatnonzero(space.label_map == c) for c in range(num_classes)]
    picks = rng.random(len(cells))
    shapes = np.array(
        [members[c][int(p * len(members[c]))] for c, p in zip(cells // num_scenes, picks)],
        np.int64,
    )
    table = sample_attributes(
        len(cells), rng, shape=shapes, scene=cells % num_scenes, style=style_id("photo")
    )
    return _super_dataset(
        table, "sandbox_super_groups", seed, image_size=image_size, transform=transform,
        templates=templates, on_bad_image=on_bad_image, fields=fields, mask_mode=mask_mode,
    )  # fmt: skip


def sandbox_super_style(
    *,
    style: str = "sketch",
    n: int = _DEFAULTS["style"]["n"],
    seed: int | None = None,
    image_size: int = IMAGE_SIZE,
    transform: Transform | None = None,
    templates: TemplateSpec | None = None,
    on_bad_image: str = "error",
    fields: str | Sequence[str] | None = None,
    mask_mode: str = "soft",
) -> SandboxDataset:
    """The superclass task in another style (domain shift), shapes balanced, scenes uniform."""
    seeds = _DEFAULTS["style"]["seed"]
    if style not in seeds:
        raise StarftError(f"sandbox_super_style: '{style}' is not one of {', '.join(seeds)}")
    seed = seeds[style] if seed is None else seed
    check_n(n)
    rng = table_rng(seed)
    table = sample_attributes(
        n, rng, shape=balanced_ids(n, len(vocabulary("shape")), rng), style=style_id(style)
    )
    return _super_dataset(
        table, f"sandbox_super_style[{style}]", seed, image_size=image_size,
        transform=transform, templates=templates, on_bad_image=on_bad_image, fields=fields,
        mask_mode=mask_mode,
    )  # fmt: skip


SUPERCLASS_TASKS: dict[str, tuple[Callable[..., SandboxDataset], str]] = {
    "sandbox_super_train": (
        sandbox_super_train,
        "sandbox world: shape superclass (new names) of photos, home scene 95% (n=6k)",
    ),
    "sandbox_super_val": (
        sandbox_super_val,
        "sandbox world: validation split of sandbox_super_train",
    ),
    "sandbox_super_id_test": (
        sandbox_super_id_test,
        "sandbox world: ID test split of sandbox_super_train",
    ),
    "sandbox_super_groups": (
        sandbox_super_groups,
        "sandbox world: balanced superclass x scene groups of photos, the worst-group test",
    ),
    "sandbox_super_style": (
        sandbox_super_style,
        "sandbox world: the superclass task in another style (sketch/cartoon/painting/blurry)",
    ),
}

"""The sandbox tasks, registered as datasets: pretraining, biased fine-tuning and shifted tests.

They mirror the StarFT paper's axes on a world where every nuisance is known:

- ``sandbox_pretrain``: the uniform world with captions, to pretrain a tiny CLIP.
- ``sandbox_zeroshot``: balanced held-out sets for the zero-shot accuracy of one attribute.
- ``sandbox_train`` / ``sandbox_val`` / ``sandbox_id_test``: classify the shape of photos whose
  scene is the shape's *home scene* with probability ``correlation`` (Waterbirds-like).
- ``sandbox_groups``: every shape x scene group equally often, the worst-group test.
- ``sandbox_style``: the shape task drawn in another style (the ImageNet-R/-Sketch analogue).
- ``sandbox_transfer``: other label spaces (colour, scene) of photos, to see what fine-tuning on
  shapes did to the rest of the model's knowledge.

Every split has its own seed (``resources/sandbox/tasks.json``), so no image is shared between
splits. Attribute tables are drawn from a stream that never collides with the per-image render
streams (:mod:`starft.sandbox.task_common`, shared with the superclass and marker tasks). Every
task also takes ``fields`` and ``mask_mode`` (region fields of each sample,
:mod:`starft.sandbox.fields`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.task_common import (
    TaskTable,
    biased_splits,
    build_dataset,
    check_n,
    default_seed,
    group_cells,
    sandbox_task,
    scene_biased_table,
    style_id,
    style_table,
    table_rng,
)
from starft.sandbox.world import (
    ATTRIBUTES,
    AttributeTable,
    balanced_ids,
    sample_attributes,
    vocabulary,
)

if TYPE_CHECKING:
    from starft.registry import Registry
    from starft.sandbox.datasets import SandboxDataset

_DEFAULTS: dict[str, Any] = read_sandbox_json("tasks.json")
GROUP_BY = ("shape", "scene")
TASKS: TaskTable = {}


def home_scenes() -> np.ndarray:
    """Home-scene id of each shape id (the scene it is correlated with in the biased task)."""
    mapping = _DEFAULTS["home_scene"]
    scenes = vocabulary("scene")
    missing = [shape for shape in vocabulary("shape") if shape not in mapping]
    if missing:
        raise StarftError(f"sandbox tasks.json: no home scene for shape '{missing[0]}'")
    return np.array([scenes.index(mapping[shape]) for shape in vocabulary("shape")], np.int64)


def minority_groups() -> list[int]:
    """Ids of the shape x scene groups (``group_by=("shape", "scene")``) off the home scene."""
    homes = home_scenes()
    num_scenes = len(vocabulary("scene"))
    return [
        shape * num_scenes + scene
        for shape in range(len(homes))
        for scene in range(num_scenes)
        if scene != homes[shape]
    ]


def correlated_table(n: int, correlation: float, rng: np.random.Generator) -> AttributeTable:
    """Photos whose scene is the shape's home scene (:func:`home_scenes`) with probability
    ``correlation``, otherwise a uniform other scene (:func:`scene_biased_table`)."""
    return scene_biased_table(n, correlation, rng, home_scenes())


def _seed_for(task: str, key: str, seed: int | None, choices: tuple[str, ...]) -> int:
    seeds = _DEFAULTS[task.removeprefix("sandbox_")]["seed"]
    return default_seed(task, key, seed, seeds, choices)


def _shape_groups_dataset(
    table: AttributeTable, name: str, seed: int, render: dict[str, Any]
) -> SandboxDataset:
    """A shape task with shape x scene groups, the minority groups off the home scene."""
    return build_dataset(
        table, name, seed, render, group_by=GROUP_BY, minority_groups=minority_groups()
    )


# ----------------------------------------------------------------------------- the tasks


@sandbox_task(
    TASKS, "sandbox world: uniform attributes with fresh captions, for pretraining (n=50k)"
)
def sandbox_pretrain(
    *,
    n: int = _DEFAULTS["pretrain"]["n"],
    seed: int = _DEFAULTS["pretrain"]["seed"],
    **render: Any,
) -> SandboxDataset:
    """The uniform world (all attributes independent) with a fresh caption per sample."""
    check_n(n)
    table = sample_attributes(n, table_rng(seed))
    return build_dataset(table, "sandbox_pretrain", seed, render, with_captions=True)


@sandbox_task(TASKS, "sandbox world: balanced held-out set for one attribute's zero-shot accuracy")
def sandbox_zeroshot(
    *,
    attribute: str = "shape",
    n: int = _DEFAULTS["zeroshot"]["n"],
    seed: int | None = None,
    **render: Any,
) -> SandboxDataset:
    """A held-out set balanced over ``attribute``, the other attributes uniform.

    For ``attribute="colour"`` sketches are left out: a sketch has no colour to classify.
    """
    seed = _seed_for("sandbox_zeroshot", attribute, seed, ATTRIBUTES)
    check_n(n)
    rng = table_rng(seed)
    fixed: dict[str, Any] = {attribute: balanced_ids(n, len(vocabulary(attribute)), rng)}
    if attribute == "colour":
        fixed["style"] = [i for i, s in enumerate(vocabulary("style")) if s != "sketch"]
    table = sample_attributes(n, rng, **fixed)
    name = f"sandbox_zeroshot[{attribute}]"
    return build_dataset(table, name, seed, render, label_attribute=attribute)


sandbox_train, sandbox_val, sandbox_id_test = biased_splits(
    TASKS,
    "sandbox",
    _DEFAULTS,
    {
        "train": (
            "sandbox world: shape of photos, scene = the shape's home scene 95% (n=6k)",
            "Shape classification of photos, scene = the shape's home scene with ``correlation``.",
        ),
        "val": (
            "sandbox world: validation split of sandbox_train (n=1k)",
            "Validation split of :func:`sandbox_train` (same distribution, its own seed).",
        ),
        "id_test": (
            "sandbox world: ID test split of sandbox_train (n=1k)",
            "In-distribution test split of :func:`sandbox_train` (same distribution, its own "
            "seed).",
        ),
    },
    home_scenes,
    _shape_groups_dataset,
    __name__,
)


@sandbox_task(TASKS, "sandbox world: balanced shape x scene groups of photos, the worst-group test")
def sandbox_groups(
    *,
    per_group: int = _DEFAULTS["groups"]["per_group"],
    seed: int = _DEFAULTS["groups"]["seed"],
    **render: Any,
) -> SandboxDataset:
    """Exactly ``per_group`` photos of every shape x scene group, in random order.

    The worst-group test: with the training correlation, most of these groups are rare or absent
    in fine-tuning (``minority_groups``). Use >= 100 per group: with 25, worst-group accuracy was
    0 for every fine-tuned method in the prototype (too coarse to compare methods).
    """
    shapes, scenes, rng = group_cells(per_group, len(vocabulary("shape")), seed)
    table = sample_attributes(len(shapes), rng, shape=shapes, scene=scenes, style=style_id("photo"))
    return _shape_groups_dataset(table, "sandbox_groups", seed, render)


@sandbox_task(
    TASKS, "sandbox world: shape in another style (sketch/cartoon/painting/blurry), domain shift"
)
def sandbox_style(
    *,
    style: str = "sketch",
    n: int = _DEFAULTS["style"]["n"],
    seed: int | None = None,
    **render: Any,
) -> SandboxDataset:
    """Shape classification in another style (domain shift), shapes balanced, scenes uniform."""
    styles = tuple(s for s in vocabulary("style") if s != "photo")
    seed = _seed_for("sandbox_style", style, seed, styles)
    return _shape_groups_dataset(
        style_table(n, style, seed), f"sandbox_style[{style}]", seed, render
    )


@sandbox_task(
    TASKS, "sandbox world: colour or scene of photos, zero-shot transfer to other label spaces"
)
def sandbox_transfer(
    *,
    attribute: str = "colour",
    n: int = _DEFAULTS["transfer"]["n"],
    seed: int | None = None,
    **render: Any,
) -> SandboxDataset:
    """Photos labelled by another attribute (colour or scene), balanced, for zero-shot transfer."""
    seed = _seed_for("sandbox_transfer", attribute, seed, ("colour", "scene"))
    check_n(n)
    rng = table_rng(seed)
    table = sample_attributes(
        n,
        rng,
        **{attribute: balanced_ids(n, len(vocabulary(attribute)), rng)},
        style=style_id("photo"),
    )
    name = f"sandbox_transfer[{attribute}]"
    return build_dataset(table, name, seed, render, label_attribute=attribute)


def register_tasks(registry: Registry[Any]) -> None:
    """Add every sandbox task to a dataset registry (``starft.data.DATASETS``).

    The superclass and marker tasks live in their own modules, which build on this one's helpers
    (so they are imported here, not at the top: that would be an import cycle).
    """
    from starft.sandbox.marker_tasks import MARKER_TASKS
    from starft.sandbox.superclass import SUPERCLASS_TASKS

    for name, (factory, description) in {**TASKS, **SUPERCLASS_TASKS, **MARKER_TASKS}.items():
        registry.add(name, factory, description)

"""What every sandbox task module shares: the table stream, argument checks, the shared table
draws, the task decorator with the render options and the (late-imported) dataset class.

The shape tasks (:mod:`starft.sandbox.tasks`), the superclass task
(:mod:`starft.sandbox.superclass`) and the marker tasks (:mod:`starft.sandbox.marker_tasks`)
all draw attribute tables from :func:`table_rng`, a stream that never collides with the
per-image render streams, and build :class:`~starft.sandbox.datasets.SandboxDataset` through
:func:`build_dataset`, which imports it late: ``starft.data`` imports the task modules to
register them, and the dataset class imports ``starft.data.base``, so a module-level import
would be a cycle.

Every task is a function of its own keyword arguments plus the same render options
(``image_size``, ``transform``, ``templates``, ``on_bad_image``, ``fields``, ``mask_mode``).
:func:`sandbox_task` adds those to the function's signature as explicit keywords (what
:func:`starft.data.create_dataset` checks arguments against and ``starft ls datasets NAME``
prints) and registers the task; :func:`biased_splits` makes the train/val/id_test trio that
the shape and superclass tasks both have.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.world import AttributeTable, balanced_ids, sample_attributes, vocabulary

if TYPE_CHECKING:
    from starft.sandbox.datasets import SandboxDataset

Task = Callable[..., "SandboxDataset"]
TaskTable = dict[str, tuple[Task, str]]  # task name -> (factory, one-line description)

TABLE_STREAM = 0x7AB1E  # attribute tables use default_rng((seed, TABLE_STREAM, 1)): 3 words,
# so they can never coincide with a render stream default_rng((seed, index)).
IMAGE_SIZE: int = read_sandbox_json("tasks.json")["image_size"]


def table_rng(seed: int) -> np.random.Generator:
    """The generator a task draws its attribute table (and marker table) from."""
    if not isinstance(seed, int) or seed < 0:
        raise StarftError(f"sandbox task seed must be an integer >= 0, got {seed!r}")
    return np.random.default_rng((seed, TABLE_STREAM, 1))


def _option(name: str, default: Any, annotation: str) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


# Annotations are strings, as in a module with ``from __future__ import annotations``.
RENDER_OPTIONS = (
    _option("image_size", IMAGE_SIZE, "int"),
    _option("transform", None, "Transform | None"),
    _option("templates", None, "TemplateSpec | None"),
    _option("on_bad_image", "error", "str"),
    _option("fields", None, "str | Sequence[str] | None"),
    _option("mask_mode", "soft", "str"),
)


def sandbox_task(tasks: TaskTable, description: str) -> Callable[[Task], Task]:
    """Decorator: register a task function in ``tasks`` under its own name.

    The function declares its own keywords and ``**render``; the registered task's signature is
    those keywords followed by :data:`RENDER_OPTIONS`, every call is checked against it (an unknown
    keyword is a TypeError, as for a plain function) and the function gets all six render options,
    defaults filled in, in ``render``.
    """

    def wrap(func: Task) -> Task:
        own = [p for p in inspect.signature(func).parameters.values() if p.kind != p.VAR_KEYWORD]
        signature = inspect.signature(func).replace(parameters=[*own, *RENDER_OPTIONS])

        @functools.wraps(func)
        def task(**kwargs: Any) -> SandboxDataset:
            try:
                bound = signature.bind(**kwargs)
            except TypeError as error:
                raise TypeError(f"{func.__name__}() {error}") from None
            bound.apply_defaults()
            return func(**bound.arguments)

        task.__signature__ = signature  # type: ignore[attr-defined]
        tasks[func.__name__] = (task, description)
        return task

    return wrap


SPLITS = ("train", "val", "id_test")
TaskDataset = Callable[[AttributeTable, str, int, dict[str, Any]], "SandboxDataset"]


def biased_splits(
    tasks: TaskTable,
    prefix: str,
    defaults: dict[str, Any],
    texts: dict[str, tuple[str, str]],
    homes: Callable[[], np.ndarray],
    dataset: TaskDataset,
    module: str,
) -> tuple[Task, ...]:
    """The ``{prefix}_train``/``_val``/``_id_test`` tasks: photos on their label's home scene
    (``homes()[shape]``) with ``correlation`` (:func:`scene_biased_table`), each split's own
    ``n`` and ``seed`` (``defaults[split]``), the training ``correlation`` for all.

    ``texts[split]`` is the (registry description, docstring) pair; ``dataset(table, name, seed,
    render)`` makes the split's dataset. The functions are named and placed as if written in
    ``module``, which binds them to those names.
    """
    made = [_split_task(f"{prefix}_{split}", split, defaults, homes, dataset) for split in SPLITS]
    for split, task in zip(SPLITS, made):
        task.__module__, task.__doc__ = module, texts[split][1]
    return tuple(sandbox_task(tasks, texts[split][0])(task) for split, task in zip(SPLITS, made))


def _split_task(
    name: str,
    split: str,
    defaults: dict[str, Any],
    homes: Callable[[], np.ndarray],
    dataset: TaskDataset,
) -> Task:
    def split_task(
        *,
        n: int = defaults[split]["n"],
        correlation: float = defaults["train"]["correlation"],
        seed: int = defaults[split]["seed"],
        **render: Any,
    ) -> SandboxDataset:
        check_n(n)
        table = scene_biased_table(n, correlation, table_rng(seed), homes())
        return dataset(table, name, seed, render)

    split_task.__name__ = split_task.__qualname__ = name
    return split_task


def default_seed(
    task: str, key: str, seed: int | None, seeds: dict[str, int], choices: tuple[str, ...]
) -> int:
    """The given seed, or the task's default seed for ``key`` (one per attribute or style)."""
    if key not in choices:
        raise StarftError(f"{task}: '{key}' is not one of {', '.join(choices)}")
    return seeds[key] if seed is None else seed


def check_n(n: int, what: str = "n") -> None:
    if not isinstance(n, int) or n < 1:
        raise StarftError(f"sandbox task: {what} must be an integer >= 1, got {n!r}")


def style_id(style: str) -> int:
    return vocabulary("style").index(style)


def scene_biased_table(
    n: int, correlation: float, rng: np.random.Generator, homes: np.ndarray
) -> AttributeTable:
    """Photos whose scene is the shape's home scene (``homes[shape]``) with ``correlation``.

    Otherwise the scene is uniform over the *other* scenes, so ``correlation = 1 / #scenes``
    gives the unbiased world and 1 gives a perfectly confounded one. Shape and colour are uniform.
    """
    if not 0.0 <= correlation <= 1.0:
        raise StarftError(f"sandbox task: correlation must lie in [0, 1], got {correlation!r}")
    num_scenes = len(vocabulary("scene"))
    shapes = rng.integers(len(vocabulary("shape")), size=n)
    home = homes[shapes]
    away = (home + 1 + rng.integers(num_scenes - 1, size=n)) % num_scenes
    scenes = np.where(rng.random(n) < correlation, home, away)
    return sample_attributes(n, rng, shape=shapes, scene=scenes, style=style_id("photo"))


def group_cells(
    per_group: int, num_labels: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Label and scene ids of exactly ``per_group`` rows of every label x scene group, shuffled,
    and the table stream they were drawn from (the rest of the table comes from it)."""
    check_n(per_group, "per_group")
    rng = table_rng(seed)
    num_scenes = len(vocabulary("scene"))
    cells = np.repeat(np.arange(num_labels * num_scenes), per_group)
    cells = cells[rng.permutation(len(cells))]
    return cells // num_scenes, cells % num_scenes, rng


def style_table(n: int, style: str, seed: int) -> AttributeTable:
    """Shapes balanced, in ``style``, the other attributes uniform (the style-shift tasks)."""
    check_n(n)
    rng = table_rng(seed)
    shapes = balanced_ids(n, len(vocabulary("shape")), rng)
    return sample_attributes(n, rng, shape=shapes, style=style_id(style))


def build_dataset(
    table: AttributeTable,
    name: str,
    seed: int,
    render: dict[str, Any],
    *,
    label_attribute: str = "shape",
    **kwargs: Any,
) -> SandboxDataset:
    """``SandboxDataset`` of a task: its table, name, seed and render options, the label
    attribute and any task settings (groups, class names, markers) in ``kwargs``; the class is
    imported late (see the module docstring)."""
    from starft.sandbox.datasets import SandboxDataset

    return SandboxDataset(
        table, label_attribute=label_attribute, seed=seed, name=name, **kwargs, **render
    )

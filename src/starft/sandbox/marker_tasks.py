"""The marker tasks: shape photos where a marker goes with one class at a set Cramér's V.

RaVL's synthetic settings, on the sandbox: ``sandbox_markers`` is a training set whose class x
marker table has a target Cramér's V (:mod:`starft.sandbox.contingency`; the achieved V is on
``dataset.markers.cramers_v``), ``sandbox_markers_eval`` an evaluation set with the marker on half
of every class (independent of the class). Scenes, colours are uniform and every image is a photo,
so the marker is the only spurious feature. Groups are shape x marker (``"star|plus"``,
``"star|none"``); the minority groups are those that break the correlation (the spurious class
without the marker, the other classes with it). Every sample can carry the marker's box
(``fields="boxes"``) next to the object masks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.contingency import (
    assign_markers,
    balanced_markers,
    class_counts,
    confounded_table,
)
from starft.sandbox.fields import MarkerPlan
from starft.sandbox.markers import check_marker, marker_style
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.task_common import (
    TaskTable,
    build_dataset,
    check_n,
    sandbox_task,
    style_id,
    table_rng,
)
from starft.sandbox.world import AttributeTable, balanced_ids, sample_attributes, vocabulary

if TYPE_CHECKING:
    from starft.sandbox.datasets import SandboxDataset

_DEFAULTS: dict[str, Any] = read_sandbox_json("tasks.json")["markers"]
GROUP_BY = ("shape", "marker")
MARKER_TASKS: TaskTable = {}


def _marker_setup(
    task: str, n: int, spurious: str, kind: str, grid: int | None, seed: int, image_size: int
) -> tuple[int, int, np.random.Generator]:
    """Checked arguments of a marker task: its grid, the spurious shape id and the table stream."""
    check_n(n)
    grid = marker_style().grid if grid is None else grid
    check_marker(kind, grid, image_size)
    shapes = vocabulary("shape")
    if spurious not in shapes:
        raise StarftError(
            f"{task}: spurious class '{spurious}' is not a shape ({', '.join(shapes)})"
        )
    return grid, shapes.index(spurious), table_rng(seed)


def marker_minority_groups(spurious: int) -> list[int]:
    """Shape x marker groups that break the correlation (group id = shape * 2 + marked)."""
    return [shape * 2 + int(shape != spurious) for shape in range(len(vocabulary("shape")))]


def _marker_dataset(
    table: AttributeTable,
    plan: MarkerPlan,
    spurious: int,
    name: str,
    seed: int,
    render: dict[str, Any],
) -> SandboxDataset:
    return build_dataset(
        table,
        name,
        seed,
        render,
        group_by=GROUP_BY,
        markers=plan,
        minority_groups=marker_minority_groups(spurious),
    )


@sandbox_task(
    MARKER_TASKS,
    "sandbox world: shape photos with a marker at a set Cramér's V with one class (RaVL)",
)
def sandbox_markers(
    *,
    n: int = _DEFAULTS["n"],
    spurious: str = _DEFAULTS["spurious"],
    cramers_v: float = _DEFAULTS["cramers_v"],
    kind: str = _DEFAULTS["kind"],
    grid: int | None = None,
    seed: int = _DEFAULTS["seed"],
    **render: Any,
) -> SandboxDataset:
    """Shape photos, class sizes n/C ± U(-20, 20), a ``kind`` marker at Cramér's V with class
    ``spurious`` (RaVL's generator); the achieved V is ``dataset.markers.cramers_v``."""
    task = "sandbox_markers"
    grid, spurious_id, rng = _marker_setup(
        task, n, spurious, kind, grid, seed, render["image_size"]
    )
    table, plan = _training_plan(n, spurious_id, cramers_v, kind, grid, rng)
    name = f"{task}[{spurious},V={cramers_v},{kind},grid={grid}]"
    return _marker_dataset(table, plan, spurious_id, name, seed, render)


def _training_plan(
    n: int, spurious_id: int, cramers_v: float, kind: str, grid: int, rng: np.random.Generator
) -> tuple[AttributeTable, MarkerPlan]:
    """The attribute table and marker plan of ``sandbox_markers`` (everything but rendering)."""
    num_classes = len(vocabulary("shape"))
    counts = class_counts(n, num_classes, rng)
    shapes = np.repeat(np.arange(num_classes), counts)[rng.permutation(int(counts.sum()))]
    table = sample_attributes(len(shapes), rng, shape=shapes, style=style_id("photo"))
    marker_table = confounded_table(counts, spurious_id, cramers_v, rng)
    present = assign_markers(shapes, marker_table.marked, rng)
    plan = MarkerPlan(kind=kind, grid=grid, present=present, cramers_v=marker_table.cramers_v)
    return table, plan


def achieved_cramers_v(
    *,
    n: int = _DEFAULTS["n"],
    spurious: str = _DEFAULTS["spurious"],
    cramers_v: float = _DEFAULTS["cramers_v"],
    seed: int = _DEFAULTS["seed"],
) -> float:
    """The Cramér's V ``sandbox_markers`` with these arguments achieves, without rendering."""
    shapes = vocabulary("shape")
    if spurious not in shapes:
        raise StarftError(f"spurious class '{spurious}' is not a shape ({', '.join(shapes)})")
    check_n(n)
    rng = table_rng(seed)
    _, plan = _training_plan(n, shapes.index(spurious), cramers_v, "plus", 1, rng)
    assert plan.cramers_v is not None
    return plan.cramers_v


@sandbox_task(
    MARKER_TASKS,
    "sandbox world: shape photos with a marker on half of every class (RaVL evaluation)",
)
def sandbox_markers_eval(
    *,
    n: int = _DEFAULTS["eval_n"],
    spurious: str = _DEFAULTS["spurious"],
    kind: str = _DEFAULTS["kind"],
    grid: int | None = None,
    seed: int = _DEFAULTS["eval_seed"],
    **render: Any,
) -> SandboxDataset:
    """Shape photos, classes balanced, a ``kind`` marker on half of every class (p = 0.5,
    independent of the class); ``spurious`` only names the minority groups."""
    task = "sandbox_markers_eval"
    grid, spurious_id, rng = _marker_setup(
        task, n, spurious, kind, grid, seed, render["image_size"]
    )
    shapes = balanced_ids(n, len(vocabulary("shape")), rng)
    table = sample_attributes(n, rng, shape=shapes, style=style_id("photo"))
    plan = MarkerPlan(kind=kind, grid=grid, present=balanced_markers(shapes, rng))
    return _marker_dataset(table, plan, spurious_id, f"{task}[{kind},grid={grid}]", seed, render)

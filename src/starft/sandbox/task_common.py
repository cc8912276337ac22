"""What every sandbox task module shares: the table stream, argument checks, the scene-biased
table and the (late-imported) dataset class.

The shape tasks (:mod:`starft.sandbox.tasks`), the superclass task
(:mod:`starft.sandbox.superclass`) and the marker tasks (:mod:`starft.sandbox.marker_tasks`)
all draw attribute tables from :func:`table_rng`, a stream that never collides with the
per-image render streams, and build :class:`~starft.sandbox.datasets.SandboxDataset` through
:func:`build_dataset`, which imports it late: ``starft.data`` imports the task modules to
register them, and the dataset class imports ``starft.data.base``, so a module-level import
would be a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from starft.errors import StarftError
from starft.sandbox.resources import read_sandbox_json
from starft.sandbox.world import AttributeTable, sample_attributes, vocabulary

if TYPE_CHECKING:
    from starft.sandbox.datasets import SandboxDataset

TABLE_STREAM = 0x7AB1E  # attribute tables use default_rng((seed, TABLE_STREAM, 1)): 3 words,
# so they can never coincide with a render stream default_rng((seed, index)).
IMAGE_SIZE: int = read_sandbox_json("tasks.json")["image_size"]


def table_rng(seed: int) -> np.random.Generator:
    """The generator a task draws its attribute table (and marker table) from."""
    if not isinstance(seed, int) or seed < 0:
        raise StarftError(f"sandbox task seed must be an integer >= 0, got {seed!r}")
    return np.random.default_rng((seed, TABLE_STREAM, 1))


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


def build_dataset(table: AttributeTable, **kwargs: Any) -> SandboxDataset:
    """``SandboxDataset(table, **kwargs)``, the class imported late (see the module docstring)."""
    from starft.sandbox.datasets import SandboxDataset

    return SandboxDataset(table, **kwargs)

"""Data: datasets returning dict samples, caption templates, StarFT descriptor pools, captions.

Datasets are registered in :data:`DATASETS` and built by name with :func:`create_dataset`, which is
what configs and the CLI use; the classes can also be instantiated directly.
"""

from __future__ import annotations

import inspect
from typing import Any

from starft.data.benchmarks import DatasetNotFoundError, register_benchmarks
from starft.data.captions import CAPTION_MODES, CaptionSampler, class_caption
from starft.data.datasets import (
    ON_BAD_IMAGE,
    ClassificationDataset,
    CsvDataset,
    ImageFolderDataset,
    SyntheticDataset,
    UnreadableImageError,
    collate_samples,
)
from starft.data.pools import (
    POOL_NAMES,
    SANDBOX_POOL_NAMES,
    list_pools,
    load_pool,
    random_suffix_pool,
    spurious_caption,
)
from starft.data.templates import get_templates, list_template_sets
from starft.errors import StarftError
from starft.registry import Registry

DATASETS: Registry[type[ClassificationDataset]] = Registry("dataset")
DATASETS.add("csv", CsvDataset, "images listed in a CSV/TSV file (FLYP layout: filepath, label)")
DATASETS.add("imagefolder", ImageFolderDataset, "one sub-folder per class: root/<class>/<image>")
DATASETS.add("synthetic", SyntheticDataset, "procedural class colour patterns, deterministic")
register_benchmarks(DATASETS)


def create_dataset(name: str, **kwargs: Any) -> ClassificationDataset:
    """Build the registered dataset ``name`` with keyword arguments (e.g. from a config file).

    Arguments are checked against the class signature first, so a misspelt config key is reported
    as a :class:`StarftError` naming the dataset and the argument, not as a TypeError traceback.
    """
    cls = DATASETS.get(name)
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        accepted = ", ".join(signature.parameters)
        raise StarftError(f"dataset '{name}': {error} (accepted: {accepted})") from None
    return cls(**kwargs)


__all__ = [
    "CAPTION_MODES",
    "DATASETS",
    "ON_BAD_IMAGE",
    "POOL_NAMES",
    "SANDBOX_POOL_NAMES",
    "CaptionSampler",
    "ClassificationDataset",
    "CsvDataset",
    "DatasetNotFoundError",
    "ImageFolderDataset",
    "SyntheticDataset",
    "UnreadableImageError",
    "class_caption",
    "collate_samples",
    "create_dataset",
    "get_templates",
    "list_pools",
    "list_template_sets",
    "load_pool",
    "random_suffix_pool",
    "spurious_caption",
]

# The sandbox tasks (sandbox_*) register last: starft.sandbox.tasks imports only the world at
# module level (its dataset class, which needs starft.data.base, is imported when a task is built),
# so this import cannot cycle back into a half-initialised starft.data.
from starft.sandbox.tasks import register_tasks as _register_sandbox_tasks  # noqa: E402

_register_sandbox_tasks(DATASETS)

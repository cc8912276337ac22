"""CIFAR-10/100 (python pickles), CIFAR-10.1 (.npy), CIFAR-10.2 (.npz) and CIFAR-10.02.

The files are read directly (pickle / numpy) rather than through ``torchvision.datasets.CIFAR10``:
torchvision checks the MD5 of every batch file, so it rejects any copy that is not byte-identical to
the original archive (including the tiny fake copies the tests build) with a message that suggests
``download=True``, which cannot work offline. The on-disk layout is exactly torchvision's.

CIFAR-10.02 (Zhang & Ré, 2022, used by the StarFT paper's Table 3) is the CIFAR-10 test set plus the
CIFAR-10.2 test set, with the data source as a spurious attribute. Its groups are (class, source)
pairs by default, as in Zhang & Ré's code (20 groups; worst-group accuracy is over these), or the
source alone with ``group_by="source"``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from starft.data.base import Transform
from starft.data.benchmarks.common import (
    ArrayDataset,
    BenchmarkDataset,
    DatasetNotFoundError,
    check_group_by,
    check_split,
    cross_groups,
    locate,
    packaged_classnames,
    require,
)
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

CIFAR_TEMPLATES = "cifar"
SOURCES = ("CIFAR-10", "CIFAR-10.2")


def _unpickle(path: Path, name: str, layout: str) -> dict[str, Any]:
    require(path, name, layout)
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise StarftError(f"{name}: cannot read '{path}': {error}") from None
    if not isinstance(data, dict) or "data" not in data:
        raise StarftError(f"{name}: '{path}' is not a CIFAR python batch (no 'data' entry)")
    return data


def _batches(paths: list[Path], key: str, name: str, layout: str) -> tuple[np.ndarray, list[int]]:
    """Concatenated ``[N, 32, 32, 3]`` uint8 images and labels of CIFAR python batches."""
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path, name, layout)
        if key not in batch:
            raise StarftError(f"{name}: '{path}' has no '{key}' entry")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(int(label) for label in batch[key])
    return np.concatenate(images).transpose(0, 2, 3, 1), labels


def _load_npy(path: Path, name: str, layout: str) -> np.ndarray:
    require(path, name, layout)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise StarftError(f"{name}: cannot read '{path}': {error}") from None


def _load_npz(path: Path, name: str, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``images`` and ``labels`` arrays of a CIFAR-10.2 ``.npz`` file."""
    require(path, name, layout)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return np.asarray(archive["images"]), np.asarray(archive["labels"])
    except (OSError, KeyError, ValueError) as error:
        raise StarftError(f"{name}: cannot read '{path}': {error}") from None


class CIFAR10(BenchmarkDataset, ArrayDataset):
    """CIFAR-10 train (50k) or test (10k) from ``cifar-10-batches-py``."""

    name = "cifar10"
    folders = ("cifar-10-batches-py",)
    splits = ("train", "test")
    layout = "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} (python version)"
    markers = ("batches.meta",)
    default_templates = CIFAR_TEMPLATES

    def _read(self, split: str) -> dict[str, Any]:
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        images, labels = _batches([self.root / f for f in files], "labels", self.name, self.layout)
        return {"images": images, "labels": labels, "classnames": packaged_classnames("cifar10")}


class CIFAR100(BenchmarkDataset, ArrayDataset):
    """CIFAR-100 (fine labels) train or test from ``cifar-100-python``."""

    name = "cifar100"
    folders = ("cifar-100-python",)
    splits = ("train", "test")
    layout = "cifar-100-python/{train,test,meta} (python version)"
    markers = ("meta",)
    default_templates = CIFAR_TEMPLATES

    def _read(self, split: str) -> dict[str, Any]:
        images, labels = _batches([self.root / split], "fine_labels", self.name, self.layout)
        return {"images": images, "labels": labels, "classnames": packaged_classnames("cifar100")}


class CIFAR10_1(BenchmarkDataset, ArrayDataset):
    """CIFAR-10.1 (2000 test images; ``version`` v6 or v4) in CIFAR-10's classes."""

    name = "cifar10_1"
    folders = ("cifar10.1", "CIFAR-10.1", "cifar10_1")
    layout = "cifar10.1/cifar10.1_v6_data.npy + cifar10.1_v6_labels.npy"
    default_templates = CIFAR_TEMPLATES

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        *,
        version: str = "v6",
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        check_split(self.name, split, self.splits)  # a bad split is reported first
        if version not in ("v4", "v6"):
            raise StarftError(f"{self.name}: version must be v4 or v6, got '{version}'")
        self.data_file = f"cifar10.1_{version}_data.npy"
        super().__init__(
            root, split, transform=transform, templates=templates, on_bad_image=on_bad_image
        )

    def _locate(self, root: str | Path) -> Path:
        return locate(root, self.name, self.folders, (self.data_file,), self.layout)

    def _read(self, split: str) -> dict[str, Any]:
        images = _load_npy(self.root / self.data_file, self.name, self.layout)
        labels_file = self.data_file.replace("_data", "_labels")
        labels = _load_npy(self.root / labels_file, self.name, self.layout)
        return {
            "images": images,
            "labels": [int(label) for label in labels],
            "classnames": packaged_classnames("cifar10"),
        }


def _cifar102(folder: Path, split: str, name: str) -> tuple[np.ndarray, list[int]]:
    """Images and labels of ``cifar102_<split>.npz`` in a located CIFAR-10.2 folder."""
    images, labels = _load_npz(folder / f"cifar102_{split}.npz", name, CIFAR10_2.layout)
    return images, [int(label) for label in labels]


class CIFAR10_2(BenchmarkDataset, ArrayDataset):
    """CIFAR-10.2 train (10k) or test (2k) in CIFAR-10's classes."""

    name = "cifar10_2"
    folders = ("cifar10.2", "CIFAR-10.2", "cifar10_2", "cifar-10.2")
    splits = ("train", "test")
    layout = "cifar10.2/cifar102_{train,test}.npz (arrays 'images' [N,32,32,3], 'labels')"
    markers = ("cifar102_test.npz",)
    default_templates = CIFAR_TEMPLATES

    def _read(self, split: str) -> dict[str, Any]:
        images, labels = _cifar102(self.root, split, self.name)
        return {"images": images, "labels": labels, "classnames": packaged_classnames("cifar10")}


class CIFAR10_02(ArrayDataset):
    """CIFAR-10 test + CIFAR-10.2 test with the source as spurious attribute (group shift)."""

    name = "cifar10_02"
    splits = ("test",)
    group_modes = ("class_source", "source")
    layout = (
        "<root>/cifar-10-batches-py/test_batch and <root>/cifar10.2/cifar102_test.npz "
        "(the CIFAR-10 and CIFAR-10.2 layouts side by side)"
    )

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        *,
        group_by: str = "class_source",
        cifar10_root: str | Path | None = None,
        cifar102_root: str | Path | None = None,
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        check_split(self.name, split, self.splits)
        check_group_by(self.name, group_by, self.group_modes)
        try:
            base = CIFAR10(cifar10_root or root, "test")
        except DatasetNotFoundError as error:  # name this dataset, then the missing part
            raise DatasetNotFoundError(f"{self.name}: {error}") from None
        folder = locate(
            cifar102_root or root, self.name, CIFAR10_2.folders, CIFAR10_2.markers, CIFAR10_2.layout
        )
        images, labels = _cifar102(folder, "test", self.name)
        sources = [0] * len(base) + [1] * len(labels)
        labels = base.labels + labels
        classnames = packaged_classnames("cifar10")
        if group_by == "source":
            groups, group_names = sources, list(SOURCES)
        else:
            groups, group_names = cross_groups(labels, sources, classnames, SOURCES)
        super().__init__(
            np.concatenate([base.images, images]),
            labels,
            classnames=classnames,
            templates=CIFAR_TEMPLATES if templates is None else templates,
            groups=groups,
            group_names=group_names,
            transform=transform,
            on_bad_image=on_bad_image,
        )

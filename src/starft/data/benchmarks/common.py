"""What every benchmark adapter shares: finding its folder, one-line layout errors, class names.

Each adapter reads one dataset's canonical on-disk layout. ``root`` may be the dataset's own folder
(``/data/imagenet-r``) or a folder that holds it under one of its canonical names (``/data``), so a
suite can hand every adapter the same root. When neither holds the dataset's marker file the adapter
raises :class:`DatasetNotFoundError` (a suite skips that dataset with a warning); a folder that is
found but does not match the layout raises a plain :class:`~starft.errors.StarftError` naming the
missing file and the expected layout.

Every adapter's constructor does the same four steps (check the split, find the folder, read the
layout, hand the result to :class:`ClassificationDataset` with the dataset's own template set as the
default), so they live once in :class:`BenchmarkDataset`; an adapter only says where its files are
(class attributes) and how to read them (:meth:`BenchmarkDataset._read`).
"""

from __future__ import annotations

import abc
import csv
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

from starft.data.base import ClassificationDataset, Transform
from starft.data.resources import read_json_resource
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

_CLASSNAMES = "benchmarks/classnames.json"
_WNIDS = "benchmarks/imagenet_wnids.json"
_IMAGENET_CLASSNAMES = "benchmarks/imagenet_classnames.json"


class DatasetNotFoundError(StarftError):
    """The dataset is not under the given root at all (as opposed to a broken layout)."""


def locate(
    root: str | Path, name: str, folders: Sequence[str], markers: Sequence[str], layout: str
) -> Path:
    """The dataset folder: ``root/<folder>`` or ``root`` itself, holding any of ``markers``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{name}: root '{root}' does not exist or is not a folder (expected layout: {layout})"
        )
    # Canonical sub-folders first: a suite root may itself hold folders that look like markers.
    for candidate in (*(root / folder for folder in folders), root):
        if any((candidate / marker).exists() for marker in markers):
            return candidate
    places = " or ".join(f"'{root / folder}'" for folder in folders)
    raise DatasetNotFoundError(
        f"{name}: not found in '{root}' or {places} (expected layout: {layout})"
    )


def require(path: Path, name: str, layout: str, what: str = "") -> Path:
    """``path`` must exist; otherwise a one-line error naming it and the expected layout."""
    if not path.exists():
        detail = f" ({what})" if what else ""
        raise StarftError(f"{name}: '{path}' does not exist{detail}; expected layout: {layout}")
    return path


def read_csv_rows(
    path: Path, columns: Sequence[str], name: str, layout: str
) -> list[dict[str, str]]:
    """The rows of a metadata CSV file that must exist and have ``columns``."""
    require(path, name, layout)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise StarftError(
                    f"{name}: '{path}' has no column '{missing[0]}' (expected layout: {layout})"
                )
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise StarftError(f"{name}: cannot read '{path}': {error}") from None


def check_split(name: str, split: str, splits: Sequence[str]) -> str:
    if split not in splits:
        raise StarftError(f"{name}: unknown split '{split}' (splits: {', '.join(splits)})")
    return split


def check_group_by(name: str, group_by: str, modes: Sequence[str]) -> str:
    """``group_by`` must be one of the dataset's group modes."""
    if group_by not in modes:
        raise StarftError(f"{name}: group_by must be one of {', '.join(modes)}, got '{group_by}'")
    return group_by


def packaged_classnames(key: str) -> Any:
    """A copy of ``benchmarks/classnames.json[key]`` (a list; a dict for caltech101)."""
    value = read_json_resource(_CLASSNAMES)[key]
    return dict(value) if isinstance(value, dict) else list(value)


@functools.cache
def _wnid_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(read_json_resource(_WNIDS)["wnids"])}


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids in class-index (sorted) order."""
    return list(read_json_resource(_WNIDS)["wnids"])


def wnid_index(wnid: str) -> int | None:
    """The ImageNet-1k class index of a wnid folder name, or None for an unknown name."""
    return _wnid_index().get(wnid)


def imagenet_classnames() -> list[str]:
    """CLIP's 1000 ImageNet class names (package data, copied from open_clip; a test keeps the
    copy equal to open_clip's list)."""
    return list(read_json_resource(_IMAGENET_CLASSNAMES)["classnames"])


def class_dirs(folder: Path) -> list[str]:
    """Sorted names of the sub-folders of ``folder`` (hidden ones skipped)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_image(path: Path) -> bool:
    """A regular file with one of torchvision's image extensions."""
    return path.is_file() and path.suffix.lower() in IMG_EXTENSIONS


def scan_images(
    folder: Path, class_to_idx: dict[str, int], name: str, layout: str
) -> tuple[list[str], list[int]]:
    """Image paths and labels of ``folder/<class>/<image>`` for the given class folders.

    torchvision's own scan (``make_dataset``) so file order matches ``ImageFolder``'s.
    """
    items = make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    if not items:
        raise StarftError(f"{name}: no images found under '{folder}' (expected layout: {layout})")
    return [path for path, _ in items], [label for _, label in items]


def cross_groups(
    labels: Sequence[int],
    attributes: Sequence[int],
    classnames: Sequence[str],
    names: Sequence[str],
) -> tuple[list[int], list[str]]:
    """(class, attribute) groups: id ``label * len(names) + attribute``, named ``class/attr``."""
    width = len(names)
    groups = [label * width + attribute for label, attribute in zip(labels, attributes)]
    return groups, [f"{c}/{a}" for c in classnames for a in names]


class ArrayDataset(ClassificationDataset):
    """Images in a ``uint8 [N, H, W, 3]`` array (CIFAR pickles, .npy/.npz files, STL-10 .bin)."""

    fixed_images = True

    def __init__(self, images: np.ndarray, labels: Sequence[int], **kwargs: Any) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(labels):
            raise StarftError(
                f"{type(self).__name__}: expected {len(labels)} RGB images [N, H, W, 3], "
                f"got an array of shape {tuple(images.shape)}"
            )
        self.images = images
        super().__init__(labels=labels, **kwargs)

    def read_image(self, index: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.images[index]))


class BenchmarkDataset(ClassificationDataset, abc.ABC):
    """A benchmark read from its released layout: the constructor every adapter shares.

    Subclasses set ``name``, ``folders`` (canonical folder names under a suite root), ``splits``,
    ``layout`` (quoted in every layout error), ``markers`` (files or folders that identify the
    dataset folder) and ``default_templates`` (``None``: the base default), and implement
    :meth:`_read`. An adapter with extra arguments (or another default split) defines its own
    ``__init__`` with an explicit keyword signature and calls this one, because
    :func:`starft.data.create_dataset` checks arguments against the class signature.
    """

    name: ClassVar[str] = ""
    folders: ClassVar[tuple[str, ...]] = ()
    splits: ClassVar[tuple[str, ...]] = ("test",)
    layout: ClassVar[str] = ""
    markers: ClassVar[tuple[str, ...]] = ()
    default_templates: ClassVar[str | None] = None

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        *,
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        check_split(self.name, split, self.splits)
        self.root = self._locate(root)
        super().__init__(
            **self._read(split),
            templates=self.default_templates if templates is None else templates,
            transform=transform,
            on_bad_image=on_bad_image,
        )

    def _locate(self, root: str | Path) -> Path:
        """The dataset folder under ``root`` (overridden where the markers depend on arguments)."""
        return locate(root, self.name, self.folders, self.markers, self.layout)

    @abc.abstractmethod
    def _read(self, split: str) -> dict[str, Any]:
        """The layout of ``split`` under ``self.root`` as :class:`ClassificationDataset` keyword
        arguments: ``classnames``, ``labels`` and ``image_paths`` (or ``images`` for an
        :class:`ArrayDataset`), optionally ``groups`` and ``group_names``."""

"""Adapters for the real benchmarks of the StarFT paper, each reading its released on-disk layout.

Nothing is downloaded: every adapter takes a ``root`` (the dataset's folder, or a folder holding it
under its canonical name, see ``docs/datasets.md``) and a ``split``. :data:`BENCHMARKS` lists the
classes; :func:`register_benchmarks` adds them to the dataset registry under their ``name``.
"""

from __future__ import annotations

from starft.data.base import ClassificationDataset
from starft.data.benchmarks.cifar import CIFAR10, CIFAR10_02, CIFAR10_1, CIFAR10_2, CIFAR100
from starft.data.benchmarks.common import DatasetNotFoundError
from starft.data.benchmarks.group_shift import PACS, Waterbirds
from starft.data.benchmarks.imagenet import (
    ImageNet,
    ImageNetA,
    ImageNetR,
    ImageNetSketch,
    ImageNetV2,
)
from starft.data.benchmarks.objectnet import ObjectNet
from starft.data.benchmarks.transfer import STL10, Caltech101, Flowers102, StanfordCars
from starft.data.benchmarks.wilds import FMoW, IWildCam
from starft.registry import Registry

BENCHMARKS: tuple[type[ClassificationDataset], ...] = (
    ImageNet,
    ImageNetV2,
    ImageNetR,
    ImageNetA,
    ImageNetSketch,
    ObjectNet,
    Waterbirds,
    PACS,
    CIFAR10,
    CIFAR100,
    CIFAR10_1,
    CIFAR10_2,
    CIFAR10_02,
    Caltech101,
    STL10,
    StanfordCars,
    Flowers102,
    IWildCam,
    FMoW,
)


def register_benchmarks(registry: Registry[type[ClassificationDataset]]) -> None:
    """Add every benchmark adapter under its ``name``; the description is its on-disk layout."""
    for cls in BENCHMARKS:
        summary = (cls.__doc__ or "").strip().splitlines()[0].rstrip(".").replace("``", "")
        registry.add(cls.name, cls, f"{summary}; splits {'/'.join(cls.splits)}")  # type: ignore[attr-defined]


__all__ = [
    "BENCHMARKS",
    "CIFAR10",
    "CIFAR10_02",
    "CIFAR10_1",
    "CIFAR10_2",
    "CIFAR100",
    "PACS",
    "STL10",
    "Caltech101",
    "DatasetNotFoundError",
    "FMoW",
    "Flowers102",
    "IWildCam",
    "ImageNet",
    "ImageNetA",
    "ImageNetR",
    "ImageNetSketch",
    "ImageNetV2",
    "ObjectNet",
    "StanfordCars",
    "Waterbirds",
    "register_benchmarks",
]

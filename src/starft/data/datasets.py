"""The dataset classes and their collate function, importable from one module.

Each class lives in its own module (``base``, ``csv_dataset``, ``imagefolder``, ``synthetic``) so
each stays small; this module gathers them for ``from starft.data.datasets import ...``.
"""

from starft.data.base import ON_BAD_IMAGE, ClassificationDataset, UnreadableImageError
from starft.data.collate import collate_samples
from starft.data.csv_dataset import CsvDataset
from starft.data.imagefolder import ImageFolderDataset
from starft.data.synthetic import SyntheticDataset

__all__ = [
    "ON_BAD_IMAGE",
    "ClassificationDataset",
    "CsvDataset",
    "ImageFolderDataset",
    "SyntheticDataset",
    "UnreadableImageError",
    "collate_samples",
]

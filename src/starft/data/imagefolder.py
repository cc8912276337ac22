"""Datasets in the torchvision ImageFolder layout: ``root/<class folder>/<image>``.

The folder scan is torchvision's own (``find_classes``/``make_dataset``), so class indices match
what ``torchvision.datasets.ImageFolder`` would assign (sorted folder names).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from starft.data.base import ClassificationDataset, Transform
from starft.data.classnames import ClassNamesSpec, check_caption_names, read_classnames
from starft.data.region_readers import RegionFiles, mask_paths
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

logger = logging.getLogger(__name__)


class ImageFolderDataset(ClassificationDataset):
    """One sub-folder per class; class names default to folder names with ``_`` as spaces.

    ``classnames=`` replaces them: a list in sorted folder order, a mapping folder -> name
    (which also suits a validation folder that lacks some classes), or a file holding either
    (one name per line, a JSON list or a JSON object). Folders named by numbers or WordNet ids
    (``0``, ``n01440764``) without ``classnames=`` are an error: captions would read
    "a photo of a n01440764.".

    ``mask_root``: a folder of mask PNGs with the same layout (``mask_root/<class>/<name>.png``,
    e.g. ImageNet-S with ``mask_format=class_id``), see :mod:`starft.data.region_readers`.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        transform: Transform | None = None,
        classnames: ClassNamesSpec | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
        extensions: Sequence[str] = IMG_EXTENSIONS,
        mask_root: str | Path | None = None,
        mask_format: str = "binary",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise StarftError(f"image folder '{self.root}' does not exist or is not a folder")
        try:
            folders, class_to_idx = find_classes(self.root)
        except FileNotFoundError:
            raise StarftError(
                f"image folder '{self.root}' has no class sub-folders "
                "(expected root/<class>/<image>)"
            ) from None
        classnames = self._classnames(folders, classnames)
        # allow_empty keeps an empty class folder's index (and name) instead of failing the scan.
        items = make_dataset(
            self.root, class_to_idx, extensions=tuple(extensions), allow_empty=True
        )
        if not items:
            raise StarftError(
                f"image folder '{self.root}' has no images with extensions {', '.join(extensions)}"
            )
        counts = Counter(label for _, label in items)
        empty = [folder for folder in folders if counts[class_to_idx[folder]] == 0]
        if empty:
            logger.warning("image folder '%s': no images in class folders %s", self.root, empty)
        masks = None
        if mask_root is not None:
            masks = mask_paths(mask_root, [path for path, _ in items], self.root)
        self.regions = RegionFiles(mask_paths=masks, mask_format=mask_format)
        self.region_keys = self.regions.keys
        super().__init__(
            classnames=classnames,
            labels=[label for _, label in items],
            templates=templates,
            image_paths=[path for path, _ in items],
            transform=transform,
            on_bad_image=on_bad_image,
        )

    def describe(self) -> str:
        return f"image folder '{self.root}'"

    def _classnames(self, folders: list[str], spec: ClassNamesSpec | None) -> list[str]:
        owner = f"image folder '{self.root}'"
        if spec is None:
            names = [folder.replace("_", " ") for folder in folders]
            check_caption_names(
                names,
                f"{owner}: class folders",
                "pass classnames= (a mapping folder -> name, a list in sorted folder order, "
                "or a file)",
            )
            return names
        given = read_classnames(spec, owner)
        if isinstance(given, dict):
            unnamed = [folder for folder in folders if folder not in given]
            if unnamed:
                raise StarftError(f"{owner}: class folder '{unnamed[0]}' is not in classnames")
            return [given[folder] for folder in folders]
        if len(given) != len(folders):
            raise StarftError(
                f"{owner} has {len(folders)} class folders but {len(given)} class names were "
                "given (a mapping folder -> name allows a subset of the classes)"
            )
        return given

    def read_regions(self, index: int, image: Any) -> dict[str, Any]:
        return self.regions.read(index, image)

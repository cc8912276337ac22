"""ImageNet-1k and its distribution-shift test sets (V2, Sketch, -R, -A) in their released layouts.

All share ImageNet's label space: class index = position of the WordNet id in the sorted list of
the 1000 ImageNet-1k wnids (shipped as data), class names = CLIP's ImageNet names from open_clip.
ImageNet, V2 and Sketch label into all 1000 classes. ImageNet-R and -A hold 200 classes each: the
subset is derived from the wnid folders present, labels are positions in that subset, and the
dataset declares a projection from the 1000-class space so ImageNet-trained heads are evaluated the
WiSE-FT way (1000-way logits, then the subset's columns).

torchvision's ``ImageNet`` reader needs the devkit archive and writes a ``meta.bin`` next to the
data; the class-folder layout read here is what it (and ``ImageFolder``) produce and what every
ImageNet mirror ships, so the folders are scanned directly with torchvision's scanner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starft.data.base import Transform
from starft.data.benchmarks.common import (
    BenchmarkDataset,
    check_split,
    class_dirs,
    imagenet_classnames,
    imagenet_wnids,
    locate,
    require,
    scan_images,
    wnid_index,
)
from starft.data.label_space import IMAGENET, make_projection
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

IMAGENET_TEMPLATES = "openai_imagenet"
V2_VARIANTS = {
    "matched-frequency": "imagenetv2-matched-frequency-format-val",
    "threshold-0.7": "imagenetv2-threshold0.7-format-val",
    "top-images": "imagenetv2-top-images-format-val",
}


def _wnid_folders(folder: Path, name: str, layout: str) -> dict[str, int]:
    """``{wnid folder: ImageNet-1k index}`` for every class folder; unknown names are errors."""
    dirs = class_dirs(folder)
    if not dirs:
        raise StarftError(f"{name}: '{folder}' has no class folders (expected layout: {layout})")
    mapping = {}
    for wnid in dirs:
        index = wnid_index(wnid)
        if index is None:
            raise StarftError(
                f"{name}: class folder '{folder / wnid}' is not an ImageNet-1k WordNet id "
                f"(expected layout: {layout})"
            )
        mapping[wnid] = index
    return mapping


class _ImageNetSpace(BenchmarkDataset):
    """Images labelled with all 1000 ImageNet classes (ImageNet, V2, Sketch)."""

    label_space = IMAGENET
    projection = None
    default_templates = IMAGENET_TEMPLATES

    def _labelled(self, folder: Path, mapping: dict[str, int]) -> dict[str, Any]:
        """``folder/<class folder>/<image>`` labelled by ``mapping``, in the 1000-class space."""
        paths, labels = scan_images(folder, mapping, self.name, self.layout)
        return {"classnames": imagenet_classnames(), "labels": labels, "image_paths": paths}


class ImageNet(_ImageNetSpace):
    """ImageNet-1k (ILSVRC2012) train or val in class-folder layout."""

    name = "imagenet"
    folders = ("imagenet", "ILSVRC2012", "imagenet-1k")
    splits = ("train", "val")
    layout = "imagenet/{train,val}/<wnid>/<image>.JPEG (val sorted into wnid folders too)"
    markers = splits

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        *,
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        """Only the default split differs from :class:`BenchmarkDataset`'s (``val``)."""
        super().__init__(
            root, split, transform=transform, templates=templates, on_bad_image=on_bad_image
        )

    def _read(self, split: str) -> dict[str, Any]:
        folder = require(self.root / split, self.name, self.layout, f"split '{split}'")
        return self._labelled(folder, _wnid_folders(folder, self.name, self.layout))


class ImageNetSketch(_ImageNetSpace):
    """ImageNet-Sketch: 50 sketches for each of the 1000 classes."""

    name = "imagenet_sketch"
    folders = ("sketch", "imagenet-sketch", "ImageNet-Sketch")
    layout = "sketch/<wnid>/<image>.JPEG (ImageNet-Sketch.zip extracted)"

    def _locate(self, root: str | Path) -> Path:
        """Any ImageNet wnid folder marks the dataset folder (as for IN-R and IN-A)."""
        return locate(root, self.name, self.folders, imagenet_wnids(), self.layout)

    def _read(self, split: str) -> dict[str, Any]:
        return self._labelled(self.root, _wnid_folders(self.root, self.name, self.layout))


class ImageNetV2(_ImageNetSpace):
    """ImageNetV2 (default: matched-frequency); class folders are ImageNet indices ``0..999``."""

    name = "imagenet_v2"
    folders = tuple(V2_VARIANTS.values())
    layout = "imagenetv2-matched-frequency-format-val/<class index 0..999>/<image>.jpeg"
    markers = tuple(str(i) for i in range(1000))

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        *,
        variant: str = "matched-frequency",
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        check_split(self.name, split, self.splits)  # a bad split is reported first
        if variant not in V2_VARIANTS:
            raise StarftError(
                f"{self.name}: unknown variant '{variant}' (variants: {', '.join(V2_VARIANTS)})"
            )
        self.variant = variant
        super().__init__(
            root, split, transform=transform, templates=templates, on_bad_image=on_bad_image
        )

    def _locate(self, root: str | Path) -> Path:
        """Only the chosen variant's folder, not any of the three."""
        folders = (V2_VARIANTS[self.variant],)
        return locate(root, self.name, folders, self.markers, self.layout)

    def _read(self, split: str) -> dict[str, Any]:
        mapping = {}
        for folder in class_dirs(self.root):
            if not (folder.isdigit() and int(folder) < 1000):
                raise StarftError(
                    f"{self.name}: class folder '{self.root / folder}' is not a class index "
                    f"0..999 (expected layout: {self.layout})"
                )
            mapping[folder] = int(folder)
        return self._labelled(self.root, mapping)


class _ImageNetSubset(BenchmarkDataset):
    """A 200-class ImageNet subset (IN-R, IN-A); the classes are the wnid folders present."""

    label_space = None
    default_templates = IMAGENET_TEMPLATES

    def _locate(self, root: str | Path) -> Path:
        return locate(root, self.name, self.folders, imagenet_wnids(), self.layout)

    def _read(self, split: str) -> dict[str, Any]:
        mapping = _wnid_folders(self.root, self.name, self.layout)
        wnids = sorted(mapping, key=mapping.__getitem__)  # ImageNet index order (= wnid order)
        self.imagenet_indices = [mapping[wnid] for wnid in wnids]
        paths, labels = scan_images(
            self.root, {wnid: k for k, wnid in enumerate(wnids)}, self.name, self.layout
        )
        names = imagenet_classnames()
        self.projection = make_projection(IMAGENET, names, [[i] for i in self.imagenet_indices])
        return {
            "classnames": [names[i] for i in self.imagenet_indices],
            "labels": labels,
            "image_paths": paths,
        }


class ImageNetR(_ImageNetSubset):
    """ImageNet-R(endition): art, cartoons, sculptures ... of 200 ImageNet classes."""

    name = "imagenet_r"
    folders = ("imagenet-r",)
    layout = "imagenet-r/<wnid>/<image>.jpg (200 wnid folders, imagenet-r.tar extracted)"


class ImageNetA(_ImageNetSubset):
    """ImageNet-A: natural adversarial examples of 200 ImageNet classes."""

    name = "imagenet_a"
    folders = ("imagenet-a",)
    layout = "imagenet-a/<wnid>/<image>.jpg (200 wnid folders, imagenet-a.tar extracted)"

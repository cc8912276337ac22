"""ObjectNet restricted to its 113 classes that overlap ImageNet-1k, evaluated the WiSE-FT way.

The label space is fixed: the 113 mapped image folders in sorted order (class names are ObjectNet's
names, lower-cased), whatever subset of them is on disk; images in the other 200 folders are not
used. Each class maps to one or more ImageNet classes (``resources/benchmarks/objectnet.json``), and
evaluation in the ImageNet space takes, per ObjectNet class, the max logit over its ImageNet
classes.
ObjectNet images carry a thin border that the WiSE-FT protocol crops (2 px each side) before the
model's transform; ``crop_border`` controls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from starft.data.base import Transform
from starft.data.benchmarks.common import (
    BenchmarkDataset,
    check_split,
    imagenet_classnames,
    is_image,
    require,
)
from starft.data.benchmarks.imagenet import IMAGENET_TEMPLATES
from starft.data.label_space import IMAGENET, make_projection
from starft.data.resources import read_json_resource
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

_RESOURCE = "benchmarks/objectnet.json"


class ObjectNet(BenchmarkDataset):
    """ObjectNet 1.0 test images of the 113 ImageNet-overlapping classes."""

    name = "objectnet"
    folders = ("objectnet-1.0", "objectnet")
    splits = ("test",)
    layout = "objectnet-1.0/images/<class folder>/<image>.png (objectnet-1.0.zip extracted)"
    label_space = None
    markers = ("images",)
    default_templates = IMAGENET_TEMPLATES
    fixed_images = True  # a fixed border crop of the file

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        *,
        crop_border: int = 2,
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        check_split(self.name, split, self.splits)  # a bad split is reported first
        if crop_border < 0:
            raise StarftError(f"{self.name}: crop_border must be >= 0, got {crop_border}")
        self.crop_border = int(crop_border)
        super().__init__(
            root, split, transform=transform, templates=templates, on_bad_image=on_bad_image
        )

    def _read(self, split: str) -> dict[str, Any]:
        images = require(self.root / "images", self.name, self.layout)
        classes = read_json_resource(_RESOURCE)["classes"]
        folders = sorted(classes)
        paths, labels = [], []
        for label, folder in enumerate(folders):
            class_dir = images / folder
            if class_dir.is_dir():
                files = sorted(p for p in class_dir.iterdir() if is_image(p))
                paths.extend(str(p) for p in files)
                labels.extend([label] * len(files))
        if not paths:
            raise StarftError(
                f"{self.name}: no images of the 113 ImageNet-overlapping classes under "
                f"'{images}' (expected layout: {self.layout})"
            )
        self.projection = make_projection(
            IMAGENET, imagenet_classnames(), [classes[f]["imagenet"] for f in folders]
        )
        return {
            "classnames": [classes[f]["name"].lower() for f in folders],
            "labels": labels,
            "image_paths": paths,
        }

    def read_image(self, index: int) -> Image.Image:
        image = super().read_image(index)
        b = self.crop_border
        if b and image.width > 2 * b and image.height > 2 * b:
            image = image.crop((b, b, image.width - b, image.height - b))
        return image

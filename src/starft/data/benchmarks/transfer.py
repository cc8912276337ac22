"""Object-classification benchmarks: Caltech101, STL-10, Stanford Cars, Flowers102.

The layouts are torchvision's (same folder and file names), but the files are parsed here: the
torchvision readers of STL-10 and Flowers102 check the MD5 of every file (so any re-packed or test
copy is refused with a hint to ``download=True``, which cannot work offline), Caltech101's creates
folders under the given root and assumes contiguous image numbers, and StanfordCars keeps its
samples in a private attribute. ``.mat`` files need scipy (the ``datasets`` extra).

Caltech101 has no official split: ``split="all"`` is every image (with the ``BACKGROUND_Google``
class kept as "background", as CLIP_benchmark does for zero-shot evaluation); ``train``/``val``/
``test`` read CoOp's ``split_zhou_Caltech101.json`` placed in the dataset folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from starft.data.base import Transform
from starft.data.benchmarks.common import (
    ArrayDataset,
    BenchmarkDataset,
    class_dirs,
    is_image,
    packaged_classnames,
    require,
)
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

COOP_CALTECH_SPLIT = "split_zhou_Caltech101.json"
FLOWERS_SETID_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}


def _loadmat(path: Path, name: str, layout: str) -> dict[str, Any]:
    require(path, name, layout)
    try:
        from scipy.io import loadmat
    except ImportError:
        raise StarftError(
            f"{name}: reading '{path.name}' needs scipy (pip install 'starft[datasets]')"
        ) from None
    try:
        return loadmat(str(path), squeeze_me=True)
    except (OSError, ValueError, TypeError) as error:
        raise StarftError(f"{name}: cannot read '{path}': {error}") from None


def _mat_field(mat: dict[str, Any], key: str, path: Path, name: str) -> np.ndarray:
    if key not in mat:
        raise StarftError(f"{name}: '{path}' has no '{key}' entry")
    return np.atleast_1d(mat[key])


class Caltech101(BenchmarkDataset):
    """Caltech101 from ``101_ObjectCategories`` (all images, or CoOp's train/val/test split)."""

    name = "caltech101"
    folders = ("caltech101", "caltech-101")
    splits = ("all", "train", "val", "test")
    layout = (
        "caltech101/101_ObjectCategories/<category>/image_NNNN.jpg "
        f"(+ caltech101/{COOP_CALTECH_SPLIT} for train/val/test)"
    )
    markers = ("101_ObjectCategories",)
    default_templates = "caltech101"

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        *,
        include_background: bool = True,
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        self.include_background = include_background
        super().__init__(
            root, split, transform=transform, templates=templates, on_bad_image=on_bad_image
        )

    def _read(self, split: str) -> dict[str, Any]:
        images = require(self.root / "101_ObjectCategories", self.name, self.layout)
        if split == "all":
            classnames, paths, labels = self._scan(images, self.include_background)
        else:
            classnames, paths, labels = self._coop_split(images, split)
        return {"classnames": classnames, "labels": labels, "image_paths": paths}

    def _scan(self, images: Path, background: bool) -> tuple[list[str], list[str], list[int]]:
        known = packaged_classnames("caltech101")
        folders = [f for f in class_dirs(images) if background or f != "BACKGROUND_Google"]
        unknown = [f for f in folders if f not in known]
        if unknown:
            raise StarftError(
                f"{self.name}: '{images / unknown[0]}' is not a Caltech101 category folder "
                f"(expected layout: {self.layout})"
            )
        paths, labels = [], []
        for label, folder in enumerate(folders):
            files = sorted(p for p in (images / folder).iterdir() if is_image(p))
            paths.extend(str(p) for p in files)
            labels.extend([label] * len(files))
        if not paths:
            raise StarftError(f"{self.name}: no images under '{images}' ({self.layout})")
        return [known[f] for f in folders], paths, labels

    def _coop_split(self, images: Path, split: str) -> tuple[list[str], list[str], list[int]]:
        path = require(self.root / COOP_CALTECH_SPLIT, self.name, self.layout, f"split '{split}'")
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))[split]
            rows = [(str(p), int(label), str(cname)) for p, label, cname in entries]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StarftError(
                f"{self.name}: '{path}' is not a CoOp split file with a '{split}' list of "
                f"[path, label, classname] entries ({error})"
            ) from None
        names: dict[int, str] = {}
        for _, label, cname in rows:
            names.setdefault(label, cname)
        if sorted(names) != list(range(len(names))):
            raise StarftError(f"{self.name}: '{path}' labels are not 0..K-1 in split '{split}'")
        classnames = [names[k] for k in range(len(names))]
        return classnames, [str(images / p) for p, _, _ in rows], [label for _, label, _ in rows]


class STL10(BenchmarkDataset, ArrayDataset):
    """STL-10 labelled train (5k) or test (8k) images, 96x96, from the binary release."""

    name = "stl10"
    folders = ("stl10_binary",)
    splits = ("train", "test")
    layout = "stl10_binary/{train,test}_X.bin + {train,test}_y.bin (binary version)"
    markers = ("test_X.bin",)
    default_templates = "stl10"

    def _read(self, split: str) -> dict[str, Any]:
        x_path = require(self.root / f"{split}_X.bin", self.name, self.layout)
        y_path = require(self.root / f"{split}_y.bin", self.name, self.layout)
        pixels = np.memmap(x_path, dtype=np.uint8, mode="r")  # read per sample, not 200 MB up front
        labels = np.fromfile(y_path, dtype=np.uint8).astype(int) - 1
        if pixels.size != len(labels) * 3 * 96 * 96:
            raise StarftError(
                f"{self.name}: '{x_path}' holds {pixels.size} bytes, not {len(labels)} images of "
                "3x96x96 as its labels file says"
            )
        # Stored column-major per channel: [N, C, W, H] -> [N, H, W, C].
        images = pixels.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
        return {
            "images": images,
            "labels": labels.tolist(),
            "classnames": packaged_classnames("stl10"),
        }


class StanfordCars(BenchmarkDataset):
    """Stanford Cars (196 classes) in torchvision's devkit layout."""

    name = "stanford_cars"
    folders = ("stanford_cars",)
    splits = ("train", "test")
    layout = (
        "stanford_cars/{devkit/{cars_meta.mat,cars_train_annos.mat},cars_train/,"
        "cars_test_annos_withlabels.mat,cars_test/}"
    )
    markers = ("devkit",)
    default_templates = "cars"

    def _read(self, split: str) -> dict[str, Any]:
        devkit = self.root / "devkit"
        meta_path = devkit / "cars_meta.mat"
        classnames = [
            str(c)
            for c in _mat_field(
                _loadmat(meta_path, self.name, self.layout), "class_names", meta_path, self.name
            )
        ]
        if split == "train":
            annos_path, image_dir = devkit / "cars_train_annos.mat", self.root / "cars_train"
        else:
            annos_path = self.root / "cars_test_annos_withlabels.mat"
            image_dir = self.root / "cars_test"
        annotations = _mat_field(
            _loadmat(annos_path, self.name, self.layout), "annotations", annos_path, self.name
        )
        try:
            paths = [str(image_dir / str(a["fname"])) for a in annotations]
            labels = [int(a["class"]) - 1 for a in annotations]  # 1-based in the .mat files
        except (ValueError, IndexError, KeyError) as error:
            raise StarftError(
                f"{self.name}: '{annos_path}' annotations need 'fname' and 'class' fields ({error})"
            ) from None
        return {"classnames": classnames, "labels": labels, "image_paths": paths}


class Flowers102(BenchmarkDataset):
    """Oxford Flowers102 train/val/test from ``imagelabels.mat`` and ``setid.mat``."""

    name = "flowers102"
    folders = ("flowers-102", "flowers102")
    splits = ("train", "val", "test")
    layout = "flowers-102/{jpg/image_NNNNN.jpg,imagelabels.mat,setid.mat}"
    markers = ("setid.mat",)
    default_templates = "flowers"

    def _read(self, split: str) -> dict[str, Any]:
        setid_path, labels_path = self.root / "setid.mat", self.root / "imagelabels.mat"
        ids = _mat_field(
            _loadmat(setid_path, self.name, self.layout),
            FLOWERS_SETID_KEYS[split],
            setid_path,
            self.name,
        )
        all_labels = _mat_field(
            _loadmat(labels_path, self.name, self.layout), "labels", labels_path, self.name
        )
        bad = [int(i) for i in ids if not 1 <= int(i) <= len(all_labels)]
        if bad:
            raise StarftError(
                f"{self.name}: '{setid_path}' lists image id {bad[0]} but '{labels_path}' has "
                f"labels for ids 1..{len(all_labels)}"
            )
        return {
            "classnames": packaged_classnames("flowers102"),
            "labels": [int(all_labels[int(i) - 1]) - 1 for i in ids],  # 1-based ids and labels
            "image_paths": [str(self.root / "jpg" / f"image_{int(i):05d}.jpg") for i in ids],
        }

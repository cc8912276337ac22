"""Tiny fake copies of every benchmark's on-disk layout, in the exact formats the adapters parse.

Each builder writes one dataset under ``base`` in its canonical folder (so ``base`` works as a
suite root) and returns that folder. Images are 8x8 and their colour encodes a number (see
:func:`colour`) so tests can check that sample ``i`` really is the file the layout says.
:func:`build_all` writes all of them and returns the ``create_dataset`` arguments of each
registered name.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# ImageNet wnids with known indices: 0 tench, 1 goldfish, 2 great white shark, 999 toilet paper.
WNIDS = {"n01440764": 0, "n01443537": 1, "n01484850": 2, "n15075141": 999}


def colour(value: int) -> tuple[int, int, int]:
    """A colour encoding ``value % 256`` in the red channel, exact in PNG (lossless)."""
    value %= 256
    return (value, 255 - value, 7)


def write_image(path: Path, value: int = 0, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour(value)).save(path, format="PNG")
    return path


def imagenet(base: Path) -> Path:
    """imagenet/{train,val}/<wnid>/: 2 val images for 3 classes, 1 train image for 1."""
    folder = base / "imagenet"
    for wnid in ("n01440764", "n01443537", "n15075141"):
        for i in range(2):
            write_image(folder / "val" / wnid / f"ILSVRC2012_val_{wnid}_{i}.JPEG", WNIDS[wnid])
    write_image(folder / "train" / "n01484850" / "a.JPEG", 2)
    return folder


def wnid_folder(base: Path, name: str, wnids: tuple[str, ...], per_class: int = 2) -> Path:
    folder = base / name
    for wnid in wnids:
        for i in range(per_class):
            write_image(folder / wnid / f"{i}.jpg", WNIDS[wnid])
    return folder


def imagenet_v2(base: Path) -> Path:
    folder = base / "imagenetv2-matched-frequency-format-val"
    for index in (0, 2, 999):
        write_image(folder / str(index) / "a.jpeg", index % 256)
    return folder


def objectnet(base: Path) -> Path:
    """Two mapped classes (alarm_clock, banana) and one unmapped folder (squeegee)."""
    images = base / "objectnet-1.0" / "images"
    for folder, n in (("alarm_clock", 2), ("banana", 1), ("squeegee", 2)):
        for i in range(n):
            write_image(images / folder / f"{i}.png", i, size=12)
    return base / "objectnet-1.0"


# Waterbirds rows: (filename, y, split, place); test rows cover all four groups.
WATERBIRDS_ROWS = [
    ("001.a/1.jpg", 0, 0, 0),
    ("001.a/2.jpg", 1, 1, 1),
    ("002.b/1.jpg", 0, 2, 0),
    ("002.b/2.jpg", 0, 2, 0),
    ("002.b/3.jpg", 0, 2, 1),
    ("003.c/1.jpg", 1, 2, 0),
    ("003.c/2.jpg", 1, 2, 1),
    ("003.c/3.jpg", 1, 2, 1),
]


def waterbirds(base: Path) -> Path:
    folder = base / "waterbird_complete95_forest2water2"
    lines = ["img_id,img_filename,y,split,place,place_filename"]
    for i, (name, y, split, place) in enumerate(WATERBIRDS_ROWS):
        write_image(folder / name, i)
        lines.append(f"{i + 1},{name},{y},{split},{place},/x/{i}.jpg")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return folder


def pacs(base: Path) -> Path:
    """PACS/<domain>/<class>: photo has dog+house, sketch has dog, art_painting has person."""
    folder = base / "PACS"
    for domain, cls, n in (("photo", "dog", 2), ("photo", "house", 1), ("sketch", "dog", 1)):
        for i in range(n):
            write_image(folder / domain / cls / f"{i}.jpg", i)
    write_image(folder / "art_painting" / "person" / "0.png", 9)
    (folder / "cartoon").mkdir()
    return folder


def _cifar_batch(path: Path, labels: list[int], key: str) -> None:
    rng = np.random.default_rng(len(labels))
    data = rng.integers(0, 256, size=(len(labels), 3 * 32 * 32), dtype=np.uint8)
    data[:, 0] = np.arange(len(labels))  # pixel (0, 0) red = row index
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump({"data": data, key: labels, "batch_label": "fake"}, handle)


def cifar10(base: Path) -> Path:
    folder = base / "cifar-10-batches-py"
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}", [i % 10, (i + 1) % 10], "labels")
    _cifar_batch(folder / "test_batch", [3, 1, 4, 1, 5], "labels")
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({"label_names": ["airplane"] * 10}, handle)
    return folder


def cifar100(base: Path) -> Path:
    folder = base / "cifar-100-python"
    _cifar_batch(folder / "train", [0, 99, 50], "fine_labels")
    _cifar_batch(folder / "test", [1, 2], "fine_labels")
    with (folder / "meta").open("wb") as handle:
        pickle.dump({"fine_label_names": ["apple"] * 100}, handle)
    return folder


def _images(n: int, offset: int = 0) -> np.ndarray:
    images = np.zeros((n, 32, 32, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) + offset
    return images


def cifar10_1(base: Path) -> Path:
    folder = base / "cifar10.1"
    folder.mkdir(parents=True)
    np.save(folder / "cifar10.1_v6_data.npy", _images(3))
    np.save(folder / "cifar10.1_v6_labels.npy", np.array([9, 8, 7], dtype=np.int64))
    return folder


CIFAR102_TEST_LABELS = [3, 3, 1]


def cifar10_2(base: Path) -> Path:
    folder = base / "cifar10.2"
    folder.mkdir(parents=True)
    np.savez(folder / "cifar102_train.npz", images=_images(2), labels=np.array([0, 1]))
    labels = np.array(CIFAR102_TEST_LABELS)
    np.savez(folder / "cifar102_test.npz", images=_images(3, offset=100), labels=labels)
    return folder


CALTECH_FOLDERS = ("BACKGROUND_Google", "Faces", "accordion", "yin_yang")


def caltech101(base: Path) -> Path:
    folder = base / "caltech101"
    images = folder / "101_ObjectCategories"
    for k, name in enumerate(CALTECH_FOLDERS):
        for i in (1, 3):  # not contiguous: the reader lists files, it does not assume numbering
            write_image(images / name / f"image_{i:04d}.jpg", 10 * k + i)
    split = {
        "train": [
            ["accordion/image_0001.jpg", 0, "accordion"],
            ["Faces/image_0001.jpg", 1, "face"],
        ],
        "val": [["accordion/image_0003.jpg", 0, "accordion"]],
        "test": [["Faces/image_0003.jpg", 1, "face"], ["accordion/image_0003.jpg", 0, "accordion"]],
    }
    (folder / "split_zhou_Caltech101.json").write_text(json.dumps(split))
    return folder


STL10_TEST_LABELS = [1, 10, 5]  # 1-based in the .bin file


def stl10(base: Path) -> Path:
    folder = base / "stl10_binary"
    folder.mkdir(parents=True)
    for split, labels in (("train", [2, 3]), ("test", STL10_TEST_LABELS)):
        pixels = np.zeros((len(labels), 3, 96, 96), dtype=np.uint8)  # [N, C, W, H] on disk
        pixels[:, 0, 5, 0] = np.arange(1, len(labels) + 1)  # red at x=5, y=0
        pixels.tofile(folder / f"{split}_X.bin")
        np.array(labels, dtype=np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("airplane\nbird\n")
    return folder


def _struct(rows: list[tuple[str, int]]) -> np.ndarray:
    array = np.zeros(len(rows), dtype=[("fname", object), ("class", object)])
    for i, (fname, label) in enumerate(rows):
        array[i] = (fname, np.uint8(label))
    return array


def stanford_cars(base: Path) -> Path:
    from scipy.io import savemat

    folder = base / "stanford_cars"
    (folder / "devkit").mkdir(parents=True)
    names = np.array([f"Car Model {k} 2012" for k in range(196)], dtype=object)
    savemat(folder / "devkit" / "cars_meta.mat", {"class_names": names})
    train, test = [("00001.jpg", 1), ("00002.jpg", 196)], [("00001.jpg", 7)]
    savemat(folder / "devkit" / "cars_train_annos.mat", {"annotations": _struct(train)})
    savemat(folder / "cars_test_annos_withlabels.mat", {"annotations": _struct(test)})
    for name, _ in train:
        write_image(folder / "cars_train" / name, 1)
    write_image(folder / "cars_test" / "00001.jpg", 7)
    return folder


def flowers102(base: Path) -> Path:
    from scipy.io import savemat

    folder = base / "flowers-102"
    folder.mkdir(parents=True)
    labels = np.array([3, 1, 102, 3, 50], dtype=np.uint8)  # 1-based labels of images 1..5
    savemat(folder / "imagelabels.mat", {"labels": labels})
    ids = {"trnid": np.array([1, 2]), "valid": np.array([3]), "tstid": np.array([5, 4])}
    savemat(folder / "setid.mat", ids)
    for i in range(1, 6):
        write_image(folder / "jpg" / f"image_{i:05d}.jpg", i)
    return folder


IWILDCAM_ROWS = [("train", "a.jpg", 0), ("id_test", "b.jpg", 181), ("id_test", "c.jpg", 5)]


def iwildcam(base: Path) -> Path:
    folder = base / "iwildcam_v2.0"
    lines = ["split,location_remapped,filename,y"]
    for i, (split, name, y) in enumerate(IWILDCAM_ROWS):
        lines.append(f"{split},{i},{name},{y}")
        write_image(folder / "train" / name, i)
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return folder


# FMoW rows (split column, category, country, timestamp) -> WILDS split in the comment.
FMOW_ROWS = [
    ("train", "airport", "USA", "2010-03-01T10:00:00Z"),  # train
    ("test", "zoo", "FRA", "2012-12-31T23:59:59Z"),  # id_test (Europe)
    ("test", "dam", "KEN", "2011-06-01T08:00:00.123Z"),  # id_test (Africa)
    ("seq", "dam", "KEN", "2011-06-01T08:00:00Z"),  # never used
    ("test", "park", "XXX", "2016-01-01T00:00:00Z"),  # test (OOD; unknown country -> Other)
    ("val", "park", "USA", "2014-05-05T05:05:05Z"),  # val (OOD)
    ("test", "barn", "USA", "2014-05-05T05:05:05Z"),  # unused: test row in the val years
]


def fmow(base: Path) -> Path:
    folder = base / "fmow_v1.1"
    lines = ["split,img_filename,category,country_code,timestamp"]
    for i, (split, category, country, stamp) in enumerate(FMOW_ROWS):
        lines.append(f"{split},x_{i}.jpg,{category},{country},{stamp}")
        write_image(folder / "images" / f"rgb_img_{i}.png", i)
    (folder / "rgb_metadata.csv").write_text("\n".join(lines) + "\n")
    mapping = (
        "name,alpha-2,alpha-3,region\nUSA,US,USA,Americas\nFR,FR,FRA,Europe\nKE,KE,KEN,Africa\n"
    )
    (folder / "country_code_mapping.csv").write_text(mapping)
    return folder


def build_all(base: Path) -> dict[str, dict[str, Any]]:
    """Every fake tree under ``base``; returns tiny ``create_dataset`` kwargs per dataset name."""
    imagenet(base)
    wnid_folder(base, "imagenet-r", ("n01443537", "n15075141"))
    wnid_folder(base, "imagenet-a", ("n01440764", "n01484850", "n15075141"), per_class=1)
    (base / "imagenet-a" / "README.txt").write_text("fake\n")
    wnid_folder(base, "sketch", ("n01440764", "n01443537"), per_class=1)
    for build in (imagenet_v2, objectnet, waterbirds, pacs, cifar10, cifar100, cifar10_1):
        build(base)
    for build in (cifar10_2, caltech101, stl10, stanford_cars, flowers102, iwildcam, fmow):
        build(base)
    root = {"root": base}
    names = [
        "imagenet",
        "imagenet_v2",
        "imagenet_r",
        "imagenet_a",
        "imagenet_sketch",
        "objectnet",
        "waterbirds",
        "pacs",
        "cifar10",
        "cifar100",
        "cifar10_1",
        "cifar10_2",
        "cifar10_02",
        "caltech101",
        "stl10",
        "stanford_cars",
        "flowers102",
    ]
    kwargs: dict[str, dict[str, Any]] = {name: dict(root) for name in names}
    kwargs["iwildcam"] = {"root": base, "split": "id_test"}
    kwargs["fmow"] = {"root": base, "split": "id_test"}
    return kwargs

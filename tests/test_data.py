"""Datasets: CSV/TSV, image folders, the synthetic dataset, bad images, collate and the registry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from starft.data import (
    DATASETS,
    ClassificationDataset,
    CsvDataset,
    ImageFolderDataset,
    SyntheticDataset,
    collate_samples,
    create_dataset,
)
from starft.errors import StarftError


def to_tensor(image: Image.Image) -> torch.Tensor:
    return pil_to_tensor(image).float() / 255.0


def write_png(path: Path, colour: tuple[int, int, int], size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def write_table(path: Path, header: list[str], rows: list[list[object]], sep: str = ",") -> Path:
    lines = [sep.join(header)] + [sep.join(str(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Three tiny PNGs in tmp_path/images, and classnames.txt naming classes 0-2 beside CSVs."""
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        write_png(tmp_path / "images" / f"{i}.png", colour)
    (tmp_path / "classnames.txt").write_text("red\ngreen\nblue\n", encoding="utf-8")
    return tmp_path


# ----------------------------------------------------------------------------- CSV / TSV


def test_csv_happy_path(image_dir: Path) -> None:
    csv = write_table(
        image_dir / "train.csv",
        ["filepath", "label"],
        [["images/0.png", 0], ["images/1.png", 1], ["images/2.png", 2]],
    )
    ds = CsvDataset(csv, transform=to_tensor)
    assert len(ds) == 3 and ds.labels == [0, 1, 2] and ds.num_classes == 3
    assert ds.classnames == ["red", "green", "blue"]  # classnames.txt beside the CSV
    assert ds.templates == ["a photo of a {}."]
    assert ds.groups is None and ds.group_names is None
    sample = ds[1]
    assert set(sample) == {"image", "label", "group", "index"}
    assert sample["label"] == 1 and sample["group"] == -1 and sample["index"] == 1
    assert sample["image"].shape == (3, 8, 8)
    assert torch.allclose(sample["image"][:, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(IndexError):
        ds[3]


def test_csv_without_transform_returns_rgb_pil(image_dir: Path) -> None:
    write_png(image_dir / "images" / "gray.png", (7, 7, 7))
    Image.open(image_dir / "images" / "gray.png").convert("L").save(image_dir / "images" / "g.png")
    csv = write_table(image_dir / "t.csv", ["filepath", "label"], [["images/g.png", 0]])
    image = CsvDataset(csv)[0]["image"]
    assert isinstance(image, Image.Image) and image.mode == "RGB"


def test_tsv_with_captions_groups_classnames_and_root(image_dir: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    meta.mkdir()
    tsv = write_table(
        meta / "train.tsv",
        ["filepath", "label", "title", "group"],
        [["images/0.png", 1, "a red square, with a comma", 0], ["images/2.png", 0, "blue.", 1]],
        sep="\t",
    )
    (meta / "classnames.txt").write_text("tench\ngoldfish\n\n", encoding="utf-8")
    ds = CsvDataset(tsv, root=image_dir, templates=["itap of a {}."])
    assert ds.classnames == ["tench", "goldfish"] and ds.templates == ["itap of a {}."]
    assert ds.groups == [0, 1] and ds.group_names == ["group_0", "group_1"]
    sample = ds[0]
    assert sample["caption"] == "a red square, with a comma"
    assert sample["label"] == 1 and sample["group"] == 0


def test_csv_explicit_columns_separator_and_names(image_dir: Path) -> None:
    csv = write_table(
        image_dir / "data.txt",
        ["img", "y", "text", "env"],
        [["images/0.png", 0, "x", 1], ["images/1.png", 1, "y", 0]],
        sep=";",
    )
    ds = CsvDataset(
        csv,
        sep=";",
        image_key="img",
        label_key="y",
        caption_key="text",
        group_key="env",
        classnames=["cat", "dog"],
        group_names=["land", "water"],
    )
    assert ds.group_names == ["land", "water"] and ds[0]["group"] == 1
    assert ds[1]["caption"] == "y"


def test_csv_caption_column_used_when_present(image_dir: Path) -> None:
    csv = write_table(
        image_dir / "c.csv", ["filepath", "label", "caption"], [["images/0.png", 0, "hello"]]
    )
    assert CsvDataset(csv)[0]["caption"] == "hello"


@pytest.mark.parametrize(
    ("header", "rows", "kwargs", "expected"),
    [
        (["path", "label"], [["images/0.png", 0]], {}, ["column 'filepath'", "'path', 'label'"]),
        (["filepath", "cls"], [["images/0.png", 0]], {}, ["column 'label'", "'cls'"]),
        (["filepath", "label"], [["images/0.png", 0]], {"caption_key": "txt"}, ["'txt'"]),
        (["filepath", "label"], [["images/0.png", 0]], {"group_key": "env"}, ["'env'"]),
        (
            ["filepath", "label"],
            [["a.png", 0], ["b.png", "cat"]],
            {},
            ["row 2", "'label'", "'cat'"],
        ),
        (["filepath", "label"], [["a.png", 0], ["b.png", -1]], {}, ["row 2", "'label'", "'-1'"]),
        (["filepath", "label"], [["a.png", 1.5]], {}, ["row 1", "'label'", "'1.5'"]),
        (
            ["filepath", "label"],
            [["a.png", 0], ["b.png", 2]],
            {"classnames": ["a", "b"]},
            ["row 2", "'label'", "class 2 is out of range for 2 class names"],
        ),
        (
            ["filepath", "label", "group"],
            [["a.png", 0, 3]],
            {"group_names": ["x", "y"]},
            ["row 1", "'group'", "group 3"],
        ),
        (["filepath", "label"], [["a.png", 0], ["", 0]], {}, ["row 2", "'filepath'", "empty"]),
        (
            ["filepath", "label", "title"],
            [["a.png", 0, "t"], ["b.png"]],
            {},
            ["row 2", "few fields"],
        ),
        (["filepath", "label"], [], {}, ["no data rows"]),
    ],
    ids=[
        "no-image-column",
        "no-label-column",
        "no-caption-column",
        "no-group-column",
        "label-not-int",
        "label-negative",
        "label-float",
        "label-beyond-classnames",
        "group-beyond-names",
        "empty-path",
        "short-row",
        "header-only",
    ],
)
def test_csv_validation_errors(
    tmp_path: Path, header: list[str], rows: list[list[object]], kwargs: dict, expected: list[str]
) -> None:
    csv = write_table(tmp_path / "bad.csv", header, rows)
    (tmp_path / "classnames.txt").write_text("a\nb\nc\n", encoding="utf-8")
    with pytest.raises(StarftError) as info:
        CsvDataset(csv, **kwargs)
    message = str(info.value)
    assert "bad.csv" in message and "\n" not in message
    for part in expected:
        assert part in message


def test_csv_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(StarftError, match=r"nope\.csv' does not exist"):
        CsvDataset(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(StarftError, match=r"empty\.csv' is empty"):
        CsvDataset(empty)


def test_csv_label_beyond_classnames_file(tmp_path: Path) -> None:
    (tmp_path / "classnames.txt").write_text("a\nb\n", encoding="utf-8")
    csv = write_table(tmp_path / "d.csv", ["filepath", "label"], [["x.png", 0], ["y.png", 5]])
    with pytest.raises(StarftError, match=r"d\.csv', row 2 .*class 5 is out of range"):
        CsvDataset(csv)


def test_csv_classnames_file_with_inner_blank_line(tmp_path: Path) -> None:
    (tmp_path / "classnames.txt").write_text("a\n\nb\n", encoding="utf-8")
    csv = write_table(tmp_path / "d.csv", ["filepath", "label"], [["x.png", 0]])
    with pytest.raises(StarftError, match=r"classnames\.txt' has a blank line 2"):
        CsvDataset(csv)


# ----------------------------------------------------------------------------- bad images


@pytest.fixture
def bad_csv(image_dir: Path) -> Path:
    (image_dir / "images" / "corrupt.png").write_bytes(b"definitely not a png")
    return write_table(
        image_dir / "bad_images.csv",
        ["filepath", "label"],
        [["images/0.png", 0], ["images/corrupt.png", 1], ["images/missing.png", 0]],
    )


def test_missing_image_files_are_found_when_the_dataset_is_built(bad_csv: Path) -> None:
    with pytest.raises(
        StarftError,
        match=r"1 of 3 image files do not exist, the first is '.*"
        r"missing\.png' \(check root=; data\.on_bad_image=skip",
    ):
        CsvDataset(bad_csv)


def test_corrupt_image_error_names_the_file(bad_csv: Path) -> None:
    rows = bad_csv.read_text(encoding="utf-8").splitlines()[:3]  # without the missing file
    (bad_csv.parent / "corrupt.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = CsvDataset(bad_csv.parent / "corrupt.csv")
    with pytest.raises(StarftError, match=r"cannot read image '.*corrupt\.png': .*not a recog"):
        ds[1]


def test_truncated_image_is_bad(tmp_path: Path) -> None:
    write_png(tmp_path / "full.png", (1, 2, 3), size=64)
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    csv = write_table(tmp_path / "t.csv", ["filepath", "label"], [["cut.png", 0]])
    with pytest.raises(StarftError, match=r"cannot read image '.*cut\.png'"):
        CsvDataset(csv, classnames=["cut"])[0]


def test_bad_image_skip_returns_none_and_collate_counts(
    bad_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = CsvDataset(bad_csv, transform=to_tensor, on_bad_image="skip")
    with caplog.at_level(logging.WARNING):
        samples = [ds[i] for i in range(len(ds))]
    assert samples[1] is None and samples[2] is None
    assert "corrupt.png" in caplog.text and "missing.png" in caplog.text
    batch = collate_samples(samples)
    assert batch is not None and batch["num_skipped"] == 2
    assert batch["image"].shape == (1, 3, 8, 8) and batch["index"].tolist() == [0]
    assert collate_samples([samples[1], samples[2]]) is None


def test_corrupt_image_in_a_dataloader_worker_is_one_line(bad_csv: Path) -> None:
    """A worker process re-raises with its traceback as the message: one line is kept."""
    ds = CsvDataset(bad_csv, transform=to_tensor, on_bad_image="skip")
    ds.on_bad_image = "error"  # missing files were let through at build time; now fail on read
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(StarftError) as info:
        list(loader)
    message = str(info.value)
    assert "\n" not in message and message.startswith("cannot read image '")
    assert "corrupt.png" in message


def test_bad_image_through_dataloader(bad_csv: Path) -> None:
    ds = CsvDataset(bad_csv, transform=to_tensor, on_bad_image="skip")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_samples)
    batches = list(loader)
    assert batches[0]["num_skipped"] == 1 and batches[0]["label"].tolist() == [0]
    assert batches[1] is None


def test_on_bad_image_is_validated(bad_csv: Path) -> None:
    with pytest.raises(StarftError, match="on_bad_image must be one of error, skip, got 'ignore'"):
        CsvDataset(bad_csv, on_bad_image="ignore")


# ----------------------------------------------------------------------------- collate


def test_collate_types() -> None:
    samples = [
        {"image": torch.zeros(3, 2, 2), "label": i, "group": -1, "index": i, "caption": f"c{i}"}
        for i in range(3)
    ]
    batch = collate_samples([samples[0], None, samples[1], samples[2]])
    assert batch["image"].shape == (3, 3, 2, 2)
    for key in ("label", "group", "index"):
        assert batch[key].dtype == torch.long
    assert batch["caption"] == ["c0", "c1", "c2"] and batch["num_skipped"] == 1


def test_collate_keeps_pil_images_as_list() -> None:
    image = Image.new("RGB", (2, 2))
    batch = collate_samples([{"image": image, "label": 0, "group": -1, "index": 0}])
    assert batch["image"] == [image] and batch["num_skipped"] == 0


# ----------------------------------------------------------------------------- image folder


def test_image_folder(tmp_path: Path) -> None:
    write_png(tmp_path / "golden_retriever" / "a.png", (255, 0, 0))
    write_png(tmp_path / "golden_retriever" / "b.JPG.png", (255, 0, 0))
    write_png(tmp_path / "tabby_cat" / "c.png", (0, 0, 255))
    (tmp_path / "tabby_cat" / "notes.txt").write_text("ignored", encoding="utf-8")
    (tmp_path / "readme.md").write_text("not a class", encoding="utf-8")
    ds = ImageFolderDataset(tmp_path, transform=to_tensor)
    assert ds.classnames == ["golden retriever", "tabby cat"] and ds.labels == [0, 0, 1]
    assert ds[2]["label"] == 1 and ds[2]["image"][2, 0, 0] == 1.0
    assert ImageFolderDataset(tmp_path, classnames=["dog", "cat"]).classnames == ["dog", "cat"]


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(StarftError, match=r"image folder '.*nowhere' does not exist"):
        ImageFolderDataset(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    write_png(tmp_path / "flat" / "x.png", (0, 0, 0))
    with pytest.raises(StarftError, match=r"flat' has no class sub-folders"):
        ImageFolderDataset(tmp_path / "flat")
    (tmp_path / "noimages" / "a").mkdir(parents=True)
    with pytest.raises(StarftError, match=r"noimages' has no images"):
        ImageFolderDataset(tmp_path / "noimages")
    write_png(tmp_path / "two" / "a" / "x.png", (0, 0, 0))
    with pytest.raises(StarftError, match=r"1 class folders but 2 class names"):
        ImageFolderDataset(tmp_path / "two", classnames=["a", "b"])


# ----------------------------------------------------------------------------- synthetic


def pixels(ds: SyntheticDataset) -> np.ndarray:
    return np.stack([np.asarray(ds[i]["image"], dtype=np.float32) for i in range(len(ds))])


def test_synthetic_is_deterministic_per_seed() -> None:
    a, b = SyntheticDataset(5, 20, seed=3), SyntheticDataset(5, 20, seed=3)
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(SyntheticDataset(5, 20, seed=4)))
    # A sample does not depend on which other samples were drawn before it.
    assert np.array_equal(np.asarray(a[7]["image"]), pixels(SyntheticDataset(5, 8, seed=3))[7])


def test_synthetic_labels_groups_and_shape() -> None:
    ds = SyntheticDataset(4, 24, image_size=20, num_groups=3, transform=to_tensor)
    assert ds.labels == [i % 4 for i in range(24)]
    assert ds.group_names == ["group_0", "group_1", "group_2"]
    counts = np.zeros((4, 3), dtype=int)
    for label, group in zip(ds.labels, ds.groups):
        counts[label, group] += 1
    assert (counts == 2).all()  # classes and groups balanced and uncorrelated
    sample = ds[5]
    assert sample["image"].shape == (3, 20, 20) and sample["group"] == ds.groups[5]
    assert "caption" not in sample


def test_synthetic_classes_are_learnable() -> None:
    train, test = SyntheticDataset(10, 200, seed=0), SyntheticDataset(10, 200, seed=1)
    x_train, x_test = pixels(train).reshape(200, -1), pixels(test).reshape(200, -1)
    y_train, y_test = np.array(train.labels), np.array(test.labels)
    means = np.stack([x_train[y_train == k].mean(0) for k in range(10)])
    predicted = ((x_test[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == y_test).mean() > 0.9


def test_synthetic_validation() -> None:
    with pytest.raises(StarftError, match="num_classes must be an integer >= 1, got 0"):
        SyntheticDataset(0)
    with pytest.raises(StarftError, match="noise must be >= 0"):
        SyntheticDataset(noise=-1.0)
    with pytest.raises(StarftError, match="2 class names for num_classes=3"):
        SyntheticDataset(3, classnames=["a", "b"])


# ----------------------------------------------------------------------------- registry


@pytest.fixture
def registry_kwargs(image_dir: Path, benchmark_trees) -> dict[str, dict[str, Any]]:
    """Tiny constructor arguments for every registered dataset (a new entry must add one)."""
    write_png(image_dir / "folder" / "cat" / "a.png", (1, 2, 3))
    write_png(image_dir / "folder" / "dog" / "b.png", (3, 2, 1))
    csv = write_table(
        image_dir / "r.csv", ["filepath", "label", "title"], [["images/0.png", 1, "a cat"]]
    )
    return {
        "csv": {"path": csv, "classnames": ["dog", "cat"]},
        "imagefolder": {"root": image_dir / "folder"},
        "synthetic": {"num_classes": 3, "num_samples": 6, "image_size": 8, "num_groups": 2},
        "sandbox_pretrain": {"n": 4, "image_size": 16},
        "sandbox_zeroshot": {"attribute": "colour", "n": 4, "image_size": 16},
        "sandbox_train": {"n": 6, "image_size": 16},
        "sandbox_val": {"n": 3, "image_size": 16},
        "sandbox_id_test": {"n": 3, "image_size": 16},
        "sandbox_groups": {"per_group": 1, "image_size": 16},
        "sandbox_style": {"style": "blurry", "n": 4, "image_size": 16},
        "sandbox_transfer": {"attribute": "scene", "n": 4, "image_size": 16},
        "sandbox_super_train": {"n": 6, "image_size": 16},
        "sandbox_super_val": {"n": 3, "image_size": 16},
        "sandbox_super_id_test": {"n": 3, "image_size": 16},
        "sandbox_super_groups": {"per_group": 1, "image_size": 16},
        "sandbox_super_style": {"style": "cartoon", "n": 4, "image_size": 16},
        # RaVL's per-class spread (±20) needs n > 210; 32 px fits a 3 x 3 marker grid.
        "sandbox_markers": {"n": 220, "image_size": 32, "grid": 3},
        "sandbox_markers_eval": {"n": 6, "image_size": 32, "grid": 3},
        **benchmark_trees[1],  # the real-benchmark adapters, on fake copies of their layouts
    }


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_builds_well_formed_samples(
    name: str, registry_kwargs: dict[str, dict[str, Any]]
) -> None:
    assert DATASETS.entry(name).description
    ds = create_dataset(name, transform=to_tensor, **registry_kwargs[name])
    assert isinstance(ds, ClassificationDataset) and len(ds) == len(ds.labels) > 0
    assert all("{}" in template for template in ds.templates)
    assert ds.num_classes == len(ds.classnames)
    batch = collate_samples([ds[i] for i in range(len(ds))])
    assert batch["image"].dtype == torch.float32 and batch["image"].shape[:2] == (len(ds), 3)
    assert batch["label"].tolist() == ds.labels
    assert batch["index"].tolist() == list(range(len(ds)))
    expected_groups = ds.groups if ds.groups is not None else [-1] * len(ds)
    assert batch["group"].tolist() == expected_groups
    if ds.group_names is not None:
        assert max(ds.groups) < len(ds.group_names)


@pytest.mark.parametrize("name", DATASETS.names())
def test_create_dataset_rejects_unknown_argument(
    name: str, registry_kwargs: dict[str, dict[str, Any]]
) -> None:
    with pytest.raises(StarftError, match=rf"dataset '{name}': .*'colour_jitter'"):
        create_dataset(name, colour_jitter=True, **registry_kwargs[name])


def test_create_dataset_unknown_name() -> None:
    with pytest.raises(StarftError, match="unknown dataset 'imagenet_xl'"):
        create_dataset("imagenet_xl")

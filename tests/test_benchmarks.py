"""Benchmark adapters on fake copies of their layouts: labels, class names, subsets, groups, splits,
and the one-line errors for a wrong root, a missing split or a layout that does not match."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _fake_benchmarks import (
    CIFAR102_TEST_LABELS,
    STL10_TEST_LABELS,
    WATERBIRDS_ROWS,
    write_image,
)
from starft.data import DatasetNotFoundError, create_dataset
from starft.data.benchmarks import BENCHMARKS
from starft.data.benchmarks.common import imagenet_wnids
from starft.data.benchmarks.wilds import fmow_split
from starft.data.label_space import IMAGENET, resolve_projection
from starft.data.resources import read_json_resource
from starft.errors import StarftError
from starft.eval import compute_metrics, project_logits_max


@pytest.fixture
def root(benchmark_trees) -> Path:
    return benchmark_trees[0]


def red(dataset, index: int) -> int:
    return dataset.read_image(index).getpixel((0, 0))[0]


# ----------------------------------------------------------------------------- packaged data


def test_packaged_imagenet_wnids_are_the_sorted_1000() -> None:
    wnids = imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert (wnids[0], wnids[1], wnids[999]) == ("n01440764", "n01443537", "n15075141")


def test_packaged_objectnet_mapping() -> None:
    classes = read_json_resource("benchmarks/objectnet.json")["classes"]
    assert len(classes) == 113
    assert classes["alarm_clock"]["imagenet"] == [409, 530]  # analog clock, digital clock
    assert classes["banana"] == {"name": "Banana", "imagenet": [954]}
    flat = [i for c in classes.values() for i in c["imagenet"]]
    assert len(flat) == len(set(flat)) and all(0 <= i < 1000 for i in flat)


def test_packaged_classnames_sizes() -> None:
    names = read_json_resource("benchmarks/classnames.json")
    sizes = {key: len(value) for key, value in names.items() if not key.startswith("_")}
    assert sizes == {
        "cifar10": 10,
        "cifar100": 100,
        "stl10": 10,
        "flowers102": 102,
        "caltech101": 102,
        "iwildcam": 182,
        "fmow": 62,
        "pacs": 7,
        "waterbirds": 2,
    }


# ----------------------------------------------------------------------------- ImageNet family


def test_imagenet_labels_are_wnid_indices(root: Path) -> None:
    ds = create_dataset("imagenet", root=root, split="val")
    assert ds.num_classes == 1000 and ds.classnames[1] == "goldfish"
    assert ds.labels == [0, 0, 1, 1, 999, 999] and ds.label_space == IMAGENET
    assert [red(ds, i) for i in range(len(ds))] == [0, 0, 1, 1, 999 % 256, 999 % 256]
    assert len(ds.templates) == 80  # CLIP's ImageNet templates by default
    assert create_dataset("imagenet", root=root, split="train").labels == [2]


def test_imagenet_r_subset_from_wnid_folders(root: Path) -> None:
    ds = create_dataset("imagenet_r", root=root / "imagenet-r")
    assert ds.imagenet_indices == [1, 999]
    assert ds.classnames == ["goldfish", "toilet paper"] and ds.labels == [0, 0, 1, 1]
    assert resolve_projection(ds, IMAGENET) is ds.projection
    # 1000-way logits -> the subset's columns: sample 0 scores goldfish 5, toilet paper 7.
    logits = torch.zeros(1, 1000)
    logits[0, 1], logits[0, 999], logits[0, 3] = 5.0, 7.0, 100.0
    assert project_logits_max(logits, ds.projection).tolist() == [[5.0, 7.0]]


def test_imagenet_a_ignores_files_and_keeps_200_class_logic(root: Path) -> None:
    ds = create_dataset("imagenet_a", root=root)
    assert ds.imagenet_indices == [0, 2, 999] and ds.labels == [0, 1, 2]
    assert ds.classnames == ["tench", "great white shark", "toilet paper"]


def test_imagenet_v2_and_sketch_use_all_1000_classes(root: Path) -> None:
    v2 = create_dataset("imagenet_v2", root=root)
    assert v2.labels == [0, 2, 999] and v2.num_classes == 1000
    assert resolve_projection(v2, IMAGENET) is None  # already in the ImageNet space
    sketch = create_dataset("imagenet_sketch", root=root)
    assert sketch.labels == [0, 1] and sketch.num_classes == 1000


def test_objectnet_mapping_projection_and_border_crop(root: Path) -> None:
    ds = create_dataset("objectnet", root=root)
    assert ds.num_classes == 113 and ds.labels == [0, 0, 2]  # squeegee is not mapped
    assert ds.classnames[0] == "alarm clock" and ds.classnames[2] == "banana"
    assert ds.read_image(0).size == (8, 8)  # 12x12 minus a 2-pixel border
    logits = torch.full((1, 1000), -1.0)
    logits[0, 530], logits[0, 954] = 3.0, 2.0  # digital clock, banana
    projected = project_logits_max(logits, ds.projection)
    assert projected.shape == (1, 113) and projected.argmax().item() == 0
    assert projected[0, 0].item() == 3.0 and projected[0, 2].item() == 2.0
    assert create_dataset("objectnet", root=root, crop_border=0).read_image(0).size == (12, 12)


def test_resolve_projection_rejects_a_foreign_space(root: Path) -> None:
    ds = create_dataset("cifar10", root=root)
    assert resolve_projection(ds, None) is None
    with pytest.raises(StarftError, match="CIFAR10 has no projection into the 'imagenet'"):
        resolve_projection(ds, IMAGENET)


# ----------------------------------------------------------------------------- group shift


def test_waterbirds_groups_and_hand_computed_worst_group(root: Path) -> None:
    ds = create_dataset("waterbirds", root=root, split="test")
    test_rows = [row for row in WATERBIRDS_ROWS if row[2] == 2]
    assert ds.labels == [y for _, y, _, _ in test_rows] == [0, 0, 0, 1, 1, 1]
    assert ds.groups == [0, 0, 1, 2, 3, 3]
    assert ds.group_names[1] == "landbird_on_water"
    # A known prediction file: wrong on samples 1 and 4.
    preds = [0, 1, 0, 1, 0, 1]
    logits = torch.nn.functional.one_hot(torch.tensor(preds), 2).float()
    metrics, per_group = compute_metrics(
        logits, torch.tensor(ds.labels), torch.tensor(ds.groups), ds.group_names
    )
    # Groups: landbird/land 1 of 2, landbird/water 1/1, waterbird/land 1/1, waterbird/water 1/2.
    assert per_group["landbird_on_land"] == {"acc": 0.5, "n": 2}
    assert per_group["waterbird_on_water"] == {"acc": 0.5, "n": 2}
    assert metrics["worst_group_acc"] == 0.5 and metrics["worst_group"] == "landbird_on_land"
    assert metrics["top1"] == pytest.approx(4 / 6)
    assert metrics["avg_group_acc"] == pytest.approx((0.5 + 1 + 1 + 0.5) / 4)
    assert len(create_dataset("waterbirds", root=root, split="train")) == 1


def test_pacs_domains_as_groups(root: Path) -> None:
    ds = create_dataset("pacs", root=root)
    # Domains in order art_painting, cartoon, photo, sketch; classes sorted as in PACS.
    assert ds.group_names == ["art_painting", "cartoon", "photo", "sketch"]
    assert ds.groups == [0, 2, 2, 2, 3] and ds.labels == [6, 0, 0, 5, 0]
    crossed = create_dataset("pacs", root=root, group_by="class_domain", domains=["photo"])
    assert crossed.labels == [0, 0, 5]
    assert [crossed.group_names[g] for g in crossed.groups] == ["dog/photo"] * 2 + ["house/photo"]


# ----------------------------------------------------------------------------- CIFAR family


def test_cifar_pickles(root: Path) -> None:
    test = create_dataset("cifar10", root=root)
    assert test.labels == [3, 1, 4, 1, 5] and test.classnames[0] == "airplane"
    assert [red(test, i) for i in range(5)] == [0, 1, 2, 3, 4]
    assert len(create_dataset("cifar10", root=root, split="train")) == 10
    c100 = create_dataset("cifar100", root=root / "cifar-100-python", split="train")
    assert c100.labels == [0, 99, 50] and c100.classnames[1] == "aquarium fish"


def test_cifar10_1_and_10_2(root: Path) -> None:
    assert create_dataset("cifar10_1", root=root).labels == [9, 8, 7]
    c102 = create_dataset("cifar10_2", root=root)
    assert c102.labels == CIFAR102_TEST_LABELS and red(c102, 2) == 102
    assert len(create_dataset("cifar10_2", root=root, split="train")) == 2


def test_cifar10_02_groups_are_class_and_source(root: Path) -> None:
    ds = create_dataset("cifar10_02", root=root)
    assert ds.labels == [3, 1, 4, 1, 5, *CIFAR102_TEST_LABELS]
    assert red(ds, 5) == 100  # first CIFAR-10.2 image follows the five CIFAR-10 ones
    names = [ds.group_names[g] for g in ds.groups]
    assert names[0] == "cat/CIFAR-10" and names[5:] == ["cat/CIFAR-10.2"] * 2 + [
        "automobile/CIFAR-10.2"
    ]
    assert len(ds.group_names) == 20
    by_source = create_dataset("cifar10_02", root=root, group_by="source")
    assert by_source.groups == [0] * 5 + [1] * 3


# ----------------------------------------------------------------------------- transfer sets


def test_caltech101_all_and_coop_split(root: Path) -> None:
    ds = create_dataset("caltech101", root=root)
    assert ds.classnames == ["background", "off-center face", "accordion", "yin and yang symbol"]
    assert ds.labels == [0, 0, 1, 1, 2, 2, 3, 3]
    no_bg = create_dataset("caltech101", root=root, include_background=False)
    assert no_bg.classnames[0] == "off-center face" and len(no_bg) == 6
    test = create_dataset("caltech101", root=root, split="test")
    assert test.classnames == ["accordion", "face"] and test.labels == [1, 0]
    assert test.image_paths[0].endswith("101_ObjectCategories/Faces/image_0003.jpg")


def test_stl10_binary(root: Path) -> None:
    ds = create_dataset("stl10", root=root)
    assert ds.labels == [label - 1 for label in STL10_TEST_LABELS]
    image = ds.read_image(1)
    assert image.size == (96, 96) and image.getpixel((5, 0))[0] == 2  # column-major on disk


def test_stanford_cars_and_flowers_mat_files(root: Path) -> None:
    pytest.importorskip("scipy")
    cars = create_dataset("stanford_cars", root=root, split="train")
    assert cars.labels == [0, 195] and cars.classnames[195] == "Car Model 195 2012"
    assert create_dataset("stanford_cars", root=root).labels == [6]
    flowers = create_dataset("flowers102", root=root)
    assert flowers.labels == [49, 2] and flowers.image_paths[0].endswith("image_00005.jpg")
    assert flowers.classnames[2] == "canterbury bells"
    assert create_dataset("flowers102", root=root, split="train").labels == [2, 0]


# ----------------------------------------------------------------------------- WILDS


def test_iwildcam_split_column(root: Path) -> None:
    ds = create_dataset("iwildcam", root=root, split="id_test")
    assert ds.labels == [181, 5] and ds.classnames[0] == "empty"
    assert ds.image_paths[0].endswith("iwildcam_v2.0/train/b.jpg")


@pytest.mark.parametrize(
    ("split", "year", "expected"),
    [
        ("train", 2012, "train"),
        ("val", 2012, "id_val"),
        ("test", 2012, "id_test"),
        ("val", 2013, "val"),
        ("test", 2015, None),
        ("test", 2016, "test"),
        ("train", 2016, None),
        ("seq", 2010, None),
    ],
)
def test_fmow_split_rule(split: str, year: int, expected: str | None) -> None:
    assert fmow_split(split, year) == expected


def test_fmow_splits_and_regions(root: Path) -> None:
    ds = create_dataset("fmow", root=root, split="id_test")
    assert [ds.classnames[k] for k in ds.labels] == ["zoo", "dam"]
    assert [ds.group_names[g] for g in ds.groups] == ["Europe", "Africa"]
    assert ds.image_paths[1].endswith("images/rgb_img_2.png")
    ood = create_dataset("fmow", root=root, split="test")
    assert (
        ood.image_paths[0].endswith("rgb_img_4.png") and ood.group_names[ood.groups[0]] == "Other"
    )
    assert len(create_dataset("fmow", root=root, split="val")) == 1


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", BENCHMARKS, ids=lambda cls: cls.name)
def test_wrong_root_is_a_one_line_not_found_error(cls, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=rf"^{cls.name}: .*expected layout") as info:
        create_dataset(cls.name, root=tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="does not exist or is not a folder"):
        create_dataset(cls.name, root=tmp_path / "nowhere")


@pytest.mark.parametrize("cls", BENCHMARKS, ids=lambda cls: cls.name)
def test_unknown_split_names_the_splits(cls, root: Path) -> None:
    with pytest.raises(StarftError, match=rf"{cls.name}: unknown split 'holdout' \(splits: "):
        create_dataset(cls.name, root=root, split="holdout")


def test_missing_split_names_the_expected_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "imagenet" / "val" / "n01440764" / "a.JPEG")
    with pytest.raises(StarftError, match=r"imagenet: '.*imagenet/train' does not exist \(split"):
        create_dataset("imagenet", root=tmp_path, split="train")


def test_layout_mismatches_are_one_line_errors(root: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "imagenet-r" / "goldfish" / "a.jpg")
    write_image(tmp_path / "imagenet-r" / "n01443537" / "a.jpg")
    with pytest.raises(StarftError, match="imagenet-r/goldfish' is not an ImageNet-1k WordNet id"):
        create_dataset("imagenet_r", root=tmp_path)
    birds = tmp_path / "waterbirds"
    birds.mkdir()
    (birds / "metadata.csv").write_text("img_filename,y,split\na.jpg,0,2\n")
    with pytest.raises(StarftError, match="has no column 'place'"):
        create_dataset("waterbirds", root=birds)
    (birds / "metadata.csv").write_text("img_filename,y,split,place\na.jpg,2,2,0\n")
    with pytest.raises(StarftError, match="data row 1: expected y and place in"):
        create_dataset("waterbirds", root=birds)
    shutil.copytree(root / "cifar-10-batches-py", tmp_path / "c10")
    (tmp_path / "c10" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(StarftError, match=r"cifar10: cannot read '.*test_batch'"):
        create_dataset("cifar10", root=tmp_path / "c10")
    stl = tmp_path / "stl10_binary"
    shutil.copytree(root / "stl10_binary", stl)
    np.zeros(5, dtype=np.uint8).tofile(stl / "test_X.bin")
    with pytest.raises(StarftError, match="holds 5 bytes, not 3 images"):
        create_dataset("stl10", root=stl)
    split = tmp_path / "cal" / "caltech101"
    shutil.copytree(root / "caltech101", split)
    (split / "split_zhou_Caltech101.json").write_text(json.dumps({"test": [["a.jpg"]]}))
    with pytest.raises(StarftError, match="is not a CoOp split file"):
        create_dataset("caltech101", root=split, split="test")


def test_packaged_imagenet_classnames_equal_open_clips():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    from starft.data.benchmarks.common import imagenet_classnames

    assert imagenet_classnames() == list(IMAGENET_CLASSNAMES)

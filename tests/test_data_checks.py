"""Bad data found before training: class names, label spaces by name, missing files.

Each case here trained or evaluated silently wrong before: captions "a photo of a class_0.",
validation labels numbered by the validation folder's own class list, WordNet ids as captions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from starft.config import load_train_config
from starft.data import CsvDataset, ImageFolderDataset, create_dataset
from starft.data.label_space import align_classes, eval_label_space
from starft.errors import StarftError


def png(path: Path, colour=(200, 10, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def table(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name in ("a", "b", "c"):
        png(tmp_path / f"{name}.png")
    return tmp_path


# -- CSV class names ----------------------------------------------------------------------------
def test_csv_integer_labels_without_names_are_refused_with_the_options(images: Path) -> None:
    csv = table(images / "train.csv", "filepath,label\na.png,0\nb.png,1\n")
    with pytest.raises(StarftError) as info:
        CsvDataset(csv)
    message = str(info.value)
    assert "\n" not in message and "train.csv' has integer labels but no class names" in message
    for option in ("classnames=", "classname column", "classnames.txt"):
        assert option in message


def test_csv_class_names_from_each_documented_source(images: Path) -> None:
    csv = table(images / "train.csv", "filepath,label\na.png,1\nb.png,0\n")
    assert CsvDataset(csv, classnames=["dog", "cat"]).classnames == ["dog", "cat"]
    (images / "names.txt").write_text("dog\ncat\n", encoding="utf-8")
    assert CsvDataset(csv, classnames=str(images / "names.txt")).classnames == ["dog", "cat"]
    (images / "names.json").write_text('["dog", "cat"]', encoding="utf-8")
    assert CsvDataset(csv, classnames=images / "names.json").classnames == ["dog", "cat"]
    assert CsvDataset(csv, classnames="imagenet").classnames[:2] == ["tench", "goldfish"]
    named = table(images / "named.csv", "filepath,label,classname\na.png,1,cat\nb.png,0,dog\n")
    assert CsvDataset(named).classnames == ["dog", "cat"]
    (images / "classnames.txt").write_text("dog\ncat\n", encoding="utf-8")
    assert CsvDataset(csv).classnames == ["dog", "cat"]


def test_csv_labels_given_as_names(images: Path) -> None:
    csv = table(images / "train.csv", "filepath,label\na.png,cat\nb.png,dog\nc.png,cat\n")
    ds = CsvDataset(csv)
    assert ds.classnames == ["cat", "dog"] and ds.labels == [0, 1, 0]
    ordered = CsvDataset(csv, classnames=["dog", "cat"])
    assert ordered.labels == [1, 0, 1]
    with pytest.raises(StarftError, match=r"row 2 .*class 'dog' is not in the given class names"):
        CsvDataset(csv, classnames=["cat", "bird"])


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        (
            "filepath,label,classname\na.png,0,dog\nb.png,0,cat\n",
            {},
            "row 2 .*class 0 is named 'cat' here but 'dog'",
        ),
        ("filepath,label,classname\na.png,1,dog\n", {}, "no row names class 0"),
        ("filepath,label\na.png,0\n", {"classnames": "nope.txt"}, "nope.txt' does not exist"),
        ("filepath,label\na.png,0\n", {"classnames": ["0", "1"]}, "class names are numbers"),
        ("filepath,label\na.png,0\n", {"classnames": []}, "classnames is an empty list"),
        ("filepath,label\na.png,0\n", {"classnames": {"0": "x"}}, "must be a list"),
    ],
    ids=[
        "name-column-conflict",
        "name-column-gap",
        "names-file-missing",
        "numbers",
        "empty",
        "map",
    ],
)
def test_csv_bad_class_names(images: Path, text: str, kwargs: dict, expected: str) -> None:
    csv = table(images / "t.csv", text)
    with pytest.raises(StarftError, match=expected):
        CsvDataset(csv, **kwargs)


def test_csv_numbers_in_classnames_file_are_refused(images: Path) -> None:
    (images / "classnames.txt").write_text("0\n1\n", encoding="utf-8")
    csv = table(images / "t.csv", "filepath,label\na.png,0\n")
    with pytest.raises(StarftError, match=r"captions like 'a photo of a 0\.'"):
        CsvDataset(csv)


def test_missing_files_are_counted_and_named_before_training(images: Path) -> None:
    csv = table(images / "t.csv", "filepath,label\na.png,0\ngone.png,1\nalso.png,0\n")
    with pytest.raises(StarftError, match=r"2 of 3 image files do not exist, the first is '.*gone"):
        CsvDataset(csv, classnames=["x", "y"])
    assert len(CsvDataset(csv, classnames=["x", "y"], on_bad_image="skip")) == 3


# -- image folders ------------------------------------------------------------------------------
def test_image_folder_of_wordnet_ids_needs_class_names(tmp_path: Path) -> None:
    png(tmp_path / "n01440764" / "a.png")
    png(tmp_path / "n01443537" / "b.png")
    with pytest.raises(StarftError, match=r"WordNet ids .*'a photo of a n01440764\.'.*classnames="):
        ImageFolderDataset(tmp_path)
    mapping = {"n01440764": "tench", "n01443537": "goldfish"}
    assert ImageFolderDataset(tmp_path, classnames=mapping).classnames == ["tench", "goldfish"]
    (tmp_path / "names.json").write_text(json.dumps(mapping), encoding="utf-8")
    names = ImageFolderDataset(tmp_path, classnames=str(tmp_path / "names.json")).classnames
    assert names == ["tench", "goldfish"]
    with pytest.raises(StarftError, match="class folder 'n01443537' is not in classnames"):
        ImageFolderDataset(tmp_path, classnames={"n01440764": "tench"})


def test_image_folder_of_numbers_needs_class_names(tmp_path: Path) -> None:
    png(tmp_path / "0" / "a.png")
    png(tmp_path / "1" / "b.png")
    with pytest.raises(StarftError, match="class names are numbers"):
        ImageFolderDataset(tmp_path)
    assert ImageFolderDataset(tmp_path, classnames=["cat", "dog"]).classnames == ["cat", "dog"]


# -- label spaces by name -----------------------------------------------------------------------
def folders(root: Path, classes: list[str]) -> Path:
    for i, name in enumerate(classes):
        png(root / name / "x.png", (i * 60, 0, 0))
        png(root / name / "y.png", (i * 60, 9, 9))
    return root


def test_align_maps_labels_by_name_and_names_an_unknown_class(tmp_path: Path) -> None:
    train = ImageFolderDataset(folders(tmp_path / "train", ["cat", "dog", "fox"]))
    val = ImageFolderDataset(folders(tmp_path / "val", ["cat", "fox"]))
    assert val.labels == [0, 0, 1, 1]  # its own numbering: fox is 1 here, 2 in training
    aligned = align_classes(val, train.classnames, "validation set")
    assert aligned.classnames == ["cat", "dog", "fox"] and aligned.labels == [0, 0, 2, 2]
    assert aligned[2]["label"] == 2 and val.labels == [0, 0, 1, 1]  # the original is untouched
    assert align_classes(train, train.classnames, "x") is train
    odd = ImageFolderDataset(folders(tmp_path / "odd", ["cat", "owl"]))
    with pytest.raises(StarftError, match="validation set: class 'owl' is not a training class"):
        align_classes(odd, train.classnames, "validation set")


def test_training_run_numbers_the_validation_folder_like_the_training_folder(tmp_path: Path):
    from starft.models import create_model
    from starft.train.setup import build_datasets

    train = folders(tmp_path / "train", ["cat", "dog", "fox"])
    val = folders(tmp_path / "val", ["cat", "fox"])
    config = load_train_config(
        None,
        [
            "method.name=flyp",
            "data.dataset=imagefolder",
            f"data.train.root={train}",
            f"data.val.root={val}",
        ],
    )
    train_set, val_set = build_datasets(config, create_model("starft-tiny-vit"))
    assert val_set.classnames == train_set.classnames == ["cat", "dog", "fox"]
    assert val_set.labels == [0, 0, 2, 2]
    bad = folders(tmp_path / "bad", ["cat", "owl"])
    config.data.val = {"root": str(bad)}
    with pytest.raises(StarftError, match=r"validation set .*class 'owl' is not a training class"):
        build_datasets(config, create_model("starft-tiny-vit"))


def test_eval_label_space_of_a_fine_tuned_model(tmp_path: Path) -> None:
    subset = ImageFolderDataset(folders(tmp_path / "subset", ["cat", "fox"]))
    aligned, line = eval_label_space(subset, ["cat", "dog", "fox"])
    assert aligned.labels == [0, 0, 2, 2] and "3 training classes" in line
    other = ImageFolderDataset(folders(tmp_path / "other", ["red", "blue"]))
    assert eval_label_space(other, ["cat", "dog"]) == (other, "")  # zero-shot transfer
    mixed = ImageFolderDataset(folders(tmp_path / "mixed", ["cat", "dgo"]))
    same, warning = eval_label_space(mixed, ["cat", "dog"])
    assert same is mixed and "class 'dgo'" in warning


def test_starft_eval_of_a_run_scores_a_subset_folder_over_the_training_classes(tmp_path, capsys):
    import torch

    from starft.cli.main import main
    from starft.eval import load_result
    from starft.methods import Task, create_method
    from starft.models import create_model

    torch.manual_seed(0)
    method = create_method(
        "flyp", create_model("starft-tiny-vit"), Task(["cat", "dog", "fox"], ["a photo of a {}."])
    )
    method.export(tmp_path / "model")
    subset = folders(tmp_path / "val", ["cat", "fox"])
    out = tmp_path / "results"
    argv = ["eval", "--model", str(tmp_path / "model"), "--dataset", "imagefolder"]
    assert main([*argv, f"root={subset}", "--out", str(out), "--save-predictions"]) == 0
    assert "scoring over the model's 3 training classes" in capsys.readouterr().err
    (path,) = out.glob("*.json")
    result = load_result(path)
    assert "3 training classes" in result["config"]["label_space"]


def test_registered_dataset_arguments_are_listed(capsys) -> None:
    from starft.cli.main import main

    assert main(["ls", "datasets", "csv"]) == 0
    out = capsys.readouterr().out
    assert "classnames" in out and "classnames.txt" in out and "(required)" in out
    with pytest.raises(StarftError, match="unknown dataset"):
        create_dataset("no_such_dataset")

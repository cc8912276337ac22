"""The batch contract: a method's ``data_keys`` are checked against the dataset at setup."""

from __future__ import annotations

import pytest

from starft.cli.main import main
from starft.errors import StarftError
from starft.methods import METHODS
from starft.train.setup import check_data_keys


def test_every_method_declares_keys_the_base_datasets_provide():
    for entry in METHODS:
        assert {"image", "label"} <= set(entry.obj.data_keys), entry.name


def test_train_stops_in_one_line_naming_dataset_method_and_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(METHODS.get("ft"), "data_keys", ("image", "label", "mask"))
    code = main(
        [
            "train",
            "--model",
            "starft-tiny-vit",
            "--method",
            "ft",
            "--dataset",
            "synthetic",
            "data.train={num_classes: 3, num_samples: 8}",
            "log.progress=false",
            f"out_dir={tmp_path / 'run'}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "'synthetic'" in err and "'mask'" in err and "'ft'" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_check_passes_when_the_key_is_there(monkeypatch):
    from starft.config import load_train_config
    from starft.data import create_dataset

    config = load_train_config(None, ["method.name=ft", "data.dataset=synthetic"])
    dataset = create_dataset("synthetic", num_classes=2, num_samples=4)
    check_data_keys(config, dataset)
    monkeypatch.setattr(type(dataset), "region_keys", ("mask",))
    monkeypatch.setattr(METHODS.get("ft"), "data_keys", ("image", "mask"))
    check_data_keys(config, dataset)
    monkeypatch.setattr(METHODS.get("ft"), "data_keys", ("image", "boxes"))
    with pytest.raises(StarftError, match="boxes"):
        check_data_keys(config, dataset)


def test_cft_with_part_masks_needs_parts_not_a_mask():
    from starft.config import load_train_config
    from starft.data import create_dataset

    parts_only = create_dataset("sandbox_train", n=8, seed=1, fields="parts")
    with_parts = load_train_config(
        None, ["method.name=cft", "method.masks=parts", "data.dataset=sandbox_train"]
    )
    check_data_keys(with_parts, parts_only)  # reads parts + part_weights: present
    with_mask = load_train_config(None, ["method.name=cft", "data.dataset=sandbox_train"])
    with pytest.raises(StarftError, match="no batch key 'mask', which method 'cft' needs"):
        check_data_keys(with_mask, parts_only)

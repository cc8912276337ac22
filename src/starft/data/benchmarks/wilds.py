"""iWildCam (v2.0) and FMoW (v1.1) in the folder layout the ``wilds`` package downloads.

The metadata CSVs are read the way WILDS reads them (without depending on the ``wilds`` package or
pandas). iWildCam's splits are its ``split`` column (``train, val, test, id_val, id_test``); images
are ``train/<filename>``; class names are the English names WiSE-FT uses for its 182 labels.
FMoW's splits follow WILDS' official ``time_after_2016`` scheme: images from 2016 on are the OOD
``test`` split (rows with split=test), 2013-2015 the OOD ``val`` split, and earlier images form
``train``/``id_val``/``id_test`` by their ``split`` column; ``seq`` rows are never used. Image
``i`` of the full metadata file is ``images/rgb_img_{i}.png``; FMoW groups are WILDS' regions.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starft.data.benchmarks.common import (
    BenchmarkDataset,
    packaged_classnames,
    read_csv_rows,
)
from starft.errors import StarftError

FMOW_REGIONS = ("Africa", "Americas", "Asia", "Europe", "Oceania", "Other")
FMOW_TEST_YEAR, FMOW_VAL_YEAR = 2016, 2013


def _int(text: str, path: Path, row: int, column: str, name: str) -> int:
    if not text.strip().isdigit():
        raise StarftError(
            f"{name}: '{path}' data row {row + 1}, column '{column}': expected an integer, "
            f"got {text!r}"
        )
    return int(text)


class IWildCam(BenchmarkDataset):
    """WILDS iWildCam2020 camera-trap images (182 classes)."""

    name = "iwildcam"
    folders = ("iwildcam_v2.0",)
    splits = ("train", "val", "test", "id_val", "id_test")
    layout = (
        "iwildcam_v2.0/metadata.csv (columns split, filename, y) + iwildcam_v2.0/train/<filename>"
    )
    markers = ("metadata.csv",)
    default_templates = "iwildcam"

    def _read(self, split: str) -> dict[str, Any]:
        path = self.root / "metadata.csv"
        rows = read_csv_rows(path, ("split", "filename", "y"), self.name, self.layout)
        classnames = packaged_classnames("iwildcam")
        paths, labels = [], []
        for i, row in enumerate(rows):
            if row["split"] == split:
                label = _int(row["y"], path, i, "y", self.name)
                if label >= len(classnames):
                    raise StarftError(
                        f"{self.name}: '{path}' data row {i + 1}: y={label} is not one of the "
                        f"{len(classnames)} iWildCam v2.0 classes"
                    )
                paths.append(str(self.root / "train" / row["filename"]))
                labels.append(label)
        if not paths:
            raise StarftError(f"{self.name}: '{path}' has no rows of split '{split}'")
        return {"classnames": classnames, "labels": labels, "image_paths": paths}


def _year(text: str, path: Path, row: int, name: str) -> int:
    """The UTC year of an ISO-8601 timestamp such as ``2016-02-29T10:32:29Z``."""
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise StarftError(
            f"{name}: '{path}' data row {row + 1}: timestamp {text!r} is not ISO 8601"
        ) from None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc)
    return stamp.year


def fmow_split(split_column: str, year: int) -> str | None:
    """The WILDS (time_after_2016) split of an FMoW row, or None when the row is unused."""
    if split_column == "seq":
        return None
    if year >= FMOW_TEST_YEAR:
        return "test" if split_column == "test" else None
    if year >= FMOW_VAL_YEAR:
        return "val" if split_column == "val" else None
    return {"train": "train", "val": "id_val", "test": "id_test"}.get(split_column)


class FMoW(BenchmarkDataset):
    """WILDS Functional Map of the World satellite images (62 classes), groups = regions."""

    name = "fmow"
    folders = ("fmow_v1.1",)
    splits = ("train", "id_val", "id_test", "val", "test")
    layout = (
        "fmow_v1.1/{rgb_metadata.csv (split, category, country_code, timestamp), "
        "country_code_mapping.csv (alpha-3, region), images/rgb_img_<row>.png}"
    )
    markers = ("rgb_metadata.csv",)
    default_templates = "fmow"

    def _read(self, split: str) -> dict[str, Any]:
        path = self.root / "rgb_metadata.csv"
        columns = ("split", "category", "country_code", "timestamp")
        rows = read_csv_rows(path, columns, self.name, self.layout)
        regions = {
            row["alpha-3"]: row["region"]
            for row in read_csv_rows(
                self.root / "country_code_mapping.csv",
                ("alpha-3", "region"),
                self.name,
                self.layout,
            )
        }
        classnames = packaged_classnames("fmow")
        category_index = {name.replace(" ", "_"): k for k, name in enumerate(classnames)}
        paths, labels, groups = [], [], []
        for i, row in enumerate(rows):
            year = _year(row["timestamp"], path, i, self.name)
            if fmow_split(row["split"], year) != split:
                continue
            if row["category"] not in category_index:
                raise StarftError(
                    f"{self.name}: '{path}' data row {i + 1}: unknown category {row['category']!r}"
                )
            region = regions.get(row["country_code"], "Other")
            paths.append(str(self.root / "images" / f"rgb_img_{i}.png"))
            labels.append(category_index[row["category"]])
            groups.append(FMOW_REGIONS.index(region) if region in FMOW_REGIONS else 5)
        if not paths:
            raise StarftError(f"{self.name}: '{path}' has no rows of split '{split}'")
        return {
            "classnames": classnames,
            "labels": labels,
            "groups": groups,
            "group_names": list(FMOW_REGIONS),
            "image_paths": paths,
        }

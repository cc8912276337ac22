"""Group-shift benchmarks: Waterbirds (bird type x background) and PACS (domains as groups).

Waterbirds is read from its ``metadata.csv`` (the layout of both the original release and WILDS'
``waterbirds_v1.0``): ``split`` 0/1/2 = train/val/test, ``y`` 0/1 = landbird/waterbird, ``place``
0/1 = land/water background; group id = ``2 * y + place``. PACS is four domain folders of seven
class folders; the group is the domain, or (class, domain) with ``group_by="class_domain"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starft.data.base import Transform
from starft.data.benchmarks.common import (
    BenchmarkDataset,
    check_group_by,
    check_split,
    class_dirs,
    cross_groups,
    is_image,
    packaged_classnames,
    read_csv_rows,
    require,
)
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

WATERBIRDS_SPLITS = {"train": 0, "val": 1, "test": 2}
WATERBIRDS_GROUPS = (
    "landbird_on_land",
    "landbird_on_water",
    "waterbird_on_land",
    "waterbird_on_water",
)
PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")


class Waterbirds(BenchmarkDataset):
    """Waterbirds (CUB birds pasted on Places backgrounds) with its four groups."""

    name = "waterbirds"
    folders = ("waterbird_complete95_forest2water2", "waterbirds_v1.0", "waterbirds")
    splits = tuple(WATERBIRDS_SPLITS)
    layout = (
        "waterbird_complete95_forest2water2/metadata.csv (columns img_filename, y, split, place) "
        "+ the image paths it lists"
    )
    markers = ("metadata.csv",)

    def _read(self, split: str) -> dict[str, Any]:
        path = self.root / "metadata.csv"
        rows = read_csv_rows(path, ("img_filename", "y", "split", "place"), self.name, self.layout)
        paths, labels, groups = [], [], []
        for i, row in enumerate(rows):
            text = [(row.get(key) or "").strip() for key in ("y", "place", "split")]
            y, place, row_split = (int(t) if t.isdigit() else 9 for t in text)
            if y > 1 or place > 1 or row_split > 2:
                raise StarftError(
                    f"{self.name}: '{path}' data row {i + 1}: expected y and place in {{0, 1}} and "
                    f"split in {{0, 1, 2}}, got y={text[0]!r}, place={text[1]!r}, split={text[2]!r}"
                )
            if row_split == WATERBIRDS_SPLITS[split]:
                paths.append(str(self.root / row["img_filename"]))
                labels.append(y)
                groups.append(2 * y + place)
        if not paths:
            raise StarftError(f"{self.name}: '{path}' lists no images of split '{split}'")
        return {
            "classnames": packaged_classnames("waterbirds"),
            "labels": labels,
            "groups": groups,
            "group_names": list(WATERBIRDS_GROUPS),
            "image_paths": paths,
        }


class PACS(BenchmarkDataset):
    """PACS: 7 classes in 4 domains (art painting, cartoon, photo, sketch); groups = domains."""

    name = "pacs"
    folders = ("PACS", "pacs", "PACS/kfold", "pacs/kfold")
    splits = ("test",)
    group_modes = ("domain", "class_domain")
    layout = "PACS/{art_painting,cartoon,photo,sketch}/<class>/<image> (DomainBed layout)"
    markers = ("art_painting", "cartoon")

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        *,
        domains: list[str] | tuple[str, ...] = PACS_DOMAINS,
        group_by: str = "domain",
        transform: Transform | None = None,
        templates: TemplateSpec | None = None,
        on_bad_image: str = "error",
    ) -> None:
        check_split(self.name, split, self.splits)  # a bad split is reported first
        check_group_by(self.name, group_by, self.group_modes)
        unknown = [d for d in domains if d not in PACS_DOMAINS]
        if unknown or not domains:
            raise StarftError(
                f"{self.name}: unknown domain '{unknown[0] if unknown else ''}' "
                f"(domains: {', '.join(PACS_DOMAINS)})"
            )
        self.domains, self.group_by = domains, group_by
        super().__init__(
            root, split, transform=transform, templates=templates, on_bad_image=on_bad_image
        )

    def _read(self, split: str) -> dict[str, Any]:
        classnames = packaged_classnames("pacs")
        paths, labels, domain_ids = [], [], []
        for domain in self.domains:
            folder = require(self.root / domain, self.name, self.layout, f"domain '{domain}'")
            for class_name in class_dirs(folder):
                if class_name not in classnames:
                    raise StarftError(
                        f"{self.name}: class folder '{folder / class_name}' is not a PACS class "
                        f"({', '.join(classnames)})"
                    )
                files = sorted(p for p in (folder / class_name).iterdir() if is_image(p))
                paths.extend(str(p) for p in files)
                labels.extend([classnames.index(class_name)] * len(files))
                domain_ids.extend([PACS_DOMAINS.index(domain)] * len(files))
        if not paths:
            raise StarftError(f"{self.name}: no images under '{self.root}' ({self.layout})")
        if self.group_by == "domain":
            groups, group_names = domain_ids, list(PACS_DOMAINS)
        else:
            groups, group_names = cross_groups(labels, domain_ids, classnames, PACS_DOMAINS)
        return {
            "classnames": classnames,
            "labels": labels,
            "groups": groups,
            "group_names": group_names,
            "image_paths": paths,
        }

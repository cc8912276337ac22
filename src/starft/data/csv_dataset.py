"""FLYP-style image/caption tables: one row per image, CSV or TSV.

The layout FLYP and WiSE-FT release (``filepath``, ``label``, ``title`` columns) is read as is;
other column names are given by keyword. Every row is validated when the dataset is built, so a bad
label in row 90 000 is reported at once with its row number instead of crashing an epoch later.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starft.data.base import ClassificationDataset, Transform
from starft.data.classnames import (
    ClassNamesSpec,
    check_caption_names,
    index_by_name,
    read_classnames,
)
from starft.data.region_readers import RegionFiles, mask_paths, parse_boxes
from starft.data.templates import TemplateSpec
from starft.errors import StarftError

CLASSNAMES_FILE = "classnames.txt"
CLASSNAME_COLUMNS = ("classname", "class_name")
CAPTION_COLUMNS = ("caption", "title")
GROUP_COLUMNS = ("group",)
_INDEX = re.compile(r"[0-9]+")
# Values that are malformed numbers (-1, 1.5), not names: reported as bad indices.
_NUMBERISH = re.compile(r"[-+]?[0-9.eE+-]+")


class _Table:
    """The parsed file: column names and, per data row, its values and file line number."""

    def __init__(self, path: Path, sep: str) -> None:
        self.path = path
        if not path.is_file():
            raise StarftError(f"CSV file '{path}' does not exist")
        try:
            # utf-8-sig drops the byte-order mark spreadsheets put before the first column name.
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle, delimiter=sep)
                header = next(reader, None)
                self.columns = [name.strip() for name in header or []]
                self.rows: list[dict[str, str]] = []
                self.lines: list[int] = []
                for values in reader:
                    if any(value.strip() for value in values):  # skip blank lines
                        self.rows.append(dict(zip(self.columns, values)))
                        self.lines.append(reader.line_num)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise StarftError(f"cannot read CSV file '{path}': {error}") from None
        if not any(self.columns):
            raise StarftError(f"CSV file '{path}' is empty (no header row)")
        if not self.rows:
            raise StarftError(f"CSV file '{path}' has a header but no data rows")

    def where(self, row: int, column: str) -> str:
        """Location prefix for errors: data rows count from 1, lines include the header."""
        return f"CSV file '{self.path}', row {row + 1} (line {self.lines[row]}), column '{column}'"

    def require(self, column: str, keyword: str) -> None:
        """``keyword`` is the CsvDataset argument that names this column, for the hint."""
        if column not in self.columns:
            found = ", ".join(repr(name) for name in self.columns)
            raise StarftError(
                f"CSV file '{self.path}' has no column '{column}' "
                f"(columns found: {found}; choose another with {keyword}=)"
            )

    def optional(self, column: str | None, defaults: Sequence[str], keyword: str) -> str | None:
        """The given column (which must exist) or the first default column present, else None."""
        if column is not None:
            self.require(column, keyword)
            return column
        return next((name for name in defaults if name in self.columns), None)

    def text(self, column: str) -> list[str]:
        """A column's values; a short row is an error, not a silent empty string."""
        values = []
        for row, record in enumerate(self.rows):
            if column not in record:
                raise StarftError(f"{self.where(row, column)}: the row has too few fields")
            values.append(record[column])
        return values

    def holds_names(self, column: str) -> bool:
        """True when the column's first value is not an integer: labels given as class names."""
        first = self.text(column)[0].strip()
        return bool(first) and not _INDEX.fullmatch(first) and not _NUMBERISH.fullmatch(first)

    def indices(self, column: str, what: str) -> list[int]:
        """A column of non-negative integers."""
        values = []
        for row, text in enumerate(self.text(column)):
            if not _INDEX.fullmatch(text.strip()):
                raise StarftError(
                    f"{self.where(row, column)}: expected a non-negative integer {what} index, "
                    f"got {text!r}"
                )
            values.append(int(text))
        return values

    def check_below(self, column: str, values: list[int], names: Sequence[str], what: str) -> None:
        """Every value must index into ``names``; the first one that does not is reported."""
        for row, value in enumerate(values):
            if value >= len(names):
                raise StarftError(
                    f"{self.where(row, column)}: {what} {value} is out of range for "
                    f"{len(names)} {what} names"
                )


def _names_from_column(table: _Table, column: str, labels: list[int]) -> list[str]:
    """Class names from a name column: label k's rows must all give the same name."""
    names: dict[int, str] = {}
    for row, (label, name) in enumerate(zip(labels, table.text(column))):
        name = name.strip()
        if not name:
            raise StarftError(f"{table.where(row, column)}: the class name is empty")
        if names.setdefault(label, name) != name:
            raise StarftError(
                f"{table.where(row, column)}: class {label} is named '{name}' here but "
                f"'{names[label]}' in an earlier row"
            )
    missing = [k for k in range(max(labels) + 1) if k not in names]
    if missing:
        raise StarftError(
            f"CSV file '{table.path}': no row names class {missing[0]} (column '{column}'); "
            "pass classnames= to name every class"
        )
    return [names[k] for k in range(len(names))]


def _labels_by_name(
    table: _Table, column: str, names: Sequence[str] | None
) -> tuple[list[int], list[str]]:
    """A label column holding class *names*: indices into ``names`` (default: sorted names)."""
    texts = [text.strip() for text in table.text(column)]
    if names is None:
        names = sorted(set(texts))
    index = index_by_name(names, f"CSV file '{table.path}'")
    labels = []
    for row, text in enumerate(texts):
        if text not in index:
            raise StarftError(
                f"{table.where(row, column)}: class '{text}' is not in the given class names"
            )
        labels.append(index[text])
    return labels, list(names)


class CsvDataset(ClassificationDataset):
    """Images listed in a CSV/TSV file with class labels (and optional captions, groups).

    ``root`` is the folder relative image paths start from (default: the CSV's folder). ``sep``
    defaults to a tab for ``.tsv`` files and a comma otherwise. ``caption_key``/``group_key``
    default to a ``caption`` or ``title`` column and a ``group`` column when present.

    Class names (captions and zero-shot heads are built from them) come from, first to last:

    1. ``classnames=``: a list, or a file (one name per line, or a JSON list), name k = label k;
    2. a name column (``classname_key``, default ``classname`` or ``class_name`` if present);
    3. ``classnames.txt`` beside the CSV, one name per line;
    4. the label column itself when it holds names instead of integers (classes = its sorted
       names, or indices into ``classnames=``).

    Integer labels with none of these are an error: captions "a photo of a class_0." would
    train the model on nothing. Every image file must exist when the dataset is built.

    ``mask_root`` is a folder of mask PNGs mirroring the image paths (``mask_format``: binary,
    soft or class_id); ``box_key`` a column of boxes (see :mod:`starft.data.region_readers`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        root: str | Path | None = None,
        transform: Transform | None = None,
        classnames: ClassNamesSpec | None = None,
        templates: TemplateSpec | None = None,
        image_key: str = "filepath",
        label_key: str = "label",
        classname_key: str | None = None,
        caption_key: str | None = None,
        group_key: str | None = None,
        group_names: Sequence[str] | None = None,
        sep: str | None = None,
        on_bad_image: str = "error",
        mask_root: str | Path | None = None,
        mask_format: str = "binary",
        box_key: str | None = None,
    ) -> None:
        self.path = Path(path)
        if sep is None:
            sep = "\t" if self.path.suffix.lower() == ".tsv" else ","
        table = _Table(self.path, sep)
        table.require(image_key, "image_key")
        table.require(label_key, "label_key")
        caption_key = table.optional(caption_key, CAPTION_COLUMNS, "caption_key")
        group_key = table.optional(group_key, GROUP_COLUMNS, "group_key")

        classname_key = table.optional(classname_key, CLASSNAME_COLUMNS, "classname_key")
        owner = f"CSV file '{self.path}'"
        given = None if classnames is None else read_classnames(classnames, owner)
        if isinstance(given, dict):
            raise StarftError(
                f"{owner}: classnames must be a list (name k = label k), not a mapping"
            )
        if table.holds_names(label_key):
            labels, names = _labels_by_name(table, label_key, given)
        else:
            labels = table.indices(label_key, "class")
            names = given or self._classnames(table, classname_key, labels)
        table.check_below(label_key, labels, names, "class")
        check_caption_names(
            names, owner, "name the classes with classnames=, a classname column or classnames.txt"
        )

        groups = None
        if group_key is not None:
            groups = table.indices(group_key, "group")
            if group_names is not None:
                table.check_below(group_key, groups, group_names, "group")

        root = self.path.parent if root is None else Path(root)
        #: the folder image paths are relative to (mask folders mirror the layout below it)
        self.root = root
        image_paths = []
        for row, name in enumerate(table.text(image_key)):
            if not name.strip():
                raise StarftError(f"{table.where(row, image_key)}: the image path is empty")
            image_paths.append(str(root / name.strip()))
        boxes = None
        if box_key is not None:
            table.require(box_key, "box_key")
            boxes = [
                parse_boxes(text, labels[row], table.where(row, box_key))
                for row, text in enumerate(table.text(box_key))
            ]
        masks = None if mask_root is None else mask_paths(mask_root, image_paths, root)
        self.regions = RegionFiles(mask_paths=masks, mask_format=mask_format, boxes=boxes)
        self.region_keys = self.regions.keys

        super().__init__(
            classnames=names,
            labels=labels,
            templates=templates,
            groups=groups,
            group_names=group_names,
            captions=None if caption_key is None else table.text(caption_key),
            image_paths=image_paths,
            transform=transform,
            on_bad_image=on_bad_image,
        )

    def describe(self) -> str:
        return f"CSV file '{self.path}'"

    def _classnames(self, table: _Table, column: str | None, labels: list[int]) -> list[str]:
        """Names for integer labels without ``classnames=``: a column, the file, or an error."""
        if column is not None:
            return _names_from_column(table, column, labels)
        beside = self.path.parent / CLASSNAMES_FILE
        if beside.is_file():
            names = read_classnames(beside, f"CSV file '{self.path}'")
            assert isinstance(names, list)  # a .txt file is always a list
            return names
        raise StarftError(
            f"CSV file '{self.path}' has integer labels but no class names (captions would be "
            f"'a photo of a class_0.'): pass classnames= (a list or a file), add a classname "
            f"column, or put {CLASSNAMES_FILE} (one name per line) beside the CSV"
        )

    def read_regions(self, index: int, image: Any) -> dict[str, Any]:
        return self.regions.read(index, image)

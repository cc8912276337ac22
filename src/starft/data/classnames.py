"""Where class names come from, and the checks that keep captions meaningful.

Contrastive methods (FLYP, StarFT, CaRot) train on captions built from class names, and every
zero-shot head is built from them: a dataset whose classes are called ``class_0`` or
``n01440764`` trains and evaluates on captions like "a photo of a n01440764.", silently and
badly. So class names always come from somewhere the user wrote them (a ``classnames=``
argument, a file, a column, folder names), and names that are plainly not names (all numbers,
all WordNet ids) are refused with a line that says how to give real ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from starft.errors import StarftError

#: ``classnames=``: a list of names, a mapping (image folders: folder -> name), a file (one
#: name per line (``.txt``), a JSON list or a JSON object), or a packaged set's name
#: (:data:`PACKAGED_SETS`, e.g. ``imagenet``: CLIP's 1000 ImageNet names in class-index order).
ClassNamesSpec = Sequence[str] | Mapping[str, str] | str | Path

_WORDNET_ID = re.compile(r"n[0-9]{8}")
_NUMBER = re.compile(r"[0-9]+")


#: Packaged class-name lists usable as ``classnames=NAME`` (the benchmarks' own).
PACKAGED_SETS = (
    "imagenet",
    "cifar10",
    "cifar100",
    "stl10",
    "flowers102",
    "iwildcam",
    "fmow",
    "pacs",
    "waterbirds",
)


def packaged_set(name: str) -> list[str]:
    """A packaged class-name list (see :data:`PACKAGED_SETS`)."""
    from starft.data.benchmarks.common import imagenet_classnames, packaged_classnames

    return imagenet_classnames() if name == "imagenet" else list(packaged_classnames(name))


def read_classnames(spec: ClassNamesSpec, owner: str) -> list[str] | dict[str, str]:
    """A list (or mapping) of names from ``spec``: given, packaged, or read from a file."""
    if isinstance(spec, Mapping):
        return {str(key): _name(value, owner) for key, value in spec.items()}
    if isinstance(spec, str) and spec in PACKAGED_SETS and not Path(spec).exists():
        return packaged_set(spec)
    if isinstance(spec, (str, Path)):
        return _read_file(Path(spec), owner)
    if isinstance(spec, Sequence):
        names = [_name(value, owner) for value in spec]
        if not names:
            raise StarftError(f"{owner}: classnames is an empty list")
        return names
    raise StarftError(
        f"{owner}: classnames must be a list of names, a mapping or a file, got {spec!r}"
    )


def _name(value: object, owner: str) -> str:
    if not isinstance(value, (str, int, float)) or not str(value).strip():
        raise StarftError(f"{owner}: class name {value!r} is not a non-empty string")
    return str(value).strip()


def _read_file(path: Path, owner: str) -> list[str] | dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StarftError(
            f"{owner}: class name file '{path}' does not exist (packaged sets: "
            f"{', '.join(PACKAGED_SETS)})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read class name file '{path}': {error}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise StarftError(f"class name file '{path}': invalid JSON ({error.msg})") from None
        if not isinstance(data, (list, dict)):
            raise StarftError(f"class name file '{path}' must hold a JSON list or object")
        return read_classnames(data, f"class name file '{path}'")
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if "" in lines:
        # A blank line inside the list would shift every later class index by one.
        raise StarftError(f"class name file '{path}' has a blank line {lines.index('') + 1}")
    if not lines:
        raise StarftError(f"class name file '{path}' is empty")
    return lines


def placeholder_names(names: Sequence[str]) -> str | None:
    """Why ``names`` are not usable in captions (all numbers / WordNet ids), or None."""
    if names and all(_NUMBER.fullmatch(name) for name in names):
        return "numbers"
    if names and all(_WORDNET_ID.fullmatch(name) for name in names):
        return "WordNet ids"
    return None


def check_caption_names(names: Sequence[str], where: str, fix: str) -> None:
    """Refuse class names that would make captions like "a photo of a 3." (``fix``: the how)."""
    kind = placeholder_names(names)
    if kind is not None:
        raise StarftError(
            f"{where}: the class names are {kind} ({', '.join(names[:3])}, ...), which would "
            f"train and evaluate on captions like 'a photo of a {names[0]}.'; {fix}"
        )


def index_by_name(names: Sequence[str], owner: str) -> dict[str, int]:
    """``name -> index``; a name listed twice is an error (two classes, one caption)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index:
            raise StarftError(f"{owner}: class name '{name}' is listed twice ({index[name]}, {i})")
        index[name] = i
    return index

"""Label spaces: how a dataset's classes relate to a larger space the model was trained in.

ImageNet-R/-A keep 200 of ImageNet's 1000 classes; each of ObjectNet's 113 classes covers one or
more ImageNet classes. A model fine-tuned on ImageNet (a 1000-way linear head, or a zero-shot head
over ImageNet's names) is evaluated there by computing its 1000-way logits and *projecting* them
onto the dataset's classes: the logit of dataset class ``k`` is the maximum of the source logits in
``indices[k]`` (a column selection when each class has one source class, as for IN-R/-A). This is
the WiSE-FT/FLYP protocol; the dataset only declares the mapping, evaluation applies it.

Sets that share classes by *name* but number them differently (a validation folder lacking a
class) are put in the training numbering by :func:`align_classes`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starft.data.classnames import index_by_name
from starft.errors import StarftError
from starft.utils.io import atomic_write_json

IMAGENET = "imagenet"


@dataclass(frozen=True)
class ClassProjection:
    """Dataset class ``k`` <- source classes ``indices[k]`` of the ``space`` label space."""

    space: str
    source_classnames: tuple[str, ...]
    indices: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        n_source = len(self.source_classnames)
        for k, group in enumerate(self.indices):
            if not group:
                raise StarftError(f"label space '{self.space}': class {k} maps to no source class")
            bad = [i for i in group if not 0 <= i < n_source]
            if bad:
                raise StarftError(
                    f"label space '{self.space}': class {k} maps to source class {bad[0]}, "
                    f"outside [0, {n_source})"
                )

    @property
    def is_selection(self) -> bool:
        """True when every class maps to exactly one source class (a column selection)."""
        return all(len(group) == 1 for group in self.indices)


def make_projection(
    space: str, source_classnames: Sequence[str], indices: Sequence[Sequence[int]]
) -> ClassProjection:
    """A :class:`ClassProjection` from plain sequences (lists from JSON resources)."""
    return ClassProjection(
        space=space,
        source_classnames=tuple(str(name) for name in source_classnames),
        indices=tuple(tuple(int(i) for i in group) for group in indices),
    )


def resolve_projection(dataset: object, space: str | None) -> ClassProjection | None:
    """The projection that evaluates ``dataset`` in label space ``space`` (None: its own classes).

    A dataset whose classes *are* that space (``dataset.label_space == space``, e.g. ImageNetV2 for
    ``imagenet``) needs none; one that declares a ``projection`` into it gets that; anything else
    cannot be evaluated there and is an error naming the dataset.
    """
    if space is None:
        return None
    if getattr(dataset, "label_space", None) == space:
        return None
    projection = getattr(dataset, "projection", None)
    if isinstance(projection, ClassProjection) and projection.space == space:
        return projection
    raise StarftError(
        f"dataset {type(dataset).__name__} has no projection into the '{space}' label space"
    )


def align_classes(dataset: Any, classnames: Sequence[str], what: str) -> Any:
    """``dataset`` numbered in the label space ``classnames``, matching classes by name.

    Each image folder or CSV numbers its own classes (a validation folder lacking one class
    numbers the rest 0..K-2), so labels of two sets only agree after mapping names. Returns
    ``dataset`` itself when its class list already equals ``classnames``, else a shallow copy
    whose ``classnames`` are ``classnames`` and whose labels are remapped. A class of the
    dataset that ``classnames`` lacks is an error naming it (``what``: e.g. "validation set").
    """
    classnames = [str(name) for name in classnames]
    own = list(dataset.classnames)
    if own == classnames:
        return dataset
    target = index_by_name(classnames, f"{what}: the training classes")
    index_by_name(own, what)
    unknown = [name for name in own if name not in target]
    if unknown:
        preview = ", ".join(repr(name) for name in classnames[:5])
        more = ", ..." if len(classnames) > 5 else ""
        raise StarftError(
            f"{what}: class '{unknown[0]}' is not a training class "
            f"({len(classnames)} training classes: {preview}{more})"
        )
    mapping = [target[name] for name in own]
    aligned = copy.copy(dataset)
    aligned.classnames = classnames
    aligned.labels = [mapping[label] for label in dataset.labels]
    return aligned


#: Written beside exported weights: the class names the model was fine-tuned on, in order.
TRAINING_CLASSES_FILE = "classnames.json"


def write_training_classes(folder: str | Path, classnames: Sequence[str]) -> Path:
    """Record the training label space beside a model's weights (atomically)."""
    path = Path(folder) / TRAINING_CLASSES_FILE
    atomic_write_json(path, {"classnames": [str(name) for name in classnames]})
    return path


def read_training_classes(folder: str | Path) -> list[str] | None:
    """The class names a saved model was fine-tuned on, or None when it records none."""
    path = Path(folder) / TRAINING_CLASSES_FILE
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["classnames"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StarftError(f"cannot read training classes from '{path}': {error}") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise StarftError(f"'{path}': 'classnames' must be a list of strings")
    return names


def eval_label_space(dataset: Any, training_classes: Sequence[str] | None) -> tuple[Any, str]:
    """The dataset to evaluate a fine-tuned model on, and a line saying which classes score.

    A dataset whose classes are all training classes is scored over the *training* classes
    (as the run's validation did; a folder lacking a class keeps the full label space).
    Otherwise it is its own label space (zero-shot transfer); when it shares only some
    classes with training, the line says which one is new, since a misspelt class name looks
    exactly like that.
    """
    if not training_classes or list(dataset.classnames) == list(training_classes):
        return dataset, ""
    own = list(dataset.classnames)
    known = set(training_classes)
    new = [name for name in own if name not in known]
    if not new:
        aligned = align_classes(dataset, training_classes, "evaluation set")
        return aligned, (
            f"scoring over the model's {len(training_classes)} training classes "
            f"(the dataset has {len(own)} of them)"
        )
    if len(new) < len(own):
        return dataset, (
            f"warning: class '{new[0]}' (and {len(new) - 1} more) of the dataset is not a "
            f"training class while {len(own) - len(new)} are; scoring over the dataset's own "
            f"{len(own)} classes with a zero-shot head"
        )
    return dataset, ""

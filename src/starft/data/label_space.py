"""Label spaces: how a dataset's classes relate to a larger space the model was trained in.

ImageNet-R/-A keep 200 of ImageNet's 1000 classes; each of ObjectNet's 113 classes covers one or
more ImageNet classes. A model fine-tuned on ImageNet (a 1000-way linear head, or a zero-shot head
over ImageNet's names) is evaluated there by computing its 1000-way logits and *projecting* them
onto the dataset's classes: the logit of dataset class ``k`` is the maximum of the source logits in
``indices[k]`` (a column selection when each class has one source class, as for IN-R/-A). This is
the WiSE-FT/FLYP protocol; the dataset only declares the mapping, evaluation applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starft.errors import StarftError

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

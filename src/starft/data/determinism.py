"""Is a training sample a pure function of its dataset row? (For exact per-row feature caches.)

Two things must hold: the dataset reads the same image for a row every time (files on disk,
pre-rendered arrays), and the transform has no random step. Both are decided from the objects
themselves, never from a user's promise: a transform counts as deterministic only when every step
is one of a known list of fixed operations (resize, centre crop, tensor conversion, normalise),
so an unknown or custom step makes the answer "not deterministic" (a transform class of one's own
declares itself fixed with a class attribute ``deterministic_step = True``). A wrong "yes" would
be a silent wrong result (features of one crop reused for another); a wrong "no" only costs speed.
"""

from __future__ import annotations

from typing import Any

from starft.utils.transform_steps import DETERMINISTIC_STEPS, EQUIVALENT_STEPS


def _fixed_steps() -> tuple[set[type], set[Any]]:
    """torchvision's transform classes (exact types) that never draw random numbers."""
    from torchvision import transforms as T
    from torchvision.transforms import v2

    classes: set[type] = {
        T.Resize,
        T.CenterCrop,
        T.ToTensor,
        T.PILToTensor,
        T.Normalize,
        T.ConvertImageDtype,
        T.Grayscale,
        T.Pad,
        v2.Resize,
        v2.CenterCrop,
        v2.ToImage,
        v2.ToDtype,
        v2.ToPureTensor,
        v2.PILToTensor,
        v2.Normalize,
        v2.Grayscale,
        v2.Pad,
        v2.ConvertImageDtype,
    }
    return classes, set()


def _compose_steps(transform: Any) -> list[Any] | None:
    from torchvision import transforms as T
    from torchvision.transforms import v2

    if type(transform) in (T.Compose, v2.Compose):
        return list(transform.transforms)
    return None


def random_transform_step(transform: Any) -> str | None:
    """The first step of ``transform`` that is random or unknown (its repr), or None if none is.

    ``None`` (no transform) is deterministic. Composes are searched recursively.
    """
    if transform is None:
        return None
    classes, functions = _fixed_steps()
    pending = [transform]
    while pending:
        step = pending.pop(0)
        inner = _compose_steps(step)
        if inner is not None:
            pending[:0] = inner
            continue
        if type(step) in classes or step in functions:
            continue
        if getattr(type(step), "deterministic_step", False):  # a class's own declaration
            continue
        if _declared_fixed(step):
            continue
        return getattr(step, "__name__", type(step).__name__)
    return None


def _declared_fixed(step: Any) -> bool:
    """A model library's own step that its backend declared deterministic (or equal to a fixed
    torchvision step), e.g. open_clip's ``MaybeToTensor`` or its ``ResizeKeepRatio`` with the
    random options off."""
    if type(step) in EQUIVALENT_STEPS:
        return True
    for key in (type(step), step):
        try:
            if key in DETERMINISTIC_STEPS:
                when = DETERMINISTIC_STEPS[key]
                return when is None or bool(when(step))
        except TypeError:  # an unhashable step object
            continue
    return False


def fixed_images(dataset: Any) -> bool:
    """Does ``dataset`` read the same image for a row every time?

    True for datasets that read one file per row through the base class's reader, and for
    dataset classes that declare ``fixed_images = True`` (pre-rendered arrays, images generated
    from a per-row seed). Any other dataset is assumed to vary.
    """
    from starft.data.base import ClassificationDataset

    if getattr(type(dataset), "fixed_images", False):
        return True
    return (
        isinstance(dataset, ClassificationDataset)
        and dataset.image_paths is not None
        and type(dataset).read_image is ClassificationDataset.read_image
    )


def row_is_deterministic(dataset: Any) -> str | None:
    """Why a row's training sample may differ between reads (None: it never does)."""
    if not fixed_images(dataset):
        return (
            f"{type(dataset).__name__} does not declare that it reads the same image for a row "
            "every time (fixed_images)"
        )
    step = random_transform_step(getattr(dataset, "transform", None))
    if step is not None:
        return f"the training transform has a random or unknown step: {step}"
    return None

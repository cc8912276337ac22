"""The base class every classification dataset derives from, and the one image loader.

Samples are dicts (``image, label, group, index`` and ``caption`` when the dataset has its own
captions) so methods and the training loop read fields by name, never by tuple position. Labels and
groups are lists known up front, without decoding any image, so samplers, group statistics and
zero-shot heads can be built before the first batch.
"""

from __future__ import annotations

import logging
import operator
import os
import typing
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from starft.config import OnBadImage
from starft.data.regions import transform_sample
from starft.data.templates import TemplateSpec, get_templates
from starft.errors import StarftError

logger = logging.getLogger(__name__)

ON_BAD_IMAGE: tuple[str, ...] = typing.get_args(OnBadImage)
DEFAULT_TEMPLATES = "simple"

Transform = Callable[[Image.Image], Any]
#: Fields every sample of a :class:`ClassificationDataset` has.
BASE_KEYS = ("image", "label", "group", "index")


class UnreadableImageError(StarftError):
    """An image file is missing, corrupt or unreadable (a :class:`StarftError` for the CLI).

    A DataLoader worker's error comes back re-raised with the worker's traceback as its
    message; only its last line (this error's own message, naming the file) is kept, so the
    user still sees one line.
    """

    def __init__(self, message: str) -> None:
        if "\nOriginal Traceback" in message:
            last = [line for line in message.splitlines() if line.strip()][-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def _reason(error: BaseException) -> str:
    """A short cause without the path (the message names the path once already)."""
    if isinstance(error, FileNotFoundError):
        return "file does not exist"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, Image.UnidentifiedImageError):
        return "not a recognised image format (corrupt or not an image)"
    return f"{type(error).__name__}: {error}".replace("\n", " ")


def _check_index_list(values: Sequence[int], count: int, what: str, owner: str) -> list[int]:
    """Ints in ``[0, count)``; subclasses check first to name the row, this is the backstop."""
    checked = [int(value) for value in values]
    bad = [value for value in checked if not 0 <= value < count]
    if bad:
        raise StarftError(f"{owner}: {what} {bad[0]} is outside [0, {count})")
    return checked


class ClassificationDataset(Dataset):
    """Images with integer labels, class names and caption templates; optionally groups, captions.

    ``templates`` is anything :func:`~starft.data.templates.get_templates` accepts (a set name, a
    list of format strings or a file); the default is the single ``"a photo of a {}."``. Groups
    without ``group_names`` are named ``group_0 ..``. Subclasses either pass ``image_paths`` (one
    file per sample, read by :meth:`load_image`) or override :meth:`read_image`.

    Region fields (``mask``, ``parts``, ``boxes``, see :mod:`starft.data.regions`): a subclass
    lists the ones it emits in ``region_keys`` and returns them from :meth:`read_regions`; the
    transform then moves them with the image.
    """

    #: Region fields the samples carry (a subset of :data:`starft.data.regions.REGION_KEYS`).
    region_keys: tuple[str, ...] = ()
    #: Names of the part masks of ``parts`` (datasets that emit parts set it).
    part_names: list[str] | None = None
    #: True when :meth:`read_image` returns the same image for a row on every read (arrays,
    #: per-row seeds). File-backed datasets using the base reader need not set it; a dataset
    #: that draws images at random must leave it False (exact feature caches rely on it).
    fixed_images: bool = False

    def __init__(
        self,
        *,
        classnames: Sequence[str],
        labels: Sequence[int],
        templates: TemplateSpec | None = None,
        groups: Sequence[int] | None = None,
        group_names: Sequence[str] | None = None,
        captions: Sequence[str] | None = None,
        image_paths: Sequence[str] | None = None,
        transform: Transform | None = None,
        on_bad_image: str = "error",
    ) -> None:
        owner = type(self).__name__
        if on_bad_image not in ON_BAD_IMAGE:
            raise StarftError(
                f"{owner}: on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, "
                f"got '{on_bad_image}'"
            )
        if not classnames:
            raise StarftError(f"{owner}: the class name list is empty")
        self.classnames: list[str] = [str(name) for name in classnames]
        self.templates: list[str] = get_templates(
            DEFAULT_TEMPLATES if templates is None else templates
        )
        self.labels: list[int] = _check_index_list(labels, len(self.classnames), "label", owner)
        self.groups: list[int] | None = None
        self.group_names: list[str] | None = None
        if groups is not None:
            groups = [int(group) for group in groups]
            if group_names is None:
                group_names = [f"group_{g}" for g in range(max(groups, default=-1) + 1)]
            self.group_names = [str(name) for name in group_names]
            self.groups = _check_index_list(groups, len(self.group_names), "group", owner)
        elif group_names is not None:
            raise StarftError(f"{owner}: group_names were given but the dataset has no groups")
        self.captions: list[str] | None = None if captions is None else list(captions)
        self.image_paths: list[str] | None = None if image_paths is None else list(image_paths)
        for name, values in (("groups", self.groups), ("captions", self.captions)):
            if values is not None and len(values) != len(self.labels):
                raise StarftError(f"{owner}: {len(values)} {name} for {len(self.labels)} labels")
        self.transform = transform
        self.on_bad_image = on_bad_image
        if self.image_paths is not None:
            self._check_files_exist(self.describe())

    def _check_files_exist(self, owner: str) -> None:
        """Every listed image file must exist: one stat per file, before any training starts.

        A missing file is an error naming it (``on_bad_image='error'``) or counted in a warning
        and skipped when read (``'skip'``); corrupt files are found when first decoded.
        """
        assert self.image_paths is not None
        missing = [path for path in self.image_paths if not os.path.isfile(path)]
        if not missing:
            return
        where = f"{owner}: {len(missing)} of {len(self.image_paths)} image files do not exist"
        if self.on_bad_image == "error":
            raise UnreadableImageError(
                f"{where}, the first is '{missing[0]}' (check root=; data.on_bad_image=skip "
                "skips missing and unreadable images)"
            )
        logger.warning("%s (first: '%s'); they will be skipped", where, missing[0])

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self) -> str:
        """How error messages name this dataset (its file or folder where it has one)."""
        return type(self).__name__

    def __repr__(self) -> str:
        groups = "" if self.group_names is None else f", groups={len(self.group_names)}"
        return f"{type(self).__name__}(n={len(self)}, classes={self.num_classes}{groups})"

    def load_image(self, path: str) -> Image.Image:
        """Open an image file as RGB; the single place where image files are decoded.

        Raises :class:`UnreadableImageError` naming the file for a missing, corrupt or truncated
        file; :meth:`__getitem__` turns that into a skipped sample when ``on_bad_image='skip'``.
        """
        try:
            with Image.open(path) as image:
                # convert() forces the full decode here, so truncated files fail now, not later.
                return image.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise UnreadableImageError(f"cannot read image '{path}': {_reason(error)}") from error

    def read_image(self, index: int) -> Image.Image:
        """The RGB image of sample ``index`` (from ``image_paths`` unless overridden)."""
        if self.image_paths is None:
            raise TypeError(f"{type(self).__name__} must pass image_paths or override read_image")
        return self.load_image(self.image_paths[index])

    @property
    def sample_keys(self) -> frozenset[str]:
        """The batch fields this dataset's samples carry (for methods' ``data_keys`` checks)."""
        caption = ("caption",) if self.captions is not None else ()
        return frozenset((*BASE_KEYS, *caption, *self.region_keys))

    def read_regions(self, index: int, image: Image.Image) -> dict[str, Any]:
        """Region fields of sample ``index`` in pixels of its decoded ``image`` (default: none).

        Subclasses return the keys of ``region_keys``: ``mask`` float ``[H, W]``, ``parts``
        ``[P, H, W]`` with ``part_weights`` ``[P]``, ``boxes`` xyxy ``[K, 4]`` with
        ``box_labels`` ``[K]``.
        """
        return {}

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        """The sample dict, or ``None`` for an unreadable image when ``on_bad_image='skip'``."""
        index = operator.index(index)  # numpy ints from samplers become plain ints
        if not 0 <= index < len(self.labels):
            raise IndexError(f"index {index} out of range for {len(self.labels)} samples")
        try:
            image = self.read_image(index)
        except UnreadableImageError as error:
            if self.on_bad_image == "error":
                raise
            logger.warning("skipping sample %d: %s", index, error)
            return None
        fields = transform_sample(
            self.transform,
            image,
            self.read_regions(index, image) if self.region_keys else {},
            where=f"{type(self).__name__} sample {index}",
        )
        sample: dict[str, Any] = {
            "image": fields.pop("image"),
            "label": self.labels[index],
            "group": -1 if self.groups is None else self.groups[index],
            "index": index,
        }
        if self.captions is not None:
            sample["caption"] = self.captions[index]
        sample.update(fields)
        return sample

"""Region fields of sandbox samples (masks, parts, marker boxes) and the marker plan of a dataset.

Fields follow one convention across the toolkit's data path:

- ``mask``: float32 ``[H, W]`` in [0, 1], the object (soft coverage, or binary by ``mask_mode``);
- ``scene_mask``: float32 ``[H, W]``, one minus the object mask;
- ``parts``: float32 ``[P, H, W]`` padded to the most parts any shape has, with ``part_weights``
  float32 ``[P]`` (0 for padding); the dataset's ``part_names`` names the slots per shape;
- ``boxes``: float32 ``[K, 4]`` xyxy in pixels with ``box_labels`` int64 ``[K]`` (the marker kind's
  index in :func:`~starft.sandbox.markers.marker_kinds`); ``K`` is 0 or 1 (no marker or one).

They are emitted only when a dataset is asked for them (``fields="mask,parts,boxes"``), so every
existing dataset and run is unchanged by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from starft.errors import StarftError
from starft.sandbox.layers import MASK_MODES
from starft.sandbox.markers import check_marker, marker_kinds

FIELDS = ("mask", "scene_mask", "parts", "boxes")
# The keys each requested field adds to a sample.
FIELD_KEYS = {
    "mask": ("mask",),
    "scene_mask": ("scene_mask",),
    "parts": ("parts", "part_weights"),
    "boxes": ("boxes", "box_labels"),
}


def parse_fields(fields: str | Sequence[str] | None, owner: str) -> frozenset[str]:
    """``"mask,parts"``, a list of names, or None (no fields) -> the set of field names."""
    if fields is None:
        return frozenset()
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    names = [str(name).strip() for name in names if str(name).strip()]
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise StarftError(f"{owner}: unknown field '{unknown[0]}' (known: {', '.join(FIELDS)})")
    return frozenset(names)


def check_mask_mode(mask_mode: str, owner: str) -> str:
    if mask_mode not in MASK_MODES:
        raise StarftError(
            f"{owner}: mask_mode must be one of {', '.join(MASK_MODES)}, got {mask_mode!r}"
        )
    return mask_mode


@dataclass(frozen=True)
class MarkerPlan:
    """Which rows of a dataset carry a marker, of which kind, on which region grid.

    ``cramers_v`` is the achieved class x marker association (None when the plan was not built
    from a contingency table).
    """

    kind: str
    grid: int
    present: np.ndarray  # (N,) bool
    cramers_v: float | None = None

    @property
    def label(self) -> int:
        """The kind's box label (its index in the marker kinds)."""
        return marker_kinds().index(self.kind)

    def check(self, rows: int, size: int, owner: str) -> None:
        """One clear error for a wrong-length plan or a marker that does not fit the grid."""
        if self.present.shape != (rows,) or self.present.dtype != bool:
            raise StarftError(
                f"{owner}: the marker plan needs a bool array of {rows} rows, "
                f"got {self.present.dtype} {self.present.shape}"
            )
        check_marker(self.kind, self.grid, size)

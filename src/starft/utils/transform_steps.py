"""Image-transform steps a model library defines, declared by the torchvision step they equal.

The data layer turns a model's preprocessing into a mask- and box-aware torchvision v2 transform
step by step (``starft.data.regions``). It knows torchvision's steps; a model backend declares its
library's own steps here (e.g. open_clip's ``MaybeToTensor``), so the data layer never imports a
model library and a model backend never imports the data layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

#: ``to_tensor``: exactly torchvision's ``ToTensor``; ``image_only``: changes pixel values or the
#: colour mode only, never the geometry (masks and boxes pass through unchanged).
StepKind = Literal["to_tensor", "image_only"]

EQUIVALENT_STEPS: dict[type, StepKind] = {}


def declare_step(step_type: type, kind: StepKind) -> None:
    """Declare that transform steps of ``step_type`` act like ``kind`` (see :data:`StepKind`)."""
    EQUIVALENT_STEPS[step_type] = kind


#: Steps that never draw random numbers (a type or a plain function), beyond torchvision's fixed
#: ones, each with an optional test on the step object (a step that is fixed only with its random
#: options off). The exact per-row feature caches (``starft.data.determinism``) read it.
DETERMINISTIC_STEPS: dict[object, Callable[[Any], bool] | None] = {}


def declare_deterministic(step: object, when: Callable[[Any], bool] | None = None) -> None:
    """Declare that ``step`` (a transform type, or a function used as a step) is deterministic,
    or only when ``when(step_object)`` holds."""
    DETERMINISTIC_STEPS[step] = when

"""starft: robust fine-tuning of zero-shot vision-language models.

Library entry points (the CLI in :mod:`starft.cli` is a thin layer over these):

- :func:`starft.models.create_model` — a model behind the :class:`~starft.models.ClipModel`
  protocol: open_clip (any architecture, pretrained tag, checkpoint, ``hf-hub:`` name from the
  local cache) or Hugging Face ``transformers`` CLIP / SigLIP (``hf:PATH_OR_ID``).
- :func:`starft.methods.create_method` — a fine-tuning recipe (``flyp``, ``starft``, ...).
- :func:`starft.data.create_dataset` — a registered dataset returning dict samples.
- :func:`starft.train.fit` — the training loop; :func:`starft.eval.evaluate` — evaluation.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

from starft.errors import StarftError

# Sub-packages reachable as attributes after a bare ``import starft`` (``starft.train.fit``),
# imported on first use so that ``import starft`` (and the CLI's start-up) stays light.
_SUBMODULES = (
    "config",
    "data",
    "eval",
    "losses",
    "method_configs",
    "methods",
    "models",
    "registry",
    "train",
)


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"starft.{name}")
    raise AttributeError(f"module 'starft' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])


__all__ = ["StarftError", "__version__"]

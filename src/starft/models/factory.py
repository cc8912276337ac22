"""Create, save and load models of any backend (:mod:`starft.models.backends`).

A model is named by

1. a saved-model folder (written by :func:`save_model`, or any open_clip ``local-dir`` /
   ``transformers`` ``save_pretrained`` folder of a supported type): its backend is read from
   the files in it;
2. a prefixed name: ``hf:PATH_OR_ID`` (``transformers`` CLIP / SigLIP), ``hf-hub:ORG/NAME``
   (open_clip model in the local Hugging Face cache), ``local-dir:PATH`` (open_clip folder);
3. a starft model or an open_clip architecture (``starft ls models``), with ``pretrained`` an
   open_clip tag or checkpoint file.

Nothing is downloaded at run time by ``hf:`` / ``hf-hub:`` names: they are read from a folder or
the local cache, and a missing model is a one-line error naming where it was looked for.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from starft.models.backends import BACKENDS, backend_for, is_saved_model
from starft.models.backends.open_clip_load import MODELS, ModelSpec, list_open_clip_models
from starft.models.protocol import ClipModel
from starft.utils.io import follow_umask, make_temp_dir

__all__ = [
    "MODELS",
    "ModelSpec",
    "create_model",
    "is_saved_model",
    "list_backends",
    "list_models",
    "save_model",
]


def list_backends() -> list[tuple[str, str]]:
    """(backend, description with the names / prefixes it takes) of every backend."""
    return [(e.name, f"{e.description}; names: {e.obj.usage}") for e in BACKENDS]


def list_models() -> list[tuple[str, str]]:
    """(name, description) of every model name ``create_model`` accepts without a prefix."""
    return list_open_clip_models()


def create_model(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> ClipModel:
    """Build a :class:`ClipModel` from a name (see module docstring) and optional weights.

    Args:
        name: saved-model folder, prefixed name, starft model name or open_clip architecture.
        pretrained: open_clip pretrained tag or checkpoint file; ignored for folders and ``hf:``.
        device: where to put the model.
        precision: weights' precision (``fp32`` for training; autocast handles mixed precision).
        cache_dir: download cache of open_clip tags; the Hugging Face cache for ``hf:`` /
            ``hf-hub:`` names (default: ``HF_HUB_CACHE``, ``HF_HOME/hub``, ``~/.cache``).
    """
    backend = BACKENDS.get(backend_for(name))
    return backend.create(name, pretrained, device=device, precision=precision, cache_dir=cache_dir)


def save_model(model: ClipModel, out_dir: str | Path) -> Path:
    """Write ``model`` as a folder its own library loads back, atomically.

    open_clip models become an open_clip ``local-dir`` folder (``open_clip_config.json`` +
    ``open_clip_model.safetensors``); ``transformers`` models a ``save_pretrained`` folder (model,
    tokenizer, image processor) that ``from_pretrained`` loads. ``create_model(out_dir)`` loads
    either. The files are written to a temporary sibling folder which then replaces ``out_dir``,
    so a crash never leaves a half-written model behind.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir)  # mode from the umask: others may read the weights
    try:
        model.save_to(tmp)
        follow_umask(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)

"""Model backends: the libraries starft can fine-tune models of, one table.

Only the modules of this package import open_clip or ``transformers``; everything else sees
:class:`starft.models.ClipModel`. A backend is chosen by the model name's prefix, or, for a folder,
by the files in it (``open_clip_config.json`` or a ``transformers`` ``config.json``); a name without
prefix goes to open_clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starft.registry import Registry


@dataclass(frozen=True)
class Backend:
    """``prefixes``: name prefixes routed here; ``is_folder``: does a folder hold one of ours."""

    prefixes: tuple[str, ...]
    create: Callable[..., Any]
    is_folder: Callable[[Path], bool]
    usage: str


def _open_clip_create(*args: Any, **kwargs: Any) -> Any:
    from starft.models.backends.open_clip_load import create_open_clip

    return create_open_clip(*args, **kwargs)


def _open_clip_folder(path: Path) -> bool:
    from starft.models.backends.open_clip_model import CONFIG_FILE

    return (path / CONFIG_FILE).is_file()


def _hf_create(*args: Any, **kwargs: Any) -> Any:
    from starft.models.backends.hf_load import create_hf

    return create_hf(*args, **kwargs)


def _hf_folder(path: Path) -> bool:
    from starft.models.backends.hf_load import is_hf_folder

    return is_hf_folder(path)


BACKENDS: Registry[Backend] = Registry("model backend")
BACKENDS.add(
    "open_clip",
    Backend(
        ("local-dir:", "hf-hub:"),
        _open_clip_create,
        _open_clip_folder,
        "ARCH [--pretrained TAG|FILE], local-dir:PATH, hf-hub:ORG/NAME (local HF cache)",
    ),
    "open_clip models (default): starft's own, any open_clip architecture and pretrained tag",
)
BACKENDS.add(
    "hf",
    Backend(("hf:",), _hf_create, _hf_folder, "hf:PATH_OR_ID (folder or local HF cache)"),
    "Hugging Face transformers CLIPModel / SiglipModel (pip install 'starft[hf]')",
)
DEFAULT_BACKEND = "open_clip"


def backend_for(name: str) -> str:
    """The backend a model name goes to: by prefix, then by folder contents, else open_clip."""
    for entry in BACKENDS:
        if name.startswith(entry.obj.prefixes):
            return entry.name
    path = Path(name)
    if path.is_dir():
        for entry in BACKENDS:
            if entry.obj.is_folder(path):
                return entry.name
    return DEFAULT_BACKEND


def is_saved_model(path: str | Path) -> bool:
    """Does ``path`` hold a model folder any backend loads?"""
    path = Path(path)
    return path.is_dir() and any(entry.obj.is_folder(path) for entry in BACKENDS)

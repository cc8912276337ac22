"""Where the local Hugging Face cache is, decided when a model is loaded (not at import).

``huggingface_hub`` reads ``HF_HUB_CACHE`` / ``HF_HOME`` once, when it is imported; reading them
here at load time lets a process (or a test) point at another cache before loading a model.
"""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache_dir(cache_dir: str | None = None) -> Path:
    """``cache_dir``, else ``HF_HUB_CACHE``, ``HF_HOME/hub`` or ``~/.cache/huggingface/hub``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "huggingface" / "hub"

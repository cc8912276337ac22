"""Read the sandbox's JSON data files (``starft/resources/sandbox/*.json``).

The sandbox keeps its vocabularies, palettes, caption templates and task defaults as data so they
can be read and tuned without touching the renderer. This reader deliberately does not go through
``starft.data.resources``: ``starft.data`` imports the sandbox task registry, and the world must
stay importable without pulling the data package in first (no import cycle).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


@functools.cache
def read_sandbox_json(name: str) -> dict[str, Any]:
    """The top-level object of ``starft/resources/sandbox/<name>``, parsed once and cached.

    Callers get the cached object itself, so they must copy anything they hand out.
    """
    path = resources.files("starft") / "resources" / "sandbox" / name
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"sandbox resource '{name}' must hold a JSON object, got {type(data)}")
    return data

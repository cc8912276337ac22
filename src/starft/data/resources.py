"""Read JSON files shipped in ``starft/resources`` (package data, never the network).

Going through :mod:`importlib.resources` rather than ``__file__`` keeps this working from a wheel
or a zip import. The parsed file is cached because template sets and descriptor pools are looked up
once per dataset or loss, and several of those are built in one run.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


@functools.cache
def _read(name: str) -> Any:
    text = (resources.files("starft") / "resources" / name).read_text(encoding="utf-8")
    return json.loads(text)


def read_json_resource(name: str) -> dict[str, Any]:
    """The top-level object of ``starft/resources/<name>`` (a dict in every file we ship).

    Callers get the cached object itself, so they must copy lists before handing them out.
    """
    data = _read(name)
    if not isinstance(data, dict):
        raise TypeError(f"packaged resource '{name}' must hold a JSON object, got {type(data)}")
    return data

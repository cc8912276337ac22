"""Named caption template sets (data in ``resources/templates.json``).

A template is a format string with one ``{}`` for the class name, e.g. ``"a photo of a {}."``.
FLYP draws a random template per sample from a dataset's set; zero-shot heads average over all of
them. The sets are kept as data, not code, so the package never imports open_clip to read them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from starft.data.format_strings import check_format_strings
from starft.data.resources import read_json_resource
from starft.errors import StarftError

_RESOURCE = "templates.json"

TemplateSpec = str | Path | Sequence[str]


def _builtin_sets() -> dict[str, list[str]]:
    data = read_json_resource(_RESOURCE)
    return {name: value for name, value in data.items() if not name.startswith("_")}


def list_template_sets() -> list[str]:
    """Names accepted by :func:`get_templates`, sorted."""
    return sorted(_builtin_sets())


def _read_template_file(path: Path) -> list[object]:
    """A ``.json`` file holds a list of strings; any other file holds one template per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read template file '{path}': {error}") from None
    if path.suffix.lower() != ".json":
        # Blank lines and '#' comments let users annotate their own template lists.
        lines = (line.strip() for line in text.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise StarftError(f"template file '{path}' is not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise StarftError(
            f"template file '{path}' must hold a JSON list of strings, got {type(data).__name__}"
        )
    return data


def get_templates(name_or_list: TemplateSpec) -> list[str]:
    """Resolve a template set: a registered name, a list of format strings, or a JSON/TXT file.

    Every template must contain exactly one ``{}``; the first offending one is named in the error.
    Returns a fresh list the caller may modify.
    """
    if isinstance(name_or_list, (str, Path)):
        builtin = _builtin_sets()
        if isinstance(name_or_list, str) and name_or_list in builtin:
            return check_format_strings(builtin[name_or_list], f"template set '{name_or_list}'")
        path = Path(name_or_list)
        if not path.is_file():
            known = ", ".join(sorted(builtin))
            raise StarftError(
                f"unknown template set '{name_or_list}' (known: {known}; "
                "or give a list of format strings or a .json/.txt file)"
            )
        return check_format_strings(_read_template_file(path), f"template file '{path}'")
    if not isinstance(name_or_list, Sequence):
        raise StarftError(
            f"templates must be a set name, a file or a list of strings, got {name_or_list!r}"
        )
    return check_format_strings(name_or_list, "templates")

"""Reading class-name lists (``--classes FILE``) for generation."""

from __future__ import annotations

import json
from pathlib import Path

from starft.errors import StarftError


def read_classnames(path: str | Path) -> list[str]:
    """Class names from a ``.json`` list of strings or a text file with one name per line.

    Blank lines and ``#`` comments are skipped in text files; duplicates are an error (they would
    silently merge two classes' entries).
    """
    path = Path(path)
    where = f"class file '{path}'"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read {where}: {error}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise StarftError(f"{where} is not valid JSON: {error}") from None
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise StarftError(f"{where}: must hold a JSON list of class-name strings")
        names = [x.strip() for x in data]
    else:
        names = [line.strip() for line in text.splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
    if not names or not all(names):
        raise StarftError(f"{where}: holds no class names (or an empty one)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise StarftError(f"{where}: class '{name}' is listed twice")
        if name.startswith("_"):
            raise StarftError(f"{where}: class '{name}' may not start with '_' (comment keys)")
        seen.add(name)
    return names

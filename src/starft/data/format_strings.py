"""Validation of caption format strings (templates and spurious descriptors).

Both kinds are ``str.format`` strings with exactly one ``{}`` slot: a template receives a class
name, a descriptor receives a whole caption. Checking them when they are loaded turns a typo in a
user file into a clear error instead of a wrong caption (``{}`` twice) or a crash mid-training (a
stray ``{``).
"""

from __future__ import annotations

from collections.abc import Iterable

from starft.errors import StarftError


def check_format_string(text: object, where: str) -> str:
    """Return ``text`` if it is a string with exactly one ``{}`` and no other braces.

    ``where`` names the source (file or set) for the error message.
    """
    if not isinstance(text, str):
        raise StarftError(f"{where}: entry {text!r} is not a string")
    if text.count("{}") != 1:
        raise StarftError(f"{where}: entry {text!r} must contain exactly one '{{}}'")
    # Any other brace ('{0}', '{name}', a lone '{') would make str.format fail or eat an argument.
    if "{" in text.replace("{}", "") or "}" in text.replace("{}", ""):
        raise StarftError(f"{where}: entry {text!r} has braces other than its one '{{}}'")
    return text


def check_format_strings(items: Iterable[object], where: str) -> list[str]:
    """Validate every entry (see :func:`check_format_string`) and refuse an empty collection."""
    checked = [check_format_string(item, where) for item in items]
    if not checked:
        raise StarftError(f"{where}: is empty (expected at least one format string with '{{}}')")
    return checked

"""The prompts of pool and concept-bank generation: package data, overridable from a JSON file.

A prompt is a chat conversation (a list of ``{role, content}`` messages) with ``{name}``
placeholders. Placeholders are replaced by plain text substitution, not ``str.format``, so a prompt
may show literal braces (``"write '{}' where the caption goes"``) to the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from starft.data.resources import read_json_resource
from starft.errors import StarftError
from starft.generation.client import Message, check_messages

_RESOURCE = "generation/prompts.json"
# Each prompt and the placeholders it may use (any other '{word}' is a typo in the prompt file).
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "concepts": ("domain",),
    "descriptors": ("domain", "concept", "k"),
    "descriptors_more": ("domain", "concept", "k"),
    "class_concepts": ("domain", "classname", "k"),
    "class_concepts_more": ("domain", "classname", "k"),
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class PromptSet:
    """All prompts of a generation run, by name (see :data:`PLACEHOLDERS`)."""

    prompts: dict[str, list[Message]]

    def render(self, name: str, **values: object) -> list[Message]:
        """Prompt ``name`` with its placeholders filled in (all of ``values`` must be allowed)."""
        allowed = PLACEHOLDERS[name]
        unknown = set(values) - set(allowed)
        if unknown:
            raise ValueError(f"prompt '{name}' has no placeholder(s) {sorted(unknown)}")
        rendered = []
        for message in self.prompts[name]:
            content = message["content"]
            for key, value in values.items():
                content = content.replace("{" + key + "}", str(value))
            rendered.append({"role": message["role"], "content": content})
        return rendered

    def to_json(self, *names: str) -> dict[str, list[Message]]:
        """The prompts ``names`` (all when none given) as JSON-ready message lists."""
        chosen = names or tuple(self.prompts)
        return {name: [dict(m) for m in self.prompts[name]] for name in chosen}


def _check(name: str, messages: object, where: str) -> list[Message]:
    if isinstance(messages, str):  # shorthand: one user message
        messages = [{"role": "user", "content": messages}]
    checked = check_messages(messages, f"{where}: prompt '{name}'")
    for message in checked:
        for placeholder in _PLACEHOLDER.findall(message["content"]):
            if placeholder not in PLACEHOLDERS[name]:
                raise StarftError(
                    f"{where}: prompt '{name}' uses '{{{placeholder}}}' (allowed: "
                    f"{', '.join('{' + p + '}' for p in PLACEHOLDERS[name])})"
                )
    return checked


def default_prompts() -> PromptSet:
    data = read_json_resource(_RESOURCE)
    return PromptSet({name: _check(name, data[name], "packaged prompts") for name in PLACEHOLDERS})


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """The packaged prompts, with the keys of the JSON file ``path`` (if given) replacing theirs.

    The file holds an object whose keys are prompt names (:data:`PLACEHOLDERS`) and whose values
    are message lists or a plain string (one user message); ``_``-keys are comments.
    """
    prompts = dict(default_prompts().prompts)
    if path is None:
        return PromptSet(prompts)
    where = f"prompt file '{path}'"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise StarftError(f"cannot read {where}: {error}") from None
    except json.JSONDecodeError as error:
        raise StarftError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise StarftError(f"{where}: must hold a JSON object of prompt name -> messages")
    for name, messages in data.items():
        if name.startswith("_"):
            continue
        if name not in PLACEHOLDERS:
            raise StarftError(
                f"{where}: unknown prompt '{name}' (known: {', '.join(PLACEHOLDERS)})"
            )
        prompts[name] = _check(name, messages, where)
    return PromptSet(prompts)

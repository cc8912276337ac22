"""The one thing a language model must do for starft: answer a chat conversation with text.

Any object with a ``complete(messages, *, temperature, max_tokens, seed) -> str`` method is a
client (:class:`ChatClient`), so users can plug in whatever they run; the shipped backends are an
OpenAI-compatible HTTP endpoint and a local ``transformers`` model. Messages are the
chat-completions format: ``[{"role": "system" | "user" | "assistant", "content": "..."}]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from starft.errors import StarftError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


@runtime_checkable
class ChatClient(Protocol):
    """A language model behind a chat interface; returns the assistant's answer text."""

    def complete(
        self, messages: Sequence[Message], *, temperature: float, max_tokens: int, seed: int
    ) -> str: ...


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of every call (part of each answer's cache key).

    Temperature 0 (greedy) by default so that a pool can be re-generated from the same model.
    """

    temperature: float = 0.0
    max_tokens: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise StarftError(f"temperature must be in [0, 2], got {self.temperature}")
        if int(self.max_tokens) < 1:
            raise StarftError(f"max_tokens must be >= 1, got {self.max_tokens}")


def check_messages(messages: object, where: str) -> list[Message]:
    """A validated copy of a chat conversation (a non-empty list of {role, content} dicts)."""
    if not isinstance(messages, list) or not messages:
        raise StarftError(f"{where}: expected a non-empty list of {{role, content}} messages")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise StarftError(f"{where}: message {i} must be an object with 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise StarftError(f"{where}: message {i} has role {role!r} (expected one of {ROLES})")
        if not isinstance(content, str) or not content.strip():
            raise StarftError(f"{where}: message {i} has an empty or non-string 'content'")
        checked.append({"role": role, "content": content})
    return checked

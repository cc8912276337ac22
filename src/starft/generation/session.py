"""What pool and concept-bank generation share: asking in rounds, and recording provenance."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from starft import __version__
from starft.errors import StarftError
from starft.generation.cache import AnswerCache, CachedClient
from starft.generation.client import ChatClient, Message, Sampling
from starft.utils.io import git_hash


def as_cached(client: ChatClient | CachedClient, backend: str, model: str) -> CachedClient:
    """``client`` itself if it is cached, else wrapped with an in-memory cache."""
    if isinstance(client, CachedClient):
        return client
    if not isinstance(client, ChatClient):
        raise StarftError(
            f"client {type(client).__name__} has no complete(messages, *, temperature, "
            "max_tokens, seed) method"
        )
    return CachedClient(client, AnswerCache(None), backend, model)


def ask_in_rounds(
    client: CachedClient,
    first: list[Message],
    more: list[Message],
    sampling: Sampling,
    max_rounds: int,
    want_more: Callable[[list[str]], bool],
) -> list[str]:
    """Ask ``first``; while ``want_more(answers)`` and rounds are left, continue the conversation.

    Round r is cache sample r and its conversation holds every earlier question and answer, so
    growing a pool appends rounds and reuses all earlier answers unchanged.
    """
    if max_rounds < 1:
        raise StarftError(f"max_rounds must be >= 1, got {max_rounds}")
    conversation = list(first)
    answers: list[str] = []
    for round_index in range(max_rounds):
        if round_index:
            conversation = [
                *conversation,
                {"role": "assistant", "content": answers[-1]},
                *more,
            ]
        answers.append(
            client.complete(
                conversation,
                temperature=sampling.temperature,
                max_tokens=sampling.max_tokens,
                seed=sampling.seed,
                sample=round_index,
            )
        )
        if not want_more(answers):
            break
    return answers


def provenance(client: CachedClient, sampling: Sampling, generator: str) -> dict[str, Any]:
    """Who made a file and how: backend, model, sampling, date, starft version and commit."""
    info: dict[str, Any] = {
        "generator": generator,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "starft_version": __version__,
        "git_hash": git_hash(),
        "backend": "replay" if client.replay else client.backend,
        "model": client.model,
    }
    if client.replay:
        info["recorded_backend"] = client.backend
    endpoint = getattr(client.client, "url", None)  # HTTP backends: where the answers came from
    if isinstance(endpoint, str):
        info["endpoint"] = endpoint
    info["sampling"] = {
        "temperature": sampling.temperature,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed,
    }
    return info

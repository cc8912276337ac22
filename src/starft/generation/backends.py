"""Named language-model backends and the cached client every generation command uses.

``openai`` (an OpenAI-compatible HTTP endpoint), ``transformers`` (a local model folder) and
``replay`` (answers only from the cache file; a question it has no answer for is an error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starft.errors import StarftError
from starft.generation.cache import AnswerCache, CachedClient
from starft.generation.client import ChatClient
from starft.generation.openai_backend import DEFAULT_BASE_URL, DEFAULT_KEY_ENV, OpenAIChatClient
from starft.registry import Registry


@dataclass(frozen=True)
class BackendOptions:
    """Settings of the live backends (ignored by the ones they do not concern)."""

    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = DEFAULT_KEY_ENV
    timeout_s: float = 120.0
    retries: int = 4
    backoff_s: float = 1.0
    device: str = "cpu"
    replay_backend: str | None = None  # replay: the backend that recorded the answers


def _openai(model: str, options: BackendOptions) -> ChatClient:
    return OpenAIChatClient(
        model,
        base_url=options.base_url,
        api_key_env=options.api_key_env,
        timeout_s=options.timeout_s,
        retries=options.retries,
        backoff_s=options.backoff_s,
    )


def _transformers(model: str, options: BackendOptions) -> ChatClient:
    from starft.generation.hf_backend import TransformersChatClient

    return TransformersChatClient(model, device=options.device)


BACKENDS: Registry[Callable[[str, BackendOptions], ChatClient] | None] = Registry("LM backend")
BACKENDS.add("openai", _openai, "OpenAI-compatible chat-completions endpoint (--base-url)")
BACKENDS.add("transformers", _transformers, "local transformers causal LM folder (starft[hf])")
BACKENDS.add("replay", None, "answers from the cache file only; a missing answer is an error")


def open_client(
    backend: str,
    model: str,
    cache_path: str | Path | None,
    options: BackendOptions | None = None,
) -> CachedClient:
    """A cached client for ``backend`` / ``model`` whose answers go to (or come from) the cache."""
    options = options or BackendOptions()
    factory = BACKENDS.get(backend)
    cache = AnswerCache(cache_path)
    if factory is not None:
        return CachedClient(factory(model, options), cache, backend, model)
    if cache_path is None or not Path(cache_path).is_file():
        raise StarftError(
            f"--backend replay needs an existing answer cache, '{cache_path}' is none"
        )
    recorded = cache.backends_for(model)
    if options.replay_backend is not None:
        source = options.replay_backend
    elif len(recorded) == 1:
        source = recorded[0]
    elif not recorded:
        raise StarftError(
            f"replay: answer cache '{cache_path}' has no answers from model '{model}'"
        )
    else:
        raise StarftError(
            f"replay: answer cache '{cache_path}' has answers of model '{model}' from several "
            f"backends ({', '.join(recorded)}); choose one with --replay-backend"
        )
    return CachedClient(None, cache, source, model)

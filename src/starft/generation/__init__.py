"""Descriptor pools and concept banks from language models, as an explicit offline step.

Training only reads files; this package writes them. A language model is any
:class:`ChatClient` (``complete(messages, *, temperature, max_tokens, seed) -> str``); the shipped
backends (:data:`BACKENDS`: ``openai``, ``transformers``, ``replay``) come wrapped in an answer
cache by :func:`open_client`::

    from starft.generation import open_client, generate_pool, write_pool
    client = open_client("openai", "llama3", "pool.cache.jsonl",
                         BackendOptions(base_url="http://127.0.0.1:8000/v1"))
    write_pool("pool.json", generate_pool(client, concepts=["background"], per_concept=20))
"""

from __future__ import annotations

import importlib
from typing import Any

# Names -> the module defining them, imported on first use: the CLI builds its parsers from
# ``starft.generation.backends`` without paying for torch (``TargetText`` needs it).
_EXPORTS = {
    "AnswerCache": "cache",
    "BACKENDS": "backends",
    "BackendOptions": "backends",
    "CachedClient": "cache",
    "ChatClient": "client",
    "CleanOptions": "clean",
    "CleanResult": "clean",
    "GeneratedBank": "concepts",
    "GeneratedPool": "pools",
    "Message": "client",
    "PromptSet": "prompts",
    "Sampling": "client",
    "TargetText": "target",
    "cache_key": "cache",
    "clean_descriptors": "clean",
    "default_prompts": "prompts",
    "describe_pool": "pool_file",
    "generate_concept_bank": "concepts",
    "generate_pool": "pools",
    "load_prompts": "prompts",
    "open_client": "backends",
    "read_classnames": "classes",
    "read_pool_file": "pool_file",
    "request_record": "cache",
    "validate_pool_file": "pool_file",
    "write_concept_bank": "concepts",
    "write_pool": "pools",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"starft.generation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'starft.generation' has no attribute '{name}'")


__all__ = sorted(_EXPORTS)

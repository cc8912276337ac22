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

from starft.generation.backends import BACKENDS, BackendOptions, open_client
from starft.generation.cache import AnswerCache, CachedClient, cache_key, request_record
from starft.generation.classes import read_classnames
from starft.generation.clean import CleanOptions, CleanResult, clean_descriptors
from starft.generation.client import ChatClient, Message, Sampling
from starft.generation.concepts import GeneratedBank, generate_concept_bank, write_concept_bank
from starft.generation.pool_file import describe_pool, read_pool_file, validate_pool_file
from starft.generation.pools import GeneratedPool, generate_pool, write_pool
from starft.generation.prompts import PromptSet, default_prompts, load_prompts
from starft.generation.target import TargetText

__all__ = [
    "BACKENDS",
    "AnswerCache",
    "BackendOptions",
    "CachedClient",
    "ChatClient",
    "CleanOptions",
    "CleanResult",
    "GeneratedBank",
    "GeneratedPool",
    "Message",
    "PromptSet",
    "Sampling",
    "TargetText",
    "cache_key",
    "clean_descriptors",
    "default_prompts",
    "describe_pool",
    "generate_concept_bank",
    "generate_pool",
    "load_prompts",
    "open_client",
    "read_classnames",
    "read_pool_file",
    "request_record",
    "validate_pool_file",
    "write_concept_bank",
    "write_pool",
]

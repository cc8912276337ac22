"""Flags shared by ``starft pools generate`` and ``starft concepts generate``: the language model,
its sampling settings, the answer cache and the prompts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_lm_arguments(p: argparse.ArgumentParser, out_help: str) -> None:
    from starft.generation.backends import BACKENDS
    from starft.generation.openai_backend import DEFAULT_BASE_URL, DEFAULT_KEY_ENV

    lm = p.add_argument_group("language model")
    lm.add_argument("--backend", required=True, choices=BACKENDS.names())
    lm.add_argument(
        "--model",
        required=True,
        help="model name (openai: as the server names it; transformers: a local model folder; "
        "replay: the model whose answers were recorded)",
    )
    lm.add_argument("--base-url", default=DEFAULT_BASE_URL, help="openai: API root (…/v1)")
    lm.add_argument(
        "--api-key-env",
        default=DEFAULT_KEY_ENV,
        help=f"openai: environment variable holding the key (default {DEFAULT_KEY_ENV}; "
        "unset = no key, fine for local servers)",
    )
    lm.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per answer")
    lm.add_argument("--retries", type=int, default=4, help="openai: retries after HTTP 429/5xx")
    lm.add_argument("--device", default="cpu", help="transformers: torch device")
    lm.add_argument("--replay-backend", help="replay: backend that recorded the answers")
    lm.add_argument("--temperature", type=float, default=0.0)
    lm.add_argument("--max-tokens", type=int, default=512, help="per answer")
    lm.add_argument("--seed", type=int, default=0)
    lm.add_argument(
        "--cache",
        help="answer cache (JSONL); default: OUT with the suffix .cache.jsonl. Commit it to let "
        "others re-create the file with --backend replay",
    )
    lm.add_argument("--prompts", help="JSON file replacing any of the packaged prompts")
    lm.add_argument(
        "--domain", default="natural images", help="what the images are, as the prompts say it"
    )
    lm.add_argument("--forbid", default="", help="comma-separated words no entry may contain")
    p.add_argument("--out", required=True, help=out_help)


def cache_path(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    return Path(args.cache) if args.cache else out.with_name(out.stem + ".cache.jsonl")


def open_lm(args: argparse.Namespace) -> Any:
    from starft.generation import BackendOptions, open_client

    options = BackendOptions(
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        timeout_s=args.timeout,
        retries=args.retries,
        device=args.device,
        replay_backend=args.replay_backend,
    )
    return open_client(args.backend, args.model, cache_path(args), options)


def sampling(args: argparse.Namespace) -> Any:
    from starft.generation import Sampling

    return Sampling(args.temperature, args.max_tokens, args.seed)


def split_words(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]

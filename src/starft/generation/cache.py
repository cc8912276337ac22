"""A content-addressed, append-only cache of language-model answers (one JSONL line per call).

The key is a SHA-256 of (backend, model, messages, sampling settings, seed, sample index), so an
answer is reused exactly when the same question is asked of the same model the same way. Lines are
only ever appended: asking for more descriptors later adds calls and keeps every earlier answer,
and a committed cache file lets anyone re-create a pool with ``--backend replay`` without the model.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starft.errors import StarftError
from starft.generation.client import ChatClient, Message, Sampling

log = logging.getLogger(__name__)


def request_record(
    backend: str, model: str, messages: Sequence[Message], sampling: Sampling, sample: int
) -> dict[str, Any]:
    """The fields an answer is keyed by, in the form they are stored in the cache."""
    return {
        "backend": backend,
        "model": model,
        "messages": [dict(m) for m in messages],
        "temperature": float(sampling.temperature),
        "max_tokens": int(sampling.max_tokens),
        "seed": int(sampling.seed),
        "sample": int(sample),
    }


def cache_key(record: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request record (sorted keys, no spaces)."""
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    """The answers stored in one JSONL file (read once, appended to on every new answer).

    ``path=None`` keeps answers in memory only (a user's own client without a file).
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self._answers: dict[str, str] = {}
        self._records: list[dict[str, Any]] = []
        if self.path is not None and self.path.exists():
            self._read(self.path)

    def _read(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise StarftError(f"cannot read answer cache '{path}': {error}") from None
        lines = text.split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key, answer = entry["key"], entry["answer"]
                if not isinstance(key, str) or not isinstance(answer, str):
                    raise TypeError("key and answer must be strings")
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                if number == len(lines):
                    # An unterminated last line is a write cut short (a crash mid-append): the
                    # call it records is simply made again.
                    log.warning("%s: ignoring the incomplete last line", path)
                    continue
                raise StarftError(f"answer cache '{path}' line {number}: {error}") from None
            self._answers[key] = answer
            self._records.append(entry)

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> str | None:
        return self._answers.get(key)

    def backends_for(self, model: str) -> list[str]:
        """Backends that answered for ``model`` in this cache, in first-seen order."""
        seen = dict.fromkeys(r.get("backend") for r in self._records if r.get("model") == model)
        return [b for b in seen if isinstance(b, str)]

    def put(self, key: str, record: dict[str, Any], answer: str) -> None:
        self._answers[key] = answer
        date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        entry = {"key": key, **record, "answer": answer, "date": date}
        self._records.append(entry)
        if self.path is None:
            return
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write of a whole line, flushed to disk: an interrupted run loses at most the call
        # in flight, and every answer already paid for survives.
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


class CachedClient:
    """A :class:`ChatClient` behind an :class:`AnswerCache`; ``client=None`` replays only.

    ``backend`` and ``model`` name the answering model in the cache key (for replay: the backend
    that recorded the answers). ``complete`` takes an extra ``sample`` index so that repeated
    questions (more descriptors for the same concept) are separate cache entries.
    """

    def __init__(
        self, client: ChatClient | None, cache: AnswerCache, backend: str, model: str
    ) -> None:
        self.client = client
        self.cache = cache
        self.backend = backend
        self.model = model
        self.calls = 0  # answers fetched from the model (not the cache) in this session
        self.hits = 0

    @property
    def replay(self) -> bool:
        return self.client is None

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        seed: int,
        sample: int = 0,
    ) -> str:
        sampling = Sampling(temperature, max_tokens, seed)
        record = request_record(self.backend, self.model, messages, sampling, sample)
        key = cache_key(record)
        answer = self.cache.get(key)
        if answer is not None:
            self.hits += 1
            return answer
        if self.client is None:
            where = self.cache.path or "the in-memory cache"
            raise StarftError(
                f"replay: no cached answer in '{where}' for backend '{self.backend}', model "
                f"'{self.model}', sample {sample}, question {_excerpt(messages[-1]['content'])} "
                "(the prompts, sampling settings, seed or pool size differ from the recorded run)"
            )
        answer = self.client.complete(
            messages, temperature=sampling.temperature, max_tokens=sampling.max_tokens, seed=seed
        )
        if not isinstance(answer, str) or not answer.strip():
            raise StarftError(
                f"backend '{self.backend}' model '{self.model}' gave an empty answer to "
                f"{_excerpt(messages[-1]['content'])} (try a larger max_tokens or another model)"
            )
        self.calls += 1
        self.cache.put(key, record, answer)
        return answer


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")

"""An OpenAI-compatible chat-completions endpoint over HTTP, with the standard library only.

Works with the OpenAI API and with local servers that speak the same format (vLLM, llama.cpp
server, Ollama, LM Studio): ``POST {base_url}/chat/completions``. The key is read from an
environment variable (never from a flag, so it stays out of shell history and pool provenance);
without it no ``Authorization`` header is sent, which local servers accept.

HTTP 429 and 5xx are retried with exponential back-off (honouring ``Retry-After``); every other
failure — unreachable host, time-out, other HTTP errors, a body that is not chat-completions JSON,
an empty answer — is one :class:`StarftError` line naming the URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from starft.errors import StarftError
from starft.generation.client import Message

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 60.0


class OpenAIChatClient:
    """Chat completions from ``base_url`` for ``model``.

    Args:
        model: the model name the server expects.
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1`` for a local vLLM server.
        api_key_env: environment variable holding the key (optional for local servers).
        timeout_s: seconds to wait for one answer.
        retries: extra attempts after HTTP 429/5xx.
        backoff_s: first back-off; doubles per retry up to ``max_backoff_s``.
    """

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout_s: float = 120.0,
        retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise StarftError(f"--base-url must start with http:// or https://, got '{base_url}'")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise StarftError("timeout must be > 0, retries and back-off >= 0")
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)

    def _request(self, body: bytes) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def complete(
        self, messages: Sequence[Message], *, temperature: float, max_tokens: int, seed: int
    ) -> str:
        payload = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": float(temperature),
            "max_tokens": int(max_tokens),
            "seed": int(seed),
        }
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(self._request(body), timeout=self.timeout_s) as resp:
                    raw = resp.read()
                return self._answer(raw)
            except urllib.error.HTTPError as error:
                detail = _error_detail(error)
                if error.code in _RETRY_STATUS and attempt < self.retries:
                    wait = self._wait(attempt, error.headers.get("Retry-After"))
                    log.warning(
                        "%s: HTTP %d (%s); retry %d/%d in %.1fs",
                        *(self.url, error.code, detail, attempt + 1, self.retries, wait),
                    )
                    time.sleep(wait)
                    continue
                hint = ""
                if error.code in (401, 403):
                    hint = f" (is the key in ${self.api_key_env} right?)"
                elif error.code in _RETRY_STATUS:
                    hint = f" after {self.retries + 1} attempts"
                raise StarftError(f"{self.url}: HTTP {error.code} {detail}{hint}") from None
            except TimeoutError:
                raise self._timeout() from None
            except urllib.error.URLError as error:
                if isinstance(error.reason, TimeoutError):
                    raise self._timeout() from None
                raise StarftError(f"{self.url}: endpoint unreachable ({error.reason})") from None
            except (ConnectionError, OSError) as error:
                raise StarftError(f"{self.url}: connection failed ({error})") from None
        raise AssertionError("unreachable: the loop returns or raises")

    def _timeout(self) -> StarftError:
        return StarftError(
            f"{self.url}: no answer within {self.timeout_s:g} s (raise --timeout for slow models)"
        )

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        wait = min(self.backoff_s * (2**attempt), self.max_backoff_s)
        if retry_after:
            # An HTTP date instead of seconds: keep the exponential back-off.
            with contextlib.suppress(ValueError):
                wait = max(wait, min(float(retry_after), _MAX_RETRY_AFTER_S))
        return wait

    def _answer(self, raw: bytes) -> str:
        try:
            data: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise StarftError(
                f"{self.url}: the answer is not JSON (starts with {_snippet(raw)}); is --base-url "
                "an OpenAI-compatible API root such as http://host:8000/v1?"
            ) from None
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise StarftError(
                f"{self.url}: the answer is not a chat completion (no choices[0].message.content;"
                f" starts with {_snippet(raw)})"
            ) from None
        if content is None or not isinstance(content, str) or not content.strip():
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            hint = " (finish_reason 'length': raise --max-tokens)" if reason == "length" else ""
            raise StarftError(f"{self.url}: model '{self.model}' gave an empty answer{hint}")
        return content


def _snippet(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _error_detail(error: urllib.error.HTTPError) -> str:
    """The server's own message (OpenAI puts it in error.message), else the HTTP reason."""
    try:
        raw = error.read()
    except OSError:
        raw = b""
    try:
        message = json.loads(raw.decode("utf-8"))["error"]["message"]
        if isinstance(message, str) and message.strip():
            return " ".join(message.split())[:200]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        pass
    return str(error.reason or "")

"""A scripted language model and a real chat-completions HTTP server on 127.0.0.1 for tests.

``fake_answer`` answers the packaged prompts like a small, well-behaved model would (with the
untidiness real ones show: numbering, capitals, quotes, duplicates, a class name). The server
speaks the OpenAI chat-completions format and can be scripted to fail first (HTTP 429/500,
malformed bodies, empty answers, delays).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DESCRIPTORS = {
    "background": [
        ["1. On the beach", "2. In the snow.", "3. In the snow", "4. \u201cIn a dense forest\u201d",
         "5. On the grass", "6. near a circle"],
        ["- In front of a brick wall", "- Under the night sky", "- On THE beach!!",
         "- in the sky above the clouds"],
        ["- In front of a brick wall"],
    ],
    "resolution": [
        ["In low resolution", "Pixelated", "Out of focus", "In high definition"],
    ],
    "texture": [
        ["With a striped texture", "With a dotted pattern", "With a wavy texture", "{} on {}"],
        ["with a checkered pattern", "with a rough surface"],
    ],
}  # fmt: skip
CONCEPTS_ANSWER = "Background\nTexture\nResolution"
CLASS_CONCEPTS = {
    "circle": "Round outline: 5\nsmooth edge (3)\n- no corners - 4\nround outline: 2\nshading",
    "square": '{"four corners": 5, "straight edges": 4, "right angles": 0}',
}


def fake_answer(messages: list[dict[str, str]]) -> str:
    """The scripted model's answer to a conversation built from the packaged prompts."""
    first = next(m["content"] for m in messages if m["role"] == "user")
    rounds = sum(1 for m in messages if m["role"] == "assistant")
    if "spurious correlations" in first:
        return CONCEPTS_ANSWER
    concept = re.match(r"Spurious concept: ([^.]+)\.", first)
    if concept:
        batches = DESCRIPTORS.get(concept.group(1), [["a stray phrase"]])
        return "\n".join(batches[min(rounds, len(batches) - 1)])
    classname = re.search(r"identify a (\w+) in", first)
    if classname:
        return CLASS_CONCEPTS.get(classname.group(1), "I cannot help with that.")
    return "I cannot help with that."


class FakeClient:
    """The scripted model as a plain Python client (the ChatClient protocol)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def complete(self, messages, *, temperature, max_tokens, seed) -> str:
        self.calls.append({"messages": messages, "temperature": temperature, "seed": seed})
        return fake_answer(list(messages))


# A scripted reply: (status, body bytes, delay seconds); None = answer with fake_answer.
Reply = tuple[int, bytes, float] | None


def completion(content: str | None) -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
        }
    ).encode()  # fmt: skip


class FakeServer:
    """A chat-completions server on 127.0.0.1; ``script`` replies are used first, in order."""

    def __init__(self, script: list[Reply] | None = None, answer: Callable = fake_answer) -> None:
        self.script = list(script or [])
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length))
                outer.requests.append({"path": self.path, **payload})
                outer.headers.append(dict(self.headers))
                reply = outer.script.pop(0) if outer.script else None
                if reply is None:
                    status, body, delay = 200, completion(outer.answer(payload["messages"])), 0.0
                else:
                    status, body, delay = reply
                if delay:
                    threading.Event().wait(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (time-out test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":  # `python tests/_fake_lm.py 8080`: the scripted model for docs/pools.md
    import sys

    server = FakeServer()
    server.httpd.server_close()
    server.httpd = ThreadingHTTPServer(
        ("127.0.0.1", int(sys.argv[1])), server.httpd.RequestHandlerClass
    )
    print(f"scripted chat-completions server on {server.base_url}", flush=True)
    server.httpd.serve_forever()

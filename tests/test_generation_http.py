"""The openai backend against a real chat-completions HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket

import pytest

from _fake_lm import FakeServer, completion
from starft.errors import StarftError
from starft.generation import BackendOptions, generate_pool, open_client, write_pool
from starft.generation.openai_backend import OpenAIChatClient

MESSAGES = [{"role": "user", "content": "Spurious concept: texture. List 3"}]
FAST = {"backoff_s": 0.01, "timeout_s": 5.0}


def ask(client):
    return client.complete(MESSAGES, temperature=0.0, max_tokens=32, seed=3)


def test_request_format_and_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    with FakeServer() as server:
        client = OpenAIChatClient("tiny-lm", server.base_url, api_key_env="MY_KEY", **FAST)
        assert ask(client).startswith("With a striped texture")
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["model"] == "tiny-lm" and request["messages"] == MESSAGES
    assert (request["temperature"], request["max_tokens"], request["seed"]) == (0.0, 32, 3)
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_no_key_no_authorization_header(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer() as server:
        ask(OpenAIChatClient("m", server.base_url, **FAST))
    assert "Authorization" not in server.headers[0]


def test_429_then_success_is_retried():
    busy = (429, json.dumps({"error": {"message": "slow down"}}).encode(), 0.0)
    with FakeServer([busy, busy]) as server:
        assert ask(OpenAIChatClient("m", server.base_url, retries=2, **FAST))
    assert len(server.requests) == 3


def test_5xx_exhausting_retries_is_one_line():
    failing = [(500, b"oops", 0.0)] * 3
    expected = pytest.raises(StarftError, match=r"HTTP 500 .*after 3 attempts")
    with FakeServer(failing) as server, expected:
        ask(OpenAIChatClient("m", server.base_url, retries=2, **FAST))
    assert len(server.requests) == 3


def test_other_http_errors_are_not_retried():
    denied = (401, json.dumps({"error": {"message": "bad key"}}).encode(), 0.0)
    expected = pytest.raises(StarftError, match=r"HTTP 401 bad key \(is the key in \$OPENAI_API")
    with FakeServer([denied]) as server, expected:
        ask(OpenAIChatClient("m", server.base_url, **FAST))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b'{"object": "error"}', "not a chat completion"),
        (b'{"choices": []}', "not a chat completion"),
        (completion(""), "empty answer"),
        (completion(None), "empty answer"),
    ],
)
def test_malformed_and_empty_answers(body, message):
    with FakeServer([(200, body, 0.0)]) as server, pytest.raises(StarftError, match=message):
        ask(OpenAIChatClient("m", server.base_url, **FAST))


def test_time_out_is_one_line():
    with FakeServer([(200, completion("late"), 2.0)]) as server:
        client = OpenAIChatClient("m", server.base_url, timeout_s=0.3, retries=0)
        with pytest.raises(StarftError, match=r"no answer within 0.3 s"):
            ask(client)


def test_unreachable_endpoint_is_one_line():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OpenAIChatClient("m", f"http://127.0.0.1:{port}/v1", **FAST)
    with pytest.raises(StarftError, match="endpoint unreachable"):
        ask(client)
    with pytest.raises(StarftError, match="must start with http"):
        OpenAIChatClient("m", "127.0.0.1:8000/v1")


def test_a_failure_mid_generation_leaves_no_pool_file_and_keeps_paid_answers(tmp_path):
    out = tmp_path / "pool.json"
    out.write_text('["{} old."]')
    cache = tmp_path / "pool.cache.jsonl"
    # Stage 1 and the first concept answer, then the server fails for good.
    script = [None, None, *[(503, b"down", 0.0)] * 2]
    with FakeServer(script) as server:
        options = BackendOptions(base_url=server.base_url, retries=1, backoff_s=0.01)
        client = open_client("openai", "m", cache, options)
        with pytest.raises(StarftError, match="HTTP 503"):
            write_pool(out, generate_pool(client, per_concept=3, per_call=3))
    assert out.read_text() == '["{} old."]'  # the old file is untouched
    assert len(cache.read_text().splitlines()) == 2  # both answers survive for the next run
    assert not list(tmp_path.glob(".pool.json.*"))

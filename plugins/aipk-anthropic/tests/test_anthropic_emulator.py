"""The emulator's Anthropic protocol speaks the real wire format: checked over HTTP with httpx,
and decoded by this plugin exactly as the captured fixtures are."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

import aipk
from aipk import Credential, Message, Secret
from aipk.errors import AuthenticationError, OverloadedError, StreamError
from aipk_anthropic import ANTHROPIC
from aipk_anthropic import plugin as anthropic_plugin
from aipk_testkit.emulator import Emulator, Fault, Reply, ToolCallSpec
from aipk_testkit.emulator._anthropic import rfc3339
from aipk_testkit.fixtures import make_engine

KEY = "sk-ant-emulator-test"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01",
           "content-type": "application/json"}


def _post(emu: Emulator, body: dict[str, Any], headers: dict[str, str] | None = None) -> (
        httpx.Response):
    return httpx.post(emu.url("anthropic") + "/v1/messages", json=body,
                      headers=HEADERS if headers is None else headers, timeout=5)


def _chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hello there"}], **extra}
    if stream:
        body["stream"] = True
    return body


def _events(raw: str) -> list[tuple[str, str]]:
    out = []
    for block in raw.split("\n\n"):
        lines = block.split("\n")
        if len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "):
            out.append((lines[0][7:], lines[1][6:]))
        else:
            assert block == "", block
    return out


def test_stream_event_sequence_and_framing(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text="Bonjour!", chunk_size=3, usage=(11, 4),
                                tool_calls=[ToolCallSpec(name="f", arguments='{"a": 1}',
                                                         id="toolu_x")]))
    r = _post(aipk_emulator, _chat(stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["request-id"].startswith("req_")
    events = _events(r.text)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
        "message_stop"]
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == name for (name, _), d in zip(events, data, strict=True))
    assert any(d.endswith(" }") for _, d in events)  # the live API's padding
    assert data[0]["message"]["usage"]["input_tokens"] == 11
    assert "".join(d["delta"]["text"] for d in data[3:6]) == "Bonjour!"
    assert data[7]["content_block"] == {"type": "tool_use", "id": "toolu_x", "name": "f",
                                        "input": {}}
    assert [d["delta"]["partial_json"] for d in data[8:12]] == ["", '{"a', '": ', '1}']
    assert data[13]["delta"]["stop_reason"] == "tool_use"
    assert data[13]["usage"]["output_tokens"] == 4


def test_message_body(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text="Hi", finish_reason="length", usage=(5, 2)))
    body = _post(aipk_emulator, _chat()).json()
    assert body["type"] == "message" and body["id"].startswith("msg_01")
    assert body["content"] == [{"type": "text", "text": "Hi"}]
    assert body["stop_reason"] == "max_tokens"
    assert (body["usage"]["input_tokens"], body["usage"]["output_tokens"]) == (5, 2)
    echo = _post(aipk_emulator, _chat()).json()
    assert echo["content"][0]["text"] == "echo: Hello there"


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]},
     'first message must use the "user" role'),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
     "messages.0.role"),
])
def test_requests_the_api_rejects(aipk_emulator: Emulator, body: dict[str, Any],
                                  message: str) -> None:
    r = _post(aipk_emulator, body)
    assert r.status_code == 400
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]
    no_version = _post(aipk_emulator, _chat(), {"x-api-key": KEY})
    assert "anthropic-version" in no_version.json()["error"]["message"]


def test_auth_x_api_key_and_oauth_bearer(aipk_emulator: Emulator) -> None:
    aipk_emulator.require_api_key(KEY)
    assert _post(aipk_emulator, _chat()).status_code == 200
    missing = _post(aipk_emulator, _chat(), {"anthropic-version": "2023-06-01"})
    assert missing.status_code == 401
    assert missing.json()["error"] == {"type": "authentication_error",
                                       "message": "x-api-key header is required"}
    wrong = _post(aipk_emulator, _chat(), {**HEADERS, "x-api-key": "nope"})
    assert wrong.json()["error"]["message"] == "invalid x-api-key"
    bearer = {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    assert _post(aipk_emulator, _chat(), bearer).status_code == 401  # no oauth beta flag
    assert _post(aipk_emulator, _chat(), {**bearer, "anthropic-beta": "oauth-2025-04-20"}
                 ).status_code == 200


def test_oauth_through_the_engine(aipk_emulator: Emulator) -> None:
    """A Bearer token with the beta flag, and the Claude Code line, over real HTTP."""
    aipk_emulator.require_api_key(KEY)
    provider = aipk.Provider(spec=ANTHROPIC, base_url=aipk_emulator.url("anthropic"),
                             options={"claude_code": True})
    engine = make_engine(provider, {"anthropic": anthropic_plugin},
                         credential=Credential(kind="oauth", secret=Secret(KEY)))
    request = aipk.ChatRequest(model="claude-sonnet-4-5", messages=[Message.user("hi")])
    signed, body = engine.build(request, stream=False)
    r = httpx.post(signed.url, content=body, headers=dict(signed.headers), timeout=5)
    assert r.status_code == 200
    reply = engine.chat_response(request, r.content, r.headers, None)
    assert reply.text == "echo: hi"
    sent = aipk_emulator.requests[-1].json()
    assert sent["system"][0]["text"].startswith("You are Claude Code")


def test_errors_in_anthropic_shape(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Fault.status(529), Fault.status(429, retry_after=2))
    overloaded = _post(aipk_emulator, _chat())
    assert overloaded.status_code == 529
    assert overloaded.json() == {"type": "error", "error": {"type": "overloaded_error",
                                                            "message": "Overloaded"}}
    limited = _post(aipk_emulator, _chat())
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert limited.headers["retry-after"] == "2"
    with aipk.Client("anthropic", base_url=aipk_emulator.url("anthropic"), api_key=KEY,
                     max_retries=0) as client:
        aipk_emulator.enqueue(Fault.status(529))
        with pytest.raises(OverloadedError) as info:
            client.chat(model="claude-sonnet-4-5", messages=[Message.user("x")])
        assert info.value.request_id is not None and info.value.retryable
        aipk_emulator.require_api_key("other")
        with pytest.raises(AuthenticationError, match="invalid x-api-key"):
            client.chat(model="claude-sonnet-4-5", messages=[Message.user("x")])


def test_in_band_error_event(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Fault.inband_error(message="Overloaded", code="overloaded",
                                             after_events=2))
    events = _events(_post(aipk_emulator, _chat(stream=True)).text)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "error"]
    assert json.loads(events[-1][1]) == {
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    # after text deltas: a stream that delivered events raises (one that had not is retried)
    aipk_emulator.enqueue(Fault.inband_error(message="Overloaded", code="overloaded",
                                             after_events=6))
    with aipk.Client("anthropic", base_url=aipk_emulator.url("anthropic"), api_key=KEY) as c, \
            pytest.raises(StreamError) as info:
        list(c.stream(model="claude-sonnet-4-5", messages=[Message.user("x")]))
    assert info.value.code == "overloaded_error" and info.value.retryable


def test_rate_limit_headers_are_rfc3339(aipk_emulator: Emulator) -> None:
    aipk_emulator.set_rate_limit(requests=10, tokens=5000, window=60.0)
    before = time.time()
    r = _post(aipk_emulator, _chat())
    assert r.headers["anthropic-ratelimit-requests-limit"] == "10"
    assert r.headers["anthropic-ratelimit-requests-remaining"] == "9"
    assert r.headers["anthropic-ratelimit-tokens-limit"] == "5000"
    reset = r.headers["anthropic-ratelimit-requests-reset"]
    parsed = datetime.strptime(reset, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert before + 59 <= parsed <= time.time() + 61
    assert rfc3339(0.2) == "1970-01-01T00:00:01Z"


def test_models_listing(aipk_emulator: Emulator) -> None:
    listing = httpx.get(aipk_emulator.url("anthropic") + "/v1/models", headers=HEADERS).json()
    assert listing["has_more"] is False
    assert {m["type"] for m in listing["data"]} == {"model"}
    ids = [m["id"] for m in listing["data"]]
    one = httpx.get(aipk_emulator.url("anthropic") + f"/v1/models/{ids[0]}",
                    headers=HEADERS).json()
    assert one["id"] == ids[0]
    missing = httpx.get(aipk_emulator.url("anthropic") + "/v1/models/nope", headers=HEADERS)
    assert missing.status_code == 404
    assert missing.json()["error"] == {"type": "not_found_error", "message": "model: nope"}
    with aipk.Client("anthropic", base_url=aipk_emulator.url("anthropic"), api_key=KEY) as c:
        models = c.models()
    assert [m.id for m in models] == ids
    assert all(m.created == 1759104000 for m in models)

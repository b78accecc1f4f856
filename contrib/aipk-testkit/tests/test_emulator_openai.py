"""The OpenAI protocol over real sockets: replies, streams, models, errors, records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aipk_testkit.emulator import Emulator, Reply, ToolCallSpec
from aipk_testkit.emulator._openai import go_duration

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "openai"


def test_non_stream_reply_is_a_chat_completion(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(text="Bonjour!", usage=(11, 3)))
    r = http.chat()
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.body)
    assert r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini" and isinstance(body["created"], int)
    assert body["system_fingerprint"].startswith("fp_")
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Bonjour!", "refusal": None,
                                 "annotations": []}
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert body["usage"]["prompt_tokens"] == 11 and body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == 14


def test_default_reply_echoes_the_last_user_message(emu: Emulator, http: Any) -> None:
    r = http.chat(messages=[{"role": "user", "content": "first"},
                            {"role": "assistant", "content": "x"},
                            {"role": "user", "content": [{"type": "text", "text": "second"}]}])
    assert r.json()["choices"][0]["message"]["content"] == "echo: second"
    assert r.json()["usage"]["prompt_tokens"] > 0


def test_queue_is_fifo_and_model_headers_override(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(text="one", model="gpt-4o-2024-08-06", headers={"x-extra": "1"}),
                Reply(text="two", finish_reason="length"))
    first, second, third = http.chat(), http.chat(), http.chat()
    assert first.json()["model"] == "gpt-4o-2024-08-06" and first.headers["x-extra"] == "1"
    assert second.json()["choices"][0]["message"]["content"] == "two"
    assert second.json()["choices"][0]["finish_reason"] == "length"
    assert third.json()["choices"][0]["message"]["content"] == "echo: Hello there"


def test_stream_text_deltas_concatenate_and_end_with_done(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(text="A fairly long streamed answer.", chunk_size=3))
    r = http.chat(stream=True)
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["transfer-encoding"] == "chunked"
    events = r.events()
    assert events[-1] == "[DONE]"
    chunks = r.chunks()
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "",
                                                "refusal": None}
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert "".join(deltas) == "A fairly long streamed answer." and len(deltas) == 10
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                        "finish_reason": "stop"}
    assert len({c["id"] for c in chunks}) == 1
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and "usage" not in c
        assert c["service_tier"] == "default" and c["system_fingerprint"].startswith("fp_")
        assert "obfuscation" in c


def test_include_usage_adds_a_usage_chunk_and_null_usage(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(text="abcdefgh", chunk_size=4, usage=(5, 9)))
    chunks = http.chat(stream=True, include_usage=True).chunks()
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 5
    assert chunks[-1]["usage"]["completion_tokens"] == 9
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_obfuscation_can_be_turned_off(emu: Emulator, http: Any) -> None:
    chunks = http.chat(stream=True, stream_options={"include_obfuscation": False}).chunks()
    assert chunks and all("obfuscation" not in c for c in chunks)


def test_stream_parallel_tool_calls_fragment_per_index(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(tool_calls=[
        ToolCallSpec(name="get_weather", arguments='{"city": "Paris, France"}'),
        ToolCallSpec(name="get_stock", arguments={"ticker": "NASDAQ"}, id="call_given")]))
    chunks = http.chat(stream=True, include_usage=True).chunks()
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    assert first["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    args: dict[int, str] = {}
    heads: dict[int, list[dict[str, Any]]] = {}
    for c in chunks:
        for call in (c["choices"][0]["delta"].get("tool_calls", []) if c["choices"] else []):
            args[call["index"]] = args.get(call["index"], "") + call["function"]["arguments"]
            if "id" in call:
                heads.setdefault(call["index"], []).append(call)
    assert json.loads(args[0]) == {"city": "Paris, France"}
    assert json.loads(args[1]) == {"ticker": "NASDAQ"}
    assert [len(v) for v in heads.values()] == [1, 1]  # id/type/name only once per index
    assert heads[0][0]["id"].startswith("call_") and heads[1][0]["id"] == "call_given"
    assert heads[1][0]["type"] == "function"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_non_stream_tool_calls(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_weather",
                                               arguments='{"city":"Paris"}')]))
    message = http.chat().json()["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    call = message["message"]["tool_calls"][0]
    assert message["message"]["content"] is None
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}


def test_refusal_streams_as_delta_refusal(emu: Emulator, http: Any) -> None:
    emu.enqueue(Reply(refusal="I can't help with that."), Reply(refusal="No."))
    chunks = http.chat(stream=True).chunks()
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None,
                                                "refusal": ""}
    text = "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks)
    assert text == "I can't help with that."
    message = http.chat().json()["choices"][0]["message"]
    assert message["refusal"] == "No." and message["content"] is None


def test_stream_shape_matches_a_real_capture(emu: Emulator, http: Any) -> None:
    capture = FIXTURES / "pai-chat-stream-tool-call.json"
    if not capture.exists():
        pytest.skip("shared fixtures not available")
    real = [json.loads(line[6:]) for line in
            json.loads(capture.read_text())["response"]["body"].splitlines()
            if line.startswith("data: {")]
    emu.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_capital",
                                               arguments='{"country":"UK"}')]))
    ours = http.chat(stream=True, include_usage=True).chunks()
    for mine, theirs in ((ours[0], real[0]), (ours[1], real[1]), (ours[-2], real[-2]),
                         (ours[-1], real[-1])):
        assert list(mine) == list(theirs)  # same keys, same order
        if mine["choices"]:
            assert list(mine["choices"][0]) == list(theirs["choices"][0])
            assert list(mine["choices"][0]["delta"]) == list(theirs["choices"][0]["delta"])
    assert set(ours[-1]["usage"]) == set(real[-1]["usage"])


def test_models_listing_and_lookup(emu: Emulator, http: Any) -> None:
    listing = http.request("GET", "/v1/models").json()
    assert listing["object"] == "list"
    ids = [m["id"] for m in listing["data"]]
    assert "gpt-4o-mini" in ids
    assert all(m["object"] == "model" and m["owned_by"] for m in listing["data"])
    one = http.request("GET", "/v1/models/gpt-4o")
    assert one.status == 200 and one.json()["id"] == "gpt-4o"
    missing = http.request("GET", "/v1/models/nope")
    assert missing.status == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_models_are_configurable() -> None:
    with Emulator(models=["m-1", "m-2"]) as emu:
        import http.client

        c = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        c.request("GET", "/v1/models?limit=2")
        data = json.loads(c.getresponse().read())
        c.close()
        assert [m["id"] for m in data["data"]] == ["m-1", "m-2"]
        assert emu.requests[0].query == "limit=2" and emu.requests[0].path == "/v1/models"


def test_unknown_path_is_404_with_an_error_body(emu: Emulator, http: Any) -> None:
    for path in ("/v1/nope", "/elsewhere"):
        r = http.request("GET", path)
        assert r.status == 404 and r.reason == "Not Found"
        assert r.json()["error"]["message"] == f"Invalid URL (GET {path})"
        assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("body", "param"), [
    (b"{not json", None),
    (b"[1, 2]", None),
    (json.dumps({"model": "m"}).encode(), "messages"),
    (json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}],
                 "stream_options": {"include_usage": True}}).encode(), "stream_options"),
])
def test_bad_requests_are_400_and_do_not_consume_the_queue(emu: Emulator, http: Any,
                                                           body: bytes,
                                                           param: str | None) -> None:
    emu.enqueue(Reply(text="kept"))
    r = http.request("POST", "/v1/chat/completions", body)
    assert r.status == 400 and r.reason == "Bad Request"
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}
    assert http.chat().json()["choices"][0]["message"]["content"] == "kept"


def test_requests_are_recorded_in_order(emu: Emulator, http: Any) -> None:
    http.chat(headers={"X-Trace": "t-1", "Authorization": "Bearer sk-abc"}, temperature=0)
    http.request("GET", "/v1/models?after=x")
    first, second = emu.requests
    assert (first.method, first.path, first.query) == ("POST", "/v1/chat/completions", "")
    assert first.headers["x-trace"] == "t-1" and first.headers["authorization"] == "Bearer sk-abc"
    assert first.json()["temperature"] == 0 and first.json()["messages"][0]["role"] == "user"
    assert (second.method, second.path, second.query, second.body) == (
        "GET", "/v1/models", "after=x", b"")
    emu.requests.clear()
    assert emu.requests == []


def test_url_and_base_url(emu: Emulator) -> None:
    assert emu.base_url == f"http://127.0.0.1:{emu.port}" and emu.port > 0
    assert emu.url("openai") == emu.base_url + "/v1"
    with pytest.raises(ValueError, match="unknown protocol"):
        emu.url("nope")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.012, "12ms"), (1, "1s"), (1.5, "1.5s"), (60, "1m0s"), (86.4, "1m26.4s"),
    (360, "6m0s"), (3723, "1h2m3s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text

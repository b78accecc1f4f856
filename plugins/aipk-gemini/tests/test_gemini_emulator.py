"""The emulator's Gemini protocol on the wire (raw HTTP), checked against real captures, and
the plugin end to end through it, including the Code Assist (OAuth + project) endpoint."""

from __future__ import annotations

import http.client as httpclient
import json
from typing import Any

import pytest

import aipk
import aipk_gemini.plugin
from aipk import ChatRequest, Credential, Message, Provider, Secret, TextDelta
from aipk.errors import AuthenticationError, RateLimitError, StreamError
from aipk_gemini import DAILY_QUOTA_CODE, GEMINI, wire
from aipk_testkit.emulator import Emulator, Fault, Reply, ToolCallSpec, registered
from aipk_testkit.emulator._gemini import GeminiHandler
from aipk_testkit.fixtures import Captures, find_fixtures, make_engine

CAPTURES = Captures(find_fixtures(__file__) / "google")
KEY = "AIza-emulated-key"
BODY = {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}


class Raw:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[dict[str, Any]]:
        assert self.body.endswith(b"\r\n\r\n")
        return [json.loads(block[6:]) for block in self.body.split(b"\r\n\r\n") if block]


def _call(emu: Emulator, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None) -> Raw:
    conn = httpclient.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, "/gemini" + path, body=data,
                     headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return Raw(response.status, {k.lower(): v for k, v in response.getheaders()},
                   response.read())
    finally:
        conn.close()


def _generate(emu: Emulator, stream: bool = False, headers: dict[str, str] | None = None) -> Raw:
    path = ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse" if stream
            else "/v1beta/models/gemini-2.5-flash:generateContent")
    return _call(emu, "POST", path, BODY, headers)


# -- wire shape ------------------------------------------------------------------------------


def test_generate_content_body(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text="Bonjour!", usage=(11, 3)))
    r = _generate(aipk_emulator)
    assert r.status == 200 and r.headers["content-type"] == "application/json; charset=UTF-8"
    assert not any(k.startswith("x-ratelimit") for k in r.headers)
    body = r.json()
    assert body["candidates"] == [{"content": {"parts": [{"text": "Bonjour!"}],
                                               "role": "model"},
                                   "finishReason": "STOP", "index": 0}]
    assert body["usageMetadata"]["promptTokenCount"] == 11
    assert body["usageMetadata"]["candidatesTokenCount"] == 3
    assert body["usageMetadata"]["totalTokenCount"] == 14
    assert body["modelVersion"] == "gemini-2.5-flash" and body["responseId"]


def test_stream_is_crlf_framed_with_running_usage_and_no_terminator(
        aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text="abcdefghij", chunk_size=4, usage=(5, 9)))
    r = _generate(aipk_emulator, stream=True)
    assert r.headers["content-type"] == "text/event-stream"
    assert b"[DONE]" not in r.body and b"\n\n" not in r.body.replace(b"\r\n", b"")
    events = r.events()
    texts = [e["candidates"][0]["content"]["parts"][0]["text"] for e in events]
    assert texts == ["abcd", "efgh", "ij"]
    assert [e["candidates"][0].get("finishReason") for e in events] == [None, None, "STOP"]
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == sorted(counts) and counts[-1] == 9
    assert all(e["usageMetadata"]["promptTokenCount"] == 5 for e in events)
    assert len({e["responseId"] for e in events}) == 1


def test_stream_event_shape_matches_a_real_capture(aipk_emulator: Emulator) -> None:
    real = [json.loads(block[6:]) for block in
            CAPTURES.raw("pai-stream-usage-mid-stream.sse").split(b"\r\n\r\n")
            if block]
    aipk_emulator.enqueue(Reply(text="1\n2\n3\n4\n5\n6", chunk_size=4))
    mine = _generate(aipk_emulator, stream=True).events()
    assert set(mine[0]) == set(real[0])
    assert set(mine[-1]["candidates"][0]) == set(real[-1]["candidates"][0])
    assert set(mine[0]["usageMetadata"]) <= set(real[0]["usageMetadata"])
    assert mine[0]["candidates"][0]["content"]["role"] == "model"


def test_function_calls_arrive_whole(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text="Sure.", tool_calls=[
        ToolCallSpec(name="get_weather", arguments='{"city": "Paris"}'),
        ToolCallSpec(name="get_time", arguments={"tz": "CET"}, id="given-id")]))
    events = _generate(aipk_emulator, stream=True).events()
    parts = [e["candidates"][0]["content"]["parts"][0] for e in events]
    assert parts[-2:] == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                         {"functionCall": {"name": "get_time", "args": {"tz": "CET"},
                                           "id": "given-id"}}]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    aipk_emulator.enqueue(Reply(tool_calls=[ToolCallSpec(name="f")]))
    body = _generate(aipk_emulator).json()
    assert body["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "f",
                                                                          "args": {}}}]


def test_finish_reasons_and_refusal(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text="cut", finish_reason="length"),
                          Reply(text="x", finish_reason="RECITATION"),
                          Reply(refusal="no"))
    assert _generate(aipk_emulator).json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert _generate(aipk_emulator).json()["candidates"][0]["finishReason"] == "RECITATION"
    blocked = _generate(aipk_emulator).json()["candidates"][0]
    assert blocked["finishReason"] == "SAFETY" and "content" not in blocked


def test_json_array_stream_without_alt_sse(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Reply(text="abcdef", chunk_size=3))
    r = _call(aipk_emulator, "POST",
              "/v1beta/models/gemini-2.5-flash:streamGenerateContent", BODY)
    chunks = r.json()
    assert isinstance(chunks, list) and len(chunks) == 2
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_default_reply_echoes_and_version_segment_is_optional(aipk_emulator: Emulator) -> None:
    r = _call(aipk_emulator, "POST", "/models/gemini-2.5-flash:generateContent", BODY)
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "echo: Hello there"
    assert aipk_emulator.requests[-1].path == "/gemini/models/gemini-2.5-flash:generateContent"


def test_models(aipk_emulator: Emulator) -> None:
    listing = _call(aipk_emulator, "GET", "/v1beta/models").json()["models"]
    assert [m["name"] for m in listing][:2] == ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]
    assert all(m["inputTokenLimit"] > 0 for m in listing)
    one = _call(aipk_emulator, "GET", "/v1beta/models/gemini-2.5-pro").json()
    assert one["name"] == "models/gemini-2.5-pro"
    missing = _call(aipk_emulator, "GET", "/v1beta/models/nope")
    assert missing.status == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_bad_requests(aipk_emulator: Emulator) -> None:
    r = _call(aipk_emulator, "POST", "/v1beta/models/m:generateContent", {"contents": []})
    assert r.status == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "contents is not specified" in r.json()["error"]["message"]
    unknown = _call(aipk_emulator, "POST", "/v1beta/nothing", BODY)
    assert unknown.status == 404 and unknown.json()["error"]["code"] == 404


def test_auth(aipk_emulator: Emulator) -> None:
    aipk_emulator.require_api_key(KEY)
    assert _generate(aipk_emulator, headers={"x-goog-api-key": KEY}).status == 200
    assert _call(aipk_emulator, "POST", f"/v1beta/models/m:generateContent?key={KEY}",
                 BODY).status == 200
    missing = _generate(aipk_emulator)
    assert missing.status == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    wrong = _generate(aipk_emulator, headers={"x-goog-api-key": "AIza-wrong"})
    assert wrong.status == 400
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    bad_token = _generate(aipk_emulator, headers={"authorization": "Bearer nope"})
    assert bad_token.status == 401 and bad_token.json()["error"]["status"] == "UNAUTHENTICATED"


def test_429_has_quota_details_retry_after_header_and_no_rate_limit_headers(
        aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Fault.status(429, retry_after=2.5))
    r = _generate(aipk_emulator)
    assert r.status == 429 and r.headers["retry-after"] == "2.5"
    error = r.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["violations"][0]["quotaId"] == (
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    aipk_emulator.set_rate_limit(requests=1, tokens=1000)
    assert _generate(aipk_emulator).status == 200
    limited = _generate(aipk_emulator)
    assert limited.status == 429 and 0 < int(limited.headers["retry-after"]) <= 60
    assert not any(k.startswith("x-ratelimit") for k in limited.headers)


def test_rendered_retry_info_is_what_the_plugin_reads() -> None:
    handler = GeminiHandler()
    assert registered()["gemini"] is GeminiHandler
    provider = Provider(spec=GEMINI, base_url="http://x")
    for seconds, text in [(2.5, "2.5s"), (34.0, "34s"), (0.25, "0.25s")]:
        rendered = handler.render_error(429, retry_after=seconds)
        body = json.loads(rendered.body)
        assert body["error"]["details"][-1] == {
            "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": text}
        error = wire.map_error(provider, 429, {}, body, None, 1_700_000_000.0)
        assert isinstance(error, RateLimitError) and error.retry_after == seconds
    daily = json.loads(handler.render_error(429, error_type="daily", retry_after=9).body)
    error = wire.map_error(provider, 429, {}, daily, None, 1_700_000_000.0)
    assert error.code == DAILY_QUOTA_CODE and not error.retryable  # type: ignore[attr-defined]
    assert "details" not in json.loads(handler.render_error(500).body)["error"]


def test_inband_error_event(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Fault.inband_error(message="Overloaded", code="overloaded",
                                             after_events=1))
    events = _generate(aipk_emulator, stream=True).events()
    assert events[-1] == {"error": {"code": 503, "message": "Overloaded",
                                    "status": "UNAVAILABLE"}}


# -- the plugin end to end -------------------------------------------------------------------


def test_client_round_trip_with_tools(aipk_emulator: Emulator) -> None:
    aipk_emulator.require_api_key(KEY)
    aipk_emulator.enqueue(Reply(tool_calls=[ToolCallSpec(name="get_weather",
                                                         arguments={"city": "Oslo"})]),
                          Reply(text="It is cold."))
    tool = aipk.Tool(name="get_weather", parameters={
        "type": "object", "properties": {"city": {"type": "string"}},
        "additionalProperties": False})
    with aipk.Client("gemini", base_url=aipk_emulator.url("gemini"), api_key=KEY) as client:
        first = client.chat(model="gemini-2.5-flash", messages=[Message.user("Weather?")],
                            tools=[tool])
        assert first.tool_calls[0].id == "call_0"
        second = client.chat(model="gemini-2.5-flash", tools=[tool], messages=[
            Message.user("Weather?"), first.message, Message.tool("call_0", '{"temp": -3}')])
        assert second.text == "It is cold."
        models = client.models()
    sent = aipk_emulator.requests[1]
    assert sent.headers["x-goog-api-key"] == KEY and KEY not in sent.query
    assert sent.json()["contents"][-1] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp": -3}}}]}
    assert sent.json()["tools"][0]["functionDeclarations"][0]["parameters"] == {
        "type": "object", "properties": {"city": {"type": "string"}}}
    assert [m.id for m in models][:1] == ["gemini-2.5-flash"]
    assert models[0].context_window == 1048576


def test_client_wrong_key_is_an_authentication_error(aipk_emulator: Emulator) -> None:
    aipk_emulator.require_api_key(KEY)
    with aipk.Client("gemini", base_url=aipk_emulator.url("gemini"), api_key="AIza-bad") as c, \
            pytest.raises(AuthenticationError) as info:
        c.chat(model="m", messages=[Message.user("x")])
    assert info.value.status == 400 and "AIza-bad" not in str(info.value)


def test_client_inband_error_mid_stream(aipk_emulator: Emulator) -> None:
    aipk_emulator.enqueue(Fault.inband_error(message="quota", code="RESOURCE_EXHAUSTED",
                                             after_events=2))
    with aipk.Client("gemini", base_url=aipk_emulator.url("gemini"), api_key=KEY) as client:
        stream = client.stream(model="m", messages=[Message.user("x")])
        seen: list[str] = []
        with pytest.raises(StreamError) as info:
            seen.extend(e.text for e in stream if isinstance(e, TextDelta))
    assert len(seen) == 2 and info.value.code == "RESOURCE_EXHAUSTED" and info.value.retryable


def _send(emu: Emulator, http: aipk.HttpRequest, body: bytes | None) -> Raw:
    base = emu.base_url
    assert http.url.startswith(base)
    conn = httpclient.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        conn.request(http.method, http.url[len(base):], body=body, headers=dict(http.headers))
        response = conn.getresponse()
        return Raw(response.status, {k.lower(): v for k, v in response.getheaders()},
                   response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("stream", [False, True])
def test_code_assist_endpoint_end_to_end(aipk_emulator: Emulator, stream: bool) -> None:
    token = "ya29.emulated"
    aipk_emulator.require_api_key(token)
    aipk_emulator.enqueue(Reply(text="via code assist", chunk_size=5, usage=(3, 4)))
    provider = Provider(spec=GEMINI, base_url=aipk_emulator.url("gemini"), options={
        **GEMINI.options, "project_id": "proj-1",
        "cloudcode_base_url": aipk_emulator.url("gemini") + "/v1internal"})
    engine = make_engine(provider, {"gemini": aipk_gemini.plugin},
                         credential=Credential(kind="oauth", secret=Secret(token), id="oauth"))
    request = ChatRequest(model="gemini-2.5-pro", messages=[Message.user("hi")])
    http, body = engine.build(request, stream)
    raw = _send(aipk_emulator, http, body)
    assert raw.status == 200
    sent = aipk_emulator.requests[-1]
    assert sent.path.endswith("/v1internal:streamGenerateContent" if stream
                              else "/v1internal:generateContent")
    assert sent.json()["project"] == "proj-1" and sent.json()["model"] == "gemini-2.5-pro"
    if stream:
        assert all(set(e) == {"response"} for e in raw.events())
        session = engine.open_stream(request, raw.headers, None)
        session.feed(raw.body)
        session.finish()
        response = session.response()
    else:
        assert set(raw.json()) == {"response"}
        response = engine.chat_response(request, raw.body, raw.headers, None)
    assert response.text == "via code assist"
    assert response.usage is not None and response.usage.output_tokens == 4


def test_client_streams_a_json_array_over_http(aipk_emulator: Emulator) -> None:
    """With ``stream_framing="json-array"`` the client asks without ``alt=sse`` and reads the
    array element by element, one HTTP chunk each; a cut before ``]`` is an
    IncompleteStreamError."""
    aipk_emulator.enqueue(Reply(text="abcdefgh", chunk_size=3, usage=(4, 2)))
    with aipk.Client("gemini", base_url=aipk_emulator.url("gemini"), api_key=KEY,
                     stream_framing="json-array") as client:
        with client.stream(model="gemini-2.5-flash", messages=[Message.user("hi")]) as stream:
            texts = [e.text for e in stream if isinstance(e, TextDelta)]
        assert texts == ["abc", "def", "gh"]
        assert stream.response.finish_reason is aipk.FinishReason.STOP
        sent = aipk_emulator.requests[-1]
        assert sent.path.endswith(":streamGenerateContent") and "alt=sse" not in sent.query
        aipk_emulator.enqueue(Fault.truncate(after_events=2))
        with pytest.raises(aipk.IncompleteStreamError, match="before its terminator") as cut:
            list(client.stream(model="gemini-2.5-flash", messages=[Message.user("hi")]))
        assert cut.value.partial.text  # what arrived before the cut is kept

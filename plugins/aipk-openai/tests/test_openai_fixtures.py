"""Every captured OpenAI fixture in ``tests/fixtures/openai/`` decoded by the plugin, with the
expected values written out by hand from the fixture (not computed by the code under test).

A meta-test fails when a fixture file is added without an expectation here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk_openai.plugin
from aipk import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    FinishReason,
    Message,
    Provider,
    RefusalDelta,
    StreamAccumulator,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from aipk._core import Engine
from aipk.errors import BadRequestError, NotFoundError, ResponseError
from aipk.sse import SSEDecoder
from aipk_openai import OPENAI, wire
from aipk_testkit.fixtures import (
    Captures,
    decode_sse,
    find_fixtures,
    make_engine,
    make_provider,
    manifest_names,
    replay_stream,
    split_at,
)

FIXTURES = find_fixtures(__file__)
OPENAI_DIR = FIXTURES / "openai"
CAPTURES = Captures(OPENAI_DIR)
NOW = 1_700_000_000.0
REQUEST = ChatRequest(model="gpt-4o", messages=[Message.user("hi")])


# -- helpers ---------------------------------------------------------------------------------


def _provider() -> Provider:
    return make_provider(OPENAI)


def _engine() -> Engine:
    return make_engine(OPENAI, {"openai": aipk_openai.plugin}, clock=lambda: NOW)


def _manual_decode(pieces: Sequence[bytes]) -> tuple[list[StreamEvent], StreamAccumulator]:
    """SSEDecoder -> OpenAIStreamDecoder -> StreamAccumulator, then decoder.close()."""
    events = decode_sse(wire.OpenAIStreamDecoder(_provider()), pieces)
    acc = StreamAccumulator()
    for item in events:
        acc.add(item)
    return events, acc


def _session_decode(pieces: Sequence[bytes], headers: Mapping[str, str] | None = None) -> (
        tuple[list[StreamEvent], ChatResponse]):
    return replay_stream(_engine(), REQUEST, pieces, headers)


# -- expectations, read by hand from the fixtures --------------------------------------------


@attrs.frozen
class Expect:
    id: str
    model: str
    text: str | None
    finish: FinishReason
    raw_finish: str
    usage: tuple[int, int, int]
    calls: tuple[tuple[str, str, str], ...] = ()  # (id, name, arguments) per index
    refusal: str | None = None
    reasoning_tokens: int | None = 0
    cached_tokens: int | None = None


WEATHER_TEXT_STREAM = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)
JSON_OBJECT_TEXT = (
    '\n  {\n    "location": "San Francisco, CA",\n    "weather": {\n      "temperature": "18°C",'
    '\n      "condition": "Partly Cloudy",\n      "humidity": "72%",\n      "windSpeed": '
    '"15 km/h",\n      "windDirection": "NW"\n    },\n    "forecast": [\n      {\n        '
    '"day": "Monday",\n        "high": "20°C",\n        "low": "14°C",\n        "condition": '
    '"Sunny"\n      },\n      {\n        "day": "Tuesday",\n        "high": "19°C",\n        '
    '"low": "15°C",\n        "condition": "Mostly Cloudy"\n      },\n      {\n        "day": '
    '"Wednesday",\n        "high": "18°C",\n        "low": "14°C",\n        "condition": '
    '"Cloudy"\n      }\n    ]\n  }\n'
)
REFUSAL = "I'm very sorry, but I can't assist with that."
STOP, LENGTH, TOOLS = FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS

PAI_STREAM_TEXT = Expect(
    "chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc", "gpt-4o-mini-2024-07-18",
    "The capital of the UK is London.", STOP, "stop", (78, 9, 87), cached_tokens=0)
PAI_STREAM_TOOL = Expect(
    "chatcmpl-Dx0XpqH8w09uBXwq1zFGYdETjtnEl", "gpt-4o-mini-2024-07-18", None, TOOLS,
    "tool_calls", (53, 15, 68),
    calls=(("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", '{"country":"UK"}'),),
    cached_tokens=0)

#: Streams (raw SSE files, and interaction-json files whose body is the same SSE stream).
STREAMS: dict[str, Expect] = {
    "pai-chat-stream-text.sse": PAI_STREAM_TEXT,
    "pai-chat-stream-text.json": PAI_STREAM_TEXT,
    "pai-chat-stream-tool-call.sse": PAI_STREAM_TOOL,
    "pai-chat-stream-tool-call.json": PAI_STREAM_TOOL,
    "sdk-chat-stream-content-logprobs.sse": Expect(
        "chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c", "gpt-4o-2024-08-06", "Foo!", STOP, "stop",
        (9, 2, 11)),
    "sdk-chat-stream-finish-length-max-tokens.sse": Expect(
        "chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh", "gpt-4o-2024-08-06", '{"', LENGTH, "length",
        (79, 1, 80)),
    "sdk-chat-stream-json-object-mode.sse": Expect(
        "chatcmpl-ABfwCjPMi0ubw56UyMIIeNfJzyogq", "gpt-4o-2024-08-06", JSON_OBJECT_TEXT, STOP,
        "stop", (19, 177, 196)),
    "sdk-chat-stream-refusal-logprobs.sse": Expect(
        "chatcmpl-ABfw5GEVqPbLY576l46FZDQoNJ2KC", "gpt-4o-2024-08-06", "",
        FinishReason.REFUSAL, "stop", (79, 12, 91), refusal=REFUSAL),
    "sdk-chat-stream-structured-output-json-schema.sse": Expect(
        "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF", "gpt-4o-2024-08-06",
        '{"city":"San Francisco","temperature":61,"units":"f"}', STOP, "stop", (79, 14, 93)),
    "sdk-chat-stream-text-weather.sse": Expect(
        "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL", "gpt-4o-2024-08-06", WEATHER_TEXT_STREAM,
        STOP, "stop", (14, 30, 44)),
    "sdk-chat-stream-tool-call-non-strict.sse": Expect(
        "chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (44, 16, 60),
        calls=(("call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", '{"city":"New York City"}'),)),
    "sdk-chat-stream-tool-call-single.sse": Expect(
        "chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (76, 24, 100),
        calls=(("call_c91SqDXlYFuETYv8mUHzz6pp", "GetWeatherArgs",
                '{"city":"Edinburgh","country":"UK","units":"c"}'),)),
    "sdk-chat-stream-tool-call-strict.sse": Expect(
        "chatcmpl-ABfwCgi41eStOcARjZq97ohCEGBPO", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (48, 19, 67),
        calls=(("call_CTf1nWJLqSeRgDqaCG27xZ74", "get_weather",
                '{"city":"San Francisco","state":"CA"}'),)),
    "sdk-chat-stream-tool-calls-parallel.sse": Expect(
        "chatcmpl-ABfwAwrNePHUgBBezonVC6MX3zd63", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (149, 60, 209),
        calls=(("call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs",
                '{"city": "Edinburgh", "country": "GB", "units": "c"}'),
               ("call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price",
                '{"ticker": "AAPL", "exchange": "NASDAQ"}'))),
}

#: Non-streaming chat.completion bodies (json-body, or interaction-json with status 200).
CHAT_BODIES: dict[str, Expect] = {
    "pai-chat-text.json": Expect(
        "chatcmpl-BJjf61mLb9z5H45ClJzbx0UWKwjo1", "gpt-4o-2024-08-06",
        "The capital of France is Paris.", STOP, "stop", (24, 8, 32), cached_tokens=0),
    "pai-chat-tool-call-single.json": Expect(
        "chatcmpl-BSXk0dWkG4hfPt0lph4oFO35iT73I", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (68, 12, 80),
        calls=(("call_iXFttys57ap0o16JSlC8yhYo", "get_user_country", "{}"),), cached_tokens=0),
    "sdk-chat-finish-length.json": Expect(
        "chatcmpl-ABfvvX7eB1KsfeZj8VcF3z7G7SbaA", "gpt-4o-2024-08-06", '{"', LENGTH, "length",
        (79, 1, 80)),
    "sdk-chat-n3-multiple-choices.json": Expect(
        "chatcmpl-ABfvp8qzboW92q8ONDF4DPHlI7ckC", "gpt-4o-2024-08-06",
        '{"city":"San Francisco","temperature":64,"units":"f"}', STOP, "stop", (79, 44, 123)),
    "sdk-chat-refusal.json": Expect(
        "chatcmpl-ABfvwoKVWPQj2UPlAcAKM7s40GsRx", "gpt-4o-2024-08-06", None,
        FinishReason.REFUSAL, "stop", (79, 12, 91), refusal=REFUSAL),
    "sdk-chat-text-weather.json": Expect(
        "chatcmpl-ABfvaueLEMLNYbT8YzpJxsmiQ6HSY", "gpt-4o-2024-08-06",
        "I'm unable to provide real-time weather updates. To get the current weather in San "
        "Francisco, I recommend checking a reliable weather website or app like the Weather "
        "Channel or a local news station.", STOP, "stop", (14, 37, 51)),
    "sdk-chat-tool-call-single.json": Expect(
        "chatcmpl-ABfvx6Z4dchiW2nya1N8KMsHFrQRE", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (76, 24, 100),
        calls=(("call_Y6qJ7ofLgOrBnMD5WbVAeiRV", "GetWeatherArgs",
                '{"city":"Edinburgh","country":"UK","units":"c"}'),)),
    "sdk-chat-tool-call-strict.json": Expect(
        "chatcmpl-ABfvzdvCI6RaIkiEFNjqGXCSYnlzf", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (48, 19, 67),
        calls=(("call_CUdUoJpsWWVdxXntucvnol1M", "get_weather",
                '{"city":"San Francisco","state":"CA"}'),)),
    "sdk-chat-tool-calls-parallel.json": Expect(
        "chatcmpl-ABfvyvfNWKcl7Ohqos4UFrmMs1v4C", "gpt-4o-2024-08-06", None, TOOLS,
        "tool_calls", (149, 60, 209),
        calls=(("call_fdNz3vOBKYgOIpMdWotB9MjY", "GetWeatherArgs",
                '{"city": "Edinburgh", "country": "GB", "units": "c"}'),
               ("call_h1DWI1POMJLb0KwIyQHWXD4p", "get_stock_price",
                '{"ticker": "AAPL", "exchange": "NASDAQ"}'))),
    "tidyllm-chat-json-schema-multiple.json": Expect(
        "chatcmpl-CcWjpzioLtK6SgheWFdpKq5GoJ70Y", "gpt-5.1-chat-latest",
        '{"area":12345.67,"population":890123}', STOP, "stop", (62, 26, 88), cached_tokens=0),
    "tidyllm-chat-json-schema-single.json": Expect(
        "chatcmpl-CcWjhJ3qP05CLu9YpiImmkM8ZlYjs", "gpt-5.1-chat-latest", '{"area":42}', STOP,
        "stop", (53, 18, 71), cached_tokens=0),
    "tidyllm-chat-text-2024.json": Expect(
        "chatcmpl-AIdFyxW3pOXea42PVWGRAwXAQ0kNn", "gpt-4o-2024-08-06",
        "Hello! How can I assist you today?", STOP, "stop", (21, 9, 30), cached_tokens=0),
    "tidyllm-chat-text-ratelimit-headers.json": Expect(
        "chatcmpl-CcWj9dBmozYrIh53F5tkednY14t4r", "gpt-5.1-chat-latest",
        "Hello! How can I help you today?", STOP, "stop", (20, 18, 38), cached_tokens=0),
}

#: The x-request-id of the interaction-json chat bodies that carry one.
REQUEST_IDS = {
    "tidyllm-chat-json-schema-multiple.json": "req_bb4de4b9b25745f090eed50559b25d38",
    "tidyllm-chat-json-schema-single.json": "req_ea0f18fede984ed0bb949aa79be4c3b6",
    "tidyllm-chat-text-2024.json": "req_140cf387ddf60e9fdb4a75807f2ba2b7",
    "tidyllm-chat-text-ratelimit-headers.json": "req_ca8197062dd44e208e21ceef70b46fce",
}


@attrs.frozen
class ErrorExpect:
    status: int
    code: str
    message: str


#: Error interactions: status, code (``code``, else ``type`` when code is null), message.
ERRORS: dict[str, ErrorExpect] = {
    "pai-chat-error-400-null-code.json": ErrorExpect(
        400, "invalid_request_error", "Web search options not supported with this model."),
    "pai-chat-error-400-unsupported-value.json": ErrorExpect(
        400, "unsupported_value",
        "Unsupported value: 'messages[0].role' does not support 'developer' with this model."),
    "pai-chat-error-404-model-not-found.json": ErrorExpect(
        404, "model_not_found",
        "The model `gpt-5.2-proo` does not exist or you do not have access to it."),
    "pai-responses-error-400.json": ErrorExpect(
        400, "decimal_below_min_value",
        "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1 "
        "instead."),
}

#: Responses API bodies (non-streaming), which the chat-completions plugin must reject loudly;
#: value: the x-request-id the error must carry (None when the fixture has none).
RESPONSES_API_BODIES: dict[str, str | None] = {
    "sdk-responses-output-text.json": None,
    "tidyllm-responses-json-schema-multiple-MOCK.json": "req_mock_schema_multiple",
    "tidyllm-responses-json-schema-single-MOCK.json": "req_mock_schema_single",
}
#: Responses API event streams.
RESPONSES_API_STREAMS = ("pai-responses-stream-logprobs.sse", "pai-responses-stream-logprobs.json")


@attrs.frozen
class LimitsExpect:
    remaining_tokens: int
    reset_tokens_ms: int


#: x-ratelimit-* headers: all have limit-requests=5000, limit-tokens=800000,
#: remaining-requests=4999, reset-requests=12ms.
RATE_LIMITS: dict[str, LimitsExpect] = {
    "tidyllm-chat-json-schema-multiple.json": LimitsExpect(799972, 2),
    "tidyllm-chat-json-schema-single.json": LimitsExpect(799976, 1),
    "tidyllm-chat-text-2024.json": LimitsExpect(798962, 77),
    "tidyllm-chat-text-ratelimit-headers.json": LimitsExpect(799986, 1),
}

COVERED = (set(STREAMS) | set(CHAT_BODIES) | set(ERRORS) | set(RESPONSES_API_BODIES)
           | set(RESPONSES_API_STREAMS) | set(RATE_LIMITS))


# -- meta ------------------------------------------------------------------------------------


def test_every_openai_fixture_has_a_test() -> None:
    on_disk = CAPTURES.names()
    assert on_disk == COVERED


def test_manifest_lists_exactly_the_openai_fixtures() -> None:
    listed = manifest_names(FIXTURES, "openai")
    assert listed == CAPTURES.names()


def test_every_fixture_with_ratelimit_headers_is_checked() -> None:
    with_limits = set()
    for path in OPENAI_DIR.glob("*.json"):
        data = json.loads(path.read_bytes())
        if "response" in data and any(k.lower().startswith("x-ratelimit-")
                                      for k in data["response"]["headers"]):
            with_limits.add(path.name)
    assert with_limits == set(RATE_LIMITS)


# -- streams ---------------------------------------------------------------------------------


def _check(response: ChatResponse, expect: Expect) -> None:
    assert response.id == expect.id
    assert response.model == expect.model
    assert response.message.role == "assistant"
    assert response.message.content == expect.text
    assert response.finish_reason is expect.finish
    assert response.raw_finish_reason == expect.raw_finish
    assert response.refusal == expect.refusal
    assert response.reasoning is None
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == list(expect.calls)
    prompt, completion, total = expect.usage
    assert response.usage == Usage(input_tokens=prompt, output_tokens=completion,
                                   total_tokens=total, reasoning_tokens=expect.reasoning_tokens,
                                   cache_read_tokens=expect.cached_tokens)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_fixture(name: str) -> None:
    raw, headers = CAPTURES.body_and_headers(name)
    expect = STREAMS[name]
    events, response = _session_decode([raw], headers)
    _check(response, expect)

    # The same events come out of the bare pipeline (SSEDecoder -> decoder -> accumulator).
    manual_events, acc = _manual_decode([raw])
    assert manual_events == events
    assert acc.text() == (expect.text or "")

    kinds = {type(e) for e in events}
    assert kinds <= {TextDelta, RefusalDelta, ToolCallDelta, UsageEvent, FinishEvent}
    finishes = [e for e in events if type(e) is FinishEvent]
    assert finishes == [FinishEvent(reason=expect.finish, raw=expect.raw_finish)]
    assert type(events[-1]) is UsageEvent  # include_usage: the usage chunk comes last
    assert (TextDelta in kinds) == bool(expect.text)
    assert (RefusalDelta in kinds) == (expect.refusal is not None)
    # Tool-call fragments accumulate per index; id and name only on each index's first one.
    deltas = [e for e in events if type(e) is ToolCallDelta]
    assert sorted({d.index for d in deltas}) == list(range(len(expect.calls)))
    for index, (call_id, call_name, arguments) in enumerate(expect.calls):
        mine = [d for d in deltas if d.index == index]
        assert (mine[0].id, mine[0].name) == (call_id, call_name)
        assert all(d.id is None and d.name is None for d in mine[1:])
        assert "".join(d.arguments for d in mine) == arguments


def test_refusal_stream_yields_refusal_deltas_only() -> None:
    events, _ = _session_decode([CAPTURES.raw("sdk-chat-stream-refusal-logprobs.sse")])
    refusals = [e.text for e in events if type(e) is RefusalDelta]
    assert refusals[:3] == ["I'm", " very", " sorry"]
    assert "".join(refusals) == REFUSAL
    assert not any(type(e) is TextDelta for e in events)


def test_parallel_stream_interleaves_nothing_and_keeps_order() -> None:
    events, _ = _session_decode([CAPTURES.raw("sdk-chat-stream-tool-calls-parallel.sse")])
    indices = [e.index for e in events if type(e) is ToolCallDelta]
    assert indices == [0] * 12 + [1] * 10


@pytest.mark.parametrize("name", sorted(STREAMS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stream_fixture_any_chunking(name: str, data: st.DataObject) -> None:
    raw, _ = CAPTURES.body_and_headers(name)
    whole, _ = _session_decode([raw])
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=40))
    pieces = split_at(raw, cuts)
    assert b"".join(pieces) == raw
    assert _session_decode(pieces)[0] == whole
    assert _manual_decode(pieces)[0] == whole


def test_stream_fixture_byte_by_byte() -> None:
    raw = CAPTURES.raw("sdk-chat-stream-content-logprobs.sse")
    pieces = [raw[i:i + 1] for i in range(len(raw))]
    events, response = _session_decode(pieces)
    assert events == _session_decode([raw])[0]
    assert response.text == "Foo!"


@pytest.mark.parametrize("name", ["pai-chat-stream-text.sse", "sdk-chat-stream-text-weather.sse"])
def test_stream_fixture_with_crlf_line_endings(name: str) -> None:
    raw = CAPTURES.raw(name)
    crlf = raw.replace(b"\n", b"\r\n")
    assert _session_decode(split_at(crlf, range(7, len(crlf), 97)))[0] == \
        _session_decode([raw])[0]


def test_stream_cut_before_finish_is_a_retryable_response_error() -> None:
    raw = CAPTURES.raw("pai-chat-stream-text.sse")
    cut = raw[: raw.index(b'"finish_reason":"stop"')]
    cut = cut[: cut.rindex(b"\n\n") + 2]
    session = _engine().open_stream(REQUEST, {"x-request-id": "req_1"}, None)
    events = session.feed(cut)
    assert "".join(e.text for e in events if type(e) is TextDelta) == (
        "The capital of the UK is London.")
    with pytest.raises(ResponseError) as info:
        session.finish()
    assert info.value.retryable
    assert info.value.request_id == "req_1"


# -- non-streaming chat bodies ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CHAT_BODIES))
def test_chat_body_fixture(name: str) -> None:
    body, headers = CAPTURES.body_and_headers(name)
    expect = CHAT_BODIES[name]
    response = wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    _check(response, expect)
    assert response.provider == "openai"

    # Through the engine (hooks): same answer, plus the request id and rate-limit state.
    engine = _engine()
    state = engine.observe(200, headers, REQUEST.model)
    through = engine.chat_response(REQUEST, body, headers, state)
    _check(through, expect)
    assert through.request_id == REQUEST_IDS.get(name)
    assert through.rate_limit == state
    assert (state is not None) == (name in RATE_LIMITS)


def test_n3_alternatives() -> None:
    body, _ = CAPTURES.body_and_headers("sdk-chat-n3-multiple-choices.json")
    response = wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    assert response.text == '{"city":"San Francisco","temperature":64,"units":"f"}'
    assert [c.message.content for c in response.choices] == [
        '{"city":"San Francisco","temperature":64,"units":"f"}',
        '{"city":"San Francisco","temperature":65,"units":"f"}',
        '{"city":"San Francisco","temperature":63.0,"units":"f"}',
    ]
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert [c.finish_reason for c in response.choices] == [FinishReason.STOP] * 3
    assert [c.raw_finish_reason for c in response.choices] == ["stop"] * 3
    assert all(c.message.role == "assistant" and c.message.tool_calls == ()
               for c in response.more_choices)


def test_single_choice_bodies_have_no_alternatives() -> None:
    for name in CHAT_BODIES:
        if name == "sdk-chat-n3-multiple-choices.json":
            continue
        body, _ = CAPTURES.body_and_headers(name)
        response = wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
        assert response.more_choices == (), name
        assert len(response.choices) == 1 and response.choices[0].message == response.message


def test_refusal_body_is_a_refusal_with_no_text() -> None:
    body, _ = CAPTURES.body_and_headers("sdk-chat-refusal.json")
    response = wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    assert response.finish_reason is FinishReason.REFUSAL
    assert response.refusal == REFUSAL
    assert response.text == ""


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_fixture(name: str) -> None:
    status, headers, body = CAPTURES.response(name)
    expect = ERRORS[name]
    assert status == expect.status
    data = json.loads(body)
    request_id = headers.get("x-request-id")
    error = wire.map_error(_provider(), status, headers, data, request_id, NOW)
    kind = NotFoundError if status == 404 else BadRequestError
    assert type(error) is kind
    assert error.status == expect.status
    assert error.code == expect.code
    assert error.message.startswith(expect.message)
    assert not error.retryable
    assert error.request_id is None  # pydantic-ai cassettes drop x-* headers
    assert error.provider == "openai"
    assert error.body == data
    assert error.headers == headers
    if status == 404:
        assert "check the model name and base_url" in error.message

    # Through the engine: the plugin's hook wins over the built-in fallback.
    through = _engine().error(status, headers, body.encode("utf-8"))
    assert type(through) is kind
    assert (through.code, through.status, through.message) == (
        error.code, error.status, error.message)


def test_error_request_id_is_kept_when_present() -> None:
    status, headers, body = CAPTURES.response("pai-chat-error-400-unsupported-value.json")
    headers = {**headers, "x-request-id": "req_abc"}
    error = _engine().error(status, headers, body.encode("utf-8"))
    assert error.request_id == "req_abc"
    assert "req_abc" in str(error)


# -- the Responses API is not chat completions: always a typed error -------------------------


@pytest.mark.parametrize("name", sorted(RESPONSES_API_BODIES))
def test_responses_api_body_is_rejected(name: str) -> None:
    body, headers = CAPTURES.body_and_headers(name)
    with pytest.raises(KeyError):
        wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    with pytest.raises(ResponseError, match="unexpected shape") as info:
        _engine().chat_response(REQUEST, body, headers, None)
    assert info.value.request_id == RESPONSES_API_BODIES[name]
    assert not info.value.retryable


@pytest.mark.parametrize("name", RESPONSES_API_STREAMS)
def test_responses_api_stream_is_rejected(name: str) -> None:
    body, headers = CAPTURES.body_and_headers(name)
    session = _engine().open_stream(REQUEST, headers, None)
    # Not a chat-completions stream: the first event fails loudly, naming the mismatch, and
    # nothing is delivered (never a silent empty answer, never a misleading "retry").
    with pytest.raises(ResponseError, match=r"not a chat\.completion\.chunk.*response\.created"):
        session.feed(body)
    assert session.accumulator.text() == ""
    assert not session.delivered

    # The bare decoder raises ValueError on the first event (the session turns it into
    # ResponseError above).
    sse = SSEDecoder()
    decoder = wire.OpenAIStreamDecoder(_provider())
    first = sse.feed(body)[0]
    with pytest.raises(ValueError, match="chat-completions endpoint"):
        decoder.feed(first)
    assert not decoder.done


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RATE_LIMITS))
def test_rate_limit_headers(name: str) -> None:
    status, headers, _ = CAPTURES.response(name)
    expect = RATE_LIMITS[name]
    state = wire.parse_rate_limits(status, headers, NOW)
    assert state is not None
    assert state.requests is not None
    assert state.tokens is not None
    assert (state.requests.limit, state.requests.remaining) == (5000, 4999)
    assert state.requests.reset_at == pytest.approx(NOW + 0.012)
    assert (state.tokens.limit, state.tokens.remaining) == (800000, expect.remaining_tokens)
    assert state.tokens.reset_at == pytest.approx(NOW + expect.reset_tokens_ms / 1000)
    assert state.not_before is None
    assert state.observed_at == NOW
    assert set(state.windows()) == {"requests", "tokens"}


def test_interactions_without_ratelimit_headers_give_no_state() -> None:
    for path in sorted(OPENAI_DIR.glob("*.json")):
        data: Any = json.loads(path.read_bytes())
        if "response" not in data or path.name in RATE_LIMITS:
            continue
        status, headers, _ = CAPTURES.response(path.name)
        assert wire.parse_rate_limits(status, headers, NOW) is None, path.name


def test_rate_limits_tracked_per_model_through_the_engine() -> None:
    _, headers, _ = CAPTURES.response("tidyllm-chat-text-ratelimit-headers.json")
    engine = _engine()
    engine.observe(200, headers, "gpt-5.1-chat-latest")
    state = engine.tracker.get(("openai", engine.credential.id, "gpt-5.1-chat-latest"))
    assert state is not None
    assert state.tokens is not None
    assert state.tokens.remaining == 799986
    assert not state.can_send(NOW, estimated_tokens=900_000)
    assert state.can_send(NOW, estimated_tokens=1000)

"""Every captured Gemini fixture in ``tests/fixtures/google/`` decoded by the plugin, with the
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

import aipk_gemini.plugin
from aipk import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    FinishReason,
    IncompleteStreamError,
    Message,
    Provider,
    ReasoningDelta,
    StreamAccumulator,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from aipk._core import Engine
from aipk.errors import (
    BadRequestError,
    ConfigurationError,
    ContentFilteredError,
    NotFoundError,
    PermissionDeniedError,
    ResponseError,
)
from aipk_gemini import GEMINI, stream, tokens, wire
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
GOOGLE_DIR = FIXTURES / "google"
CAPTURES = Captures(GOOGLE_DIR)
NOW = 1_700_000_000.0
REQUEST = ChatRequest(model="gemini-2.5-flash", messages=[Message.user("hi")])
STOP, LENGTH, TOOLS = FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS


# -- helpers ---------------------------------------------------------------------------------


def _provider() -> Provider:
    return make_provider(GEMINI)


def _engine() -> Engine:
    return make_engine(GEMINI, {"gemini": aipk_gemini.plugin}, clock=lambda: NOW)


def _manual_decode(pieces: Sequence[bytes]) -> tuple[list[StreamEvent], stream.GeminiStreamDecoder]:
    """SSEDecoder -> GeminiStreamDecoder, then decoder.close()."""
    decoder = stream.GeminiStreamDecoder(_provider())
    return decode_sse(decoder, pieces), decoder


def _session_decode(pieces: Sequence[bytes], headers: Mapping[str, str] | None = None) -> (
        tuple[list[StreamEvent], ChatResponse]):
    return replay_stream(_engine(), REQUEST, pieces, headers)


# -- expectations, read by hand from the fixtures --------------------------------------------


@attrs.frozen
class Expect:
    id: str | None
    model: str
    text: str
    finish: FinishReason | None
    raw_finish: str | None
    usage: Usage | None
    calls: tuple[tuple[str, str, str], ...] = ()  # (id, name, arguments)
    reasoning_starts: tuple[str, ...] = ()
    signature_start: str | None = None  # thoughtSignature on a text part
    call_signature_start: str | None = None  # thoughtSignature on call_0


THINKING_TEXT_START = ("This is a great question! Safely crossing the street is all about being "
                       "aware and predictable. Here is a step-by-step guide that is widely "
                       "taught for safety:\n\n### 1. Find a Safe Place to Cross\n")
THINKING_TEXT_END = (" to **stay alert and be predictable**. Always assume a driver might not "
                     "see you.")
THINKING_TEXT_LEN = 1938
COUNT_TO_30 = "\n".join(str(n) for n in range(1, 31))

STREAM_TEXT = Expect(
    "w1peaMz6INOvnvgPgYfPiQY", "gemini-2.0-flash-exp", "The capital of France is Paris.\n",
    STOP, "STOP", Usage(input_tokens=13, output_tokens=8, total_tokens=21))
STREAM_CALL = Expect(
    "1lpeaMTxIpW1nvgP-O3vwQY", "gemini-2.0-flash", "", TOOLS, "STOP",
    Usage(input_tokens=52, output_tokens=5, total_tokens=57),
    calls=(("call_0", "get_capital", '{"country":"France"}'),))
STREAM_THINKING = Expect(
    "beHBaJfEMIi-qtsP3769-Q8", "gemini-2.5-pro", THINKING_TEXT_START, STOP, "STOP",
    # candidatesTokenCount 469 + thoughtsTokenCount 787 = 1256; totalTokenCount 1290
    Usage(input_tokens=34, output_tokens=1256, total_tokens=1290, reasoning_tokens=787),
    reasoning_starts=("**Clarifying User Goals**\n\nI'm currently focused on defining",
                      "**Developing a Safety Protocol**\n\nI'm now formulating",
                      "**Prioritizing Safe Crossing**\n\nI've revised",
                      "**Crafting Safe Instructions**\n\nI've identified the core user intent"),
    signature_start="CiIB0e2Kb6Syj1a961EfbWv4W5C8RgAA/hGleV9VYJtnJFh4CmkB0e2Kb2qMva5NvDLuUvN8")
STREAM_MID_USAGE = Expect(
    "ru1garvBEoOiqtsP2fznmQw", "gemini-2.5-flash", COUNT_TO_30, STOP, "STOP",
    Usage(input_tokens=18, output_tokens=115, total_tokens=133, reasoning_tokens=35))

STREAM_CALL_SIGNED = Expect(  # gemini-3-pro-preview: no call id, the signature on the call part
    "SVV8aY6uBqe6qtsPmJbEuAM", "gemini-3-pro-preview", "", TOOLS, "STOP",
    Usage(input_tokens=29, output_tokens=120, total_tokens=149, reasoning_tokens=110),
    calls=(("call_0", "get_country", "{}"),),
    call_signature_start="Et8ECtwEAXLI2nyCB1jKZUE4ZxdH07XhZlpU7X7tlcbNO8oQurN910Rmh6fTq1azIzM7")
STREAM_AFTER_CALL = Expect(  # promptTokenCount jumps from 55 to 165 in the last event
    "S1V8aZK2NpGKqtsPvPuEqAw", "gemini-3-pro-preview", "The capital of Mexico is Mexico City.",
    STOP, "STOP", Usage(input_tokens=165, output_tokens=8, total_tokens=173))

#: Streams (raw SSE files, and interaction-json files whose body is the same SSE stream).
STREAMS: dict[str, Expect] = {
    "pai-stream-text.sse": STREAM_TEXT,
    "pai-stream-text.json": STREAM_TEXT,
    "pai-stream-function-call.sse": STREAM_CALL,
    "pai-stream-function-call.json": STREAM_CALL,
    "pai-stream-thinking.sse": STREAM_THINKING,
    "pai-stream-thinking.json": STREAM_THINKING,
    "pai-stream-usage-mid-stream.sse": STREAM_MID_USAGE,
    "pai-stream-usage-mid-stream.json": STREAM_MID_USAGE,
    "pai-stream-call-thought-signature.sse": STREAM_CALL_SIGNED,
    "pai-stream-call-thought-signature.json": STREAM_CALL_SIGNED,
    "pai-stream-after-function-response.json": STREAM_AFTER_CALL,
    "pai-stream-after-function-response.sse": STREAM_AFTER_CALL,
}

#: Every usage snapshot the stream reports, in order (repeats collapsed; never summed).
STREAM_USAGES: dict[str, list[Usage]] = {
    "pai-stream-text.sse": [Usage(input_tokens=15, output_tokens=None, total_tokens=15),
                            Usage(input_tokens=13, output_tokens=8, total_tokens=21)],
    "pai-stream-usage-mid-stream.sse": [
        Usage(input_tokens=18, output_tokens=66, total_tokens=84, reasoning_tokens=35),
        Usage(input_tokens=18, output_tokens=114, total_tokens=132, reasoning_tokens=35),
        Usage(input_tokens=18, output_tokens=115, total_tokens=133, reasoning_tokens=35)],
}

#: Non-streaming GenerateContentResponse bodies (status 200).
BODIES: dict[str, Expect] = {
    "pai-generate-text.json": Expect(
        "bzlXaa_EE_aHqtsPi_zw8Ao", "gemini-2.5-flash", "Hello! How can I help you today?", STOP,
        "STOP", Usage(input_tokens=9, output_tokens=43, total_tokens=52, reasoning_tokens=34)),
    "pai-finish-max-tokens.json": Expect(
        "R5MoavWNNp_8qtsP2fWD2A0", "gemini-2.5-flash", "The capital of France is", LENGTH,
        "MAX_TOKENS", Usage(input_tokens=15, output_tokens=5, total_tokens=20)),
    "pai-function-calls-parallel.json": Expect(
        "wOd8abGuO5rgz7IP5tLEGA", "gemini-3-flash-preview", "", TOOLS, "STOP",
        Usage(input_tokens=83, output_tokens=220, total_tokens=303, reasoning_tokens=190),
        calls=(("call_0", "generate_topic", "{}"), ("call_1", "generate_topic", "{}"),
               ("call_2", "generate_topic", "{}")),
        call_signature_start="Es8FCswFAXLI2nxFGW9oAYt0fTQoHlYcudYTgqNXlir9nzbXoqFXqLY9sWOIMaev"),
    "tidyllm-generate-text-2024.json": Expect(
        None, "gemini-1.5-flash-002", "Hello, world!\n", STOP, "STOP",
        Usage(input_tokens=5, output_tokens=5, total_tokens=10)),
    # a candidate with no finishReason (and no responseId): an answer, its reason unknown
    "pai-generate-no-finish-reason.json": Expect(
        None, "gemini-1.5-flash", "Hello there! How can I help you today?\n", None, None,
        Usage(input_tokens=7, output_tokens=11, total_tokens=18)),
    # the thinking used the 5 tokens: a content with a role and no parts, no output count
    "pai-finish-max-tokens-no-parts.json": Expect(
        "fH8oaunbEbr9qtsPjYGX4A0", "gemini-2.5-pro", "", LENGTH, "MAX_TOKENS",
        Usage(input_tokens=15, output_tokens=2, total_tokens=17, reasoning_tokens=2)),
    # requested with $alt=json;enum-encoding=int: finishReason 1 is STOP
    "lcgo-json-mode-enum-int.json": Expect(
        "Wh-jaPDONbyYkdUPreHaqQc", "gemini-2.0-flash", '["red", "green", "blue"]', STOP, "STOP",
        Usage(input_tokens=7, output_tokens=9, total_tokens=16)),
}

#: Prompts the safety filter blocked (HTTP 200, no candidates): block reason, its message.
BLOCKED: dict[str, tuple[str, str | None]] = {
    "pai-vertex-prompt-blocked-model-armor.json": (
        "MODEL_ARMOR", "The prompt violated Prompt Injection and Jailbreak filters."),
    "vercel-prompt-blocked-prohibited-content.json": ("PROHIBITED_CONTENT", None),
}


@attrs.frozen
class ErrorExpect:
    status: int
    code: str
    message: str


ERRORS: dict[str, ErrorExpect] = {
    "pai-error-404-model-not-found.json": ErrorExpect(
        404, "NOT_FOUND",
        "models/gemini-3.6-flahs is not found for API version v1beta, or is not supported for "
        "generateContent. Call ModelService.ListModels to see the list of available models and "
        "their supported methods."),
    "lcgo-error-403-permission-denied.json": ErrorExpect(
        403, "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API."),
    "pai-vertex-error-400-invalid-argument.json": ErrorExpect(
        400, "INVALID_ARGUMENT",
        "Cannot fetch content from the provided URL. Please ensure the URL is valid and "
        "accessible by Vertex AI. Vertex AI respects robots.txt rules, so confirm the URL is "
        "allowed to be crawled. Status: URL_ROBOTED-ROBOTED_DENIED"),
}

#: Streams requested without ``alt=sse``: one JSON array (stream_framing="json-array").
#: (id, model, text start, text end, text length, usage, reasoning start, elements)
ARRAYS: dict[str, tuple[str, str, str, str, int, Usage, str | None, int]] = {
    "lcgo-stream-array-after-function-response.json": (
        "aR-jaMvrOc7shMIP2Mei0AI", "gemini-2.0-flash", "15 * 7 is 105.\n", "105.\n", 15,
        Usage(input_tokens=33, output_tokens=12, total_tokens=45), None, 2),
    "lcgo-stream-array-enum-int.json": (  # finishReason 1 (enum-encoding=int) is STOP
        "VB-jaN_BCZuThMIPnryvyAg", "gemini-2.0-flash", "Clementine, a calico with a",
        "quite as grumpy as she thought she was.\n", 2580,
        Usage(input_tokens=8, output_tokens=578, total_tokens=586), None, 13),
    "llmg-stream-array-structured-output.json": (
        "J4pyara8ILKa_uMP0oWIwA8", "gemini-3.6-flash", '{"name":"Zephyr The Rocket Barkington"',
        'mid-air."}', 189,
        Usage(input_tokens=5, output_tokens=503, total_tokens=508, reasoning_tokens=453),
        "**Defining the Core Dog**", 5),
    "llmg-stream-array-thinking.json": (
        "IopyaseNCL-s-8YP7urOoAY", "gemini-3.6-flash", "Scoop", "Scoop", 5,
        Usage(input_tokens=11, output_tokens=293, total_tokens=304, reasoning_tokens=291),
        "**Considering the Constraint**", 3),
    "llmg-stream-array-after-function-response.json": (  # promptTokenCount grows at the end
        "6nJFaZPBLriWjMcPkf_q8Ac", "gemini-3-flash-preview", "5 times 3", " is 15.", 16,
        Usage(input_tokens=121, output_tokens=9, total_tokens=130), None, 3),
}

#: JSON-array streams whose answer is one function call carrying a thoughtSignature:
#: (id, model, call id, name, arguments, usage, signature start, elements)
ARRAY_CALLS: dict[str, tuple[str, str, str, str, dict[str, Any], Usage, str, int]] = {
    "llmg-stream-array-call-thought-signature.json": (  # no id from Gemini: call_0
        "6XJFadi3PJOx-sAPgJ3S6Qs", "gemini-3-flash-preview", "call_0", "multiply",
        {"y": 3, "x": 5},
        Usage(input_tokens=60, output_tokens=48, total_tokens=108, reasoning_tokens=32),
        "Et0BCtoBAXLI2nwMB4momyXTj+K3", 2),
    "llmg-stream-array-call-with-id.json": (
        "znLSafGoDoPUjMcPwMnh0AE", "gemini-3-flash-preview", "c9bjmkfz",
        "pelican_name_generator", {"type": "funny"},
        Usage(input_tokens=28, output_tokens=267, total_tokens=295, reasoning_tokens=248),
        "EosJCogJAb4+9vvm5UYUGfJLxX6O", 2),
}

#: ``countTokens`` answers: the count, or the status of the error.
COUNTS: dict[str, int] = {
    "pai-count-tokens-raw.json": 12,
    "pai-count-tokens-embedding-model.json": 5,
    "pai-count-tokens-error-404.json": 404,
}

COVERED = (set(STREAMS) | set(BODIES) | set(ERRORS) | set(BLOCKED) | set(COUNTS)
           | set(ARRAYS) | set(ARRAY_CALLS))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_count_tokens_fixture(name: str) -> None:
    status, headers, body = CAPTURES.response(name)
    captured = CAPTURES.request(name)
    sent = captured["body"] if isinstance(captured["body"], dict) else json.loads(
        captured["body"])
    model = captured["url"].split("/models/")[1].split(":")[0]
    request = ChatRequest(model=model, messages=[
        Message.user(sent["contents"][0]["parts"][0]["text"])])
    built = tokens.build_count_tokens_request(_provider(), request)
    assert built.url == captured["url"]
    assert built.json["generateContentRequest"]["contents"] == sent["contents"]
    assert built.json["generateContentRequest"]["model"] == f"models/{model}"
    if status == 404:
        error = _engine().error(status, headers, body.encode())
        assert type(error) is NotFoundError
        assert "is not supported for countTokens" in error.message
        return
    assert tokens.parse_token_count(json.loads(body)) == COUNTS[name]
    engine = _engine()
    call = engine.prepare_count(request)
    assert call is not None
    count = engine.token_count(call, request, body.encode(), headers)
    assert (count.input_tokens, count.estimated, count.model) == (COUNTS[name], False, model)


# -- meta ------------------------------------------------------------------------------------


def test_every_google_fixture_has_a_test() -> None:
    on_disk = CAPTURES.names()
    assert on_disk == COVERED


def test_manifest_lists_exactly_the_google_fixtures() -> None:
    listed = manifest_names(FIXTURES, "google")
    assert listed == CAPTURES.names()


def test_sse_files_are_the_interaction_bodies() -> None:
    for name in STREAMS:
        if name.endswith(".json"):
            assert CAPTURES.body(name) == CAPTURES.raw(name.replace(".json", ".sse")), name


# -- streams ---------------------------------------------------------------------------------


def _check(response: ChatResponse, expect: Expect) -> None:
    assert response.id == expect.id
    assert response.model == expect.model
    if expect is STREAM_THINKING:
        assert response.text.startswith(THINKING_TEXT_START)
        assert response.text.endswith(THINKING_TEXT_END)
        assert len(response.text) == THINKING_TEXT_LEN
    else:
        assert response.text == expect.text
    assert response.finish_reason is expect.finish
    assert response.raw_finish_reason == expect.raw_finish
    assert response.usage == expect.usage
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == list(expect.calls)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_fixture(name: str) -> None:
    raw = CAPTURES.body(name)
    expect = STREAMS[name]
    events, response = _session_decode([raw])
    _check(response, expect)
    assert response.provider == "gemini"

    manual, decoder = _manual_decode([raw])
    assert manual == events
    finishes = [e for e in events if type(e) is FinishEvent]
    assert finishes == [FinishEvent(reason=expect.finish, raw=expect.raw_finish)]
    usages = [e.usage for e in events if type(e) is UsageEvent]
    assert usages[-1] == expect.usage
    deltas = [e for e in events if type(e) is ToolCallDelta]
    # Gemini sends each functionCall whole: one delta per call, with id, name and all arguments.
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (i, *call) for i, call in enumerate(expect.calls)]
    reasoning = [e.text for e in events if type(e) is ReasoningDelta]
    assert len(reasoning) == len(expect.reasoning_starts)
    for text, start in zip(reasoning, expect.reasoning_starts, strict=True):
        assert text.startswith(start)
    assert (response.reasoning is None) == (not expect.reasoning_starts)
    signature = response.extra.get("thoughtSignature")
    if expect.signature_start is None:
        assert signature is None
    else:
        assert isinstance(signature, str) and signature.startswith(expect.signature_start)
        assert len(signature) == 6152
        assert decoder.extra["thoughtSignature"] == signature
    call_signatures = response.extra.get("functionCallSignatures")
    if expect.call_signature_start is None:
        assert call_signatures is None
    else:
        assert list(call_signatures) == ["call_0"]
        assert call_signatures["call_0"].startswith(expect.call_signature_start)


@pytest.mark.parametrize("name", sorted(STREAM_USAGES))
def test_stream_usage_is_a_running_snapshot(name: str) -> None:
    events, response = _session_decode([CAPTURES.raw(name)])
    assert [e.usage for e in events if type(e) is UsageEvent] == STREAM_USAGES[name]
    assert response.usage == STREAM_USAGES[name][-1]


def test_mid_stream_usage_is_live_after_the_first_event() -> None:
    raw = CAPTURES.raw("pai-stream-usage-mid-stream.sse")
    first_event_end = raw.index(b"\r\n\r\n") + 4
    session = _engine().open_stream(REQUEST, {}, None)
    events = session.feed(raw[:first_event_end])
    assert [e.text for e in events if type(e) is TextDelta] == [
        "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n1"]
    assert session.accumulator.usage == Usage(input_tokens=18, output_tokens=66,
                                              total_tokens=84, reasoning_tokens=35)


def test_stream_events_are_crlf_framed_and_end_at_eof() -> None:
    raw = CAPTURES.raw("pai-stream-text.sse")
    assert raw.count(b"\r\n\r\n") == 3 and b"[DONE]" not in raw
    events, response = _session_decode([raw])
    assert [e.text for e in events if type(e) is TextDelta] == [
        "The", " capital of France", " is Paris.\n"]
    assert response.finish_reason is STOP


@pytest.mark.parametrize("name", sorted(n for n in STREAMS if n.endswith(".sse")))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stream_fixture_any_chunking(name: str, data: st.DataObject) -> None:
    raw = CAPTURES.raw(name)
    whole, _ = _session_decode([raw])
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=40))
    pieces = split_at(raw, cuts)
    assert b"".join(pieces) == raw
    assert _session_decode(pieces)[0] == whole
    assert _manual_decode(pieces)[0] == whole


def test_stream_fixture_byte_by_byte() -> None:
    raw = CAPTURES.raw("pai-stream-function-call.sse")
    events, response = _session_decode([raw[i:i + 1] for i in range(len(raw))])
    assert events == _session_decode([raw])[0]
    assert response.tool_calls[0].parsed_arguments() == {"country": "France"}


def test_stream_cut_between_events_is_incomplete_with_the_partial_answer() -> None:
    raw = CAPTURES.raw("pai-stream-text.sse")
    cut = raw[: raw.index(b'"finishReason"')]
    cut = cut[: cut.rindex(b"\r\n\r\n") + 4]  # two whole events, no finishReason
    session = _engine().open_stream(REQUEST, {"x-goog-request-id": "g-1"}, None)
    events = session.feed(cut)
    assert "".join(e.text for e in events if type(e) is TextDelta) == "The capital of France"
    with pytest.raises(IncompleteStreamError, match="before its terminator .a chunk with a "
                       "finishReason.") as info:
        session.finish()
    assert info.value.retryable
    assert info.value.request_id == "g-1"
    assert info.value.partial.text == "The capital of France"
    assert info.value.partial.finish_reason is None


def test_stream_cut_mid_json_is_incomplete() -> None:
    raw = CAPTURES.raw("pai-stream-function-call.sse")
    session = _engine().open_stream(REQUEST, {}, None)
    assert session.feed(raw[:200]) == []
    with pytest.raises(IncompleteStreamError, match="in the middle of an event") as info:
        session.finish()
    assert info.value.partial.tool_calls == ()


@pytest.mark.parametrize("name", sorted(n for n in CAPTURES.names() if n.endswith(".sse")))
def test_every_capture_ends_with_its_terminator_and_any_earlier_end_is_incomplete(
        name: str) -> None:
    """The real streams end at the chunk carrying finishReason; cut anywhere before it, the
    stream is incomplete and the error keeps the prefix of the answer."""
    raw = CAPTURES.raw(name)
    session = _engine().open_stream(REQUEST, {}, None)
    session.feed(raw)
    session.finish()
    assert session.done
    whole = session.response().text
    last = raw.rindex(b'"finishReason"')
    for end in sorted({0, 1, len(raw) // 3, last - 1, last, raw.rindex(b"data:")}):
        cut = _engine().open_stream(REQUEST, {}, None)
        cut.feed(raw[:end])
        with pytest.raises(IncompleteStreamError) as info:
            cut.finish()
        assert whole.startswith(info.value.partial.text)


def test_stream_accumulator_matches_events() -> None:
    events, _ = _manual_decode([CAPTURES.raw("pai-stream-thinking.sse")])
    acc = StreamAccumulator()
    for event in events:
        acc.add(event)
    assert len(acc.text()) == THINKING_TEXT_LEN


# -- non-streaming bodies --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BODIES))
def test_body_fixture(name: str) -> None:
    status, headers, body = CAPTURES.response(name)
    assert status == 200
    expect = BODIES[name]
    response = wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    _check(response, expect)
    assert response.provider == "gemini"
    through = _engine().chat_response(REQUEST, body.encode(), headers, None)
    _check(through, expect)
    assert through.message == response.message


def test_generate_text_reports_reasoning_tokens_without_thought_text() -> None:
    _, _, body = CAPTURES.response("pai-generate-text.json")
    response = wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    assert response.usage is not None and response.usage.reasoning_tokens == 34
    assert response.reasoning is None


def test_parallel_calls_keep_the_thought_signature_of_the_first_call() -> None:
    _, _, body = CAPTURES.response("pai-function-calls-parallel.json")
    response = wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    expect = BODIES["pai-function-calls-parallel.json"]
    signatures = response.message.extra["functionCallSignatures"]
    assert list(signatures) == ["call_0"]
    assert signatures["call_0"].startswith(expect.call_signature_start or "?")
    assert response.extra["functionCallSignatures"] == signatures
    assert response.extra["finishMessage"] == "Model generated function call(s)."
    assert response.message.content is None
    assert [c.parsed_arguments() for c in response.tool_calls] == [{}, {}, {}]

    # The next turn echoes the signature on the same functionCall part, and only there.
    follow = ChatRequest(model="gemini-3-flash-preview", messages=[
        Message.user("Tell three jokes"), response.message,
        *(Message.tool(c.id, '{"topic": "cats"}') for c in response.tool_calls)])
    contents = wire.build_chat_body(_provider(), follow)["contents"]
    model_parts = contents[1]["parts"]
    assert contents[1]["role"] == "model"
    assert model_parts[0]["thoughtSignature"] == signatures["call_0"]
    assert all("thoughtSignature" not in p for p in model_parts[1:])
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "generate_topic", "response": {"topic": "cats"}}}] * 3}


@pytest.mark.parametrize("name", sorted(BLOCKED))
def test_blocked_prompt_is_a_content_filtered_error(name: str) -> None:
    reason, said = BLOCKED[name]
    body = CAPTURES.body(name)
    with pytest.raises(ContentFilteredError) as caught:
        wire.parse_chat_response(_provider(), REQUEST, json.loads(body))
    error = caught.value
    assert isinstance(error, BadRequestError)  # existing handlers still catch it
    assert (error.code, error.status, error.retryable) == (reason, 200, False)
    assert f"the prompt was blocked ({reason})" in error.message
    if said is not None:
        assert said in error.message
    assert error.body["promptFeedback"]["blockReason"] == reason
    # streamed, the same body as one SSE event raises the same error
    with pytest.raises(ContentFilteredError, match=reason):
        _session_decode([b"data: " + json.dumps(json.loads(body)).encode() + b"\r\n\r\n"])


def test_fixture_requests_match_what_the_plugin_builds() -> None:
    provider = _provider()
    generate = CAPTURES.request("pai-generate-text.json")
    built = wire.build_chat_request(provider, ChatRequest(
        model="gemini-2.5-flash",
        messages=[Message.system("You are a chatbot."), Message.user("Hello!")],
        extra={"generationConfig": {"responseModalities": ["TEXT"]}}), stream=False)
    assert built.url == generate["url"]
    expected = dict(generate["body"])
    expected["systemInstruction"] = {"parts": expected["systemInstruction"]["parts"]}
    assert built.json == expected

    capped = CAPTURES.request("pai-finish-max-tokens.json")
    built = wire.build_chat_request(provider, ChatRequest(
        model="gemini-2.5-flash", max_tokens=5,
        messages=[Message.system("You are a helpful chatbot."),
                  Message.user("What is the capital of France?")],
        extra={"generationConfig": {"responseModalities": ["TEXT"],
                                    "thinkingConfig": {"thinking_budget": 0}}}), stream=False)
    expected = dict(capped["body"])
    expected["systemInstruction"] = {"parts": expected["systemInstruction"]["parts"]}
    assert built.json == expected

    for name, model in [("pai-stream-text.json", "gemini-2.0-flash-exp"),
                        ("pai-stream-thinking.json", "gemini-2.5-pro")]:
        built = wire.build_chat_request(provider, ChatRequest(
            model=model, messages=[Message.user("x")]), stream=True)
        assert built.url == CAPTURES.request(name)["url"]
    # tidyllm put the key in the URL (?key=); the plugin never does.
    assert "?key=" in CAPTURES.request("tidyllm-generate-text-2024.json")["url"]
    built = wire.build_chat_request(provider, REQUEST, stream=False)
    assert "key" not in built.url


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_fixture(name: str) -> None:
    status, headers, body = CAPTURES.response(name)
    expect = ERRORS[name]
    assert status == expect.status
    data = json.loads(body)
    error = wire.map_error(_provider(), status, headers, data, None, NOW)
    kind = {403: PermissionDeniedError, 404: NotFoundError}.get(status, BadRequestError)
    assert type(error) is kind
    # a 403 is an AuthenticationError, whose code is its AuthErrorCode
    code = "scope_insufficient" if status == 403 else expect.code
    assert (error.status, error.code) == (expect.status, code)
    assert error.message.startswith(expect.message)
    assert not error.retryable
    assert error.provider == "gemini"
    assert error.body == data
    if status == 404:
        assert "check the model name and base_url" in error.message
    if status == 403:
        assert "lacks permission" in error.message

    through = _engine().error(status, {**headers, "x-goog-request-id": "g-9"}, body.encode())
    assert type(through) is kind
    assert (through.code, through.status, through.message) == (
        error.code, error.status, error.message)
    assert through.request_id == "g-9"


def test_no_fixture_carries_rate_limit_headers() -> None:
    for name in sorted(COVERED):
        if name.endswith(".json") and "request" in CAPTURES.interaction(name):
            status, headers, _ = CAPTURES.response(name)
            assert wire.parse_rate_limits(status, headers, NOW) is None, name


# -- JSON-array streams (no alt=sse) ---------------------------------------------------------


def _array_engine() -> Engine:
    return make_engine(make_provider(GEMINI, stream_framing="json-array"),
                       {"gemini": aipk_gemini.plugin}, clock=lambda: NOW)


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_json_array_stream_fixture(name: str) -> None:
    rid, model, start, end, length, usage, reasoning, elements = ARRAYS[name]
    body, headers = CAPTURES.body_and_headers(name)
    assert headers["content-type"] == "application/json; charset=UTF-8"
    assert body.startswith(b"[{") and body.endswith(b"}\n]")
    assert body.count(b"\n,\r\n") == elements - 1
    # one HTTP chunk per element, as Google flushes them
    pieces = [p if i == 0 else b"\n,\r\n" + p for i, p in enumerate(body.split(b"\n,\r\n"))]
    events, response = replay_stream(_array_engine(), REQUEST, pieces, headers)
    assert (response.id, response.model) == (rid, model)
    assert response.text.startswith(start) and response.text.endswith(end)
    assert len(response.text) == length
    assert response.finish_reason is STOP and response.raw_finish_reason == "STOP"
    assert response.usage == usage
    assert [e for e in events if type(e) is FinishEvent] == [FinishEvent(reason=STOP, raw="STOP")]
    if reasoning is None:
        assert response.reasoning is None
    else:
        assert response.reasoning is not None and response.reasoning.startswith(reasoning)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(ARRAYS)),
       cuts=st.lists(st.integers(min_value=1, max_value=20_000), max_size=25))
def test_json_array_stream_any_split_gives_the_same_events(name: str, cuts: list[int]) -> None:
    body = CAPTURES.body(name)
    whole = replay_stream(_array_engine(), REQUEST, [body])
    assert replay_stream(_array_engine(), REQUEST, split_at(body, cuts)) == whole


@pytest.mark.parametrize("name", sorted(ARRAY_CALLS))
def test_json_array_function_call_with_thought_signature(name: str) -> None:
    rid, model, call_id, call_name, args, usage, signature, elements = ARRAY_CALLS[name]
    body, headers = CAPTURES.body_and_headers(name)
    assert body.count(b"\n,\r\n") == elements - 1
    events, response = replay_stream(_array_engine(), REQUEST, [body], headers)
    assert (response.id, response.model) == (rid, model)
    [call] = response.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (call_id, call_name, args)
    assert [e for e in events if type(e) is ToolCallDelta] == [ToolCallDelta(
        index=0, id=call_id, name=call_name, arguments=call.arguments)]
    assert response.text == "" and response.reasoning is None
    assert (response.finish_reason, response.raw_finish_reason) == (
        FinishReason.TOOL_CALLS, "STOP")
    assert response.usage == usage
    signatures = response.extra["functionCallSignatures"]
    assert list(signatures) == [call_id] and signatures[call_id].startswith(signature)
    assert "thoughtSignature" not in response.extra  # the empty last text part has none
    # the signature goes back on that call's part in the next turn, as llm-gemini sent it
    follow_up = Message(role="assistant", content=None, tool_calls=response.tool_calls,
                        extra=response.extra)
    request = ChatRequest(model=model, messages=[
        Message.user("hi"), follow_up, Message.tool(call_id, "15", name=call_name)])
    parts = wire.build_chat_body(_provider(), request)["contents"][1]["parts"]
    assert parts == [{"functionCall": {"name": call_name, "args": args},
                      "thoughtSignature": signatures[call_id]}]
    # any split of the array gives the same events
    for cut in range(1, len(body), max(1, len(body) // 40)):
        assert replay_stream(_array_engine(), REQUEST, [body[:cut], body[cut:]])[0] == events


def test_signature_sent_back_is_the_one_llm_gemini_sent() -> None:
    _, response = replay_stream(_array_engine(), REQUEST,
                                [CAPTURES.body("llmg-stream-array-call-thought-signature.json")])
    sent = json.loads(CAPTURES.request("llmg-stream-array-after-function-response.json")["body"])
    [echoed] = [p for p in sent["contents"][1]["parts"] if "function_call" in p]
    assert response.extra["functionCallSignatures"]["call_0"] == echoed["thoughtSignature"]


def test_json_array_stream_cut_before_its_end_is_a_response_error() -> None:
    body = CAPTURES.body("lcgo-stream-array-enum-int.json")
    first = body[:body.index(b"\n,\r\n")]
    with pytest.raises(IncompleteStreamError, match="before its terminator"):
        replay_stream(_array_engine(), REQUEST, [first + b"\n,\r\n"])
    with pytest.raises(IncompleteStreamError, match="in the middle of an event"):
        replay_stream(_array_engine(), REQUEST, [body[:len(body) // 2]])


def test_json_array_body_read_as_sse_is_not_silently_empty() -> None:
    body = CAPTURES.body("llmg-stream-array-thinking.json")
    with pytest.raises(ResponseError):  # labelled an event stream: SSE finds no finishReason
        _session_decode([body], {"content-type": "text/event-stream"})
    # labelled JSON or not at all (a server that ignored alt=sse): read as the array it is
    whole = replay_stream(_array_engine(), REQUEST, [body])[1]
    for headers in ({"content-type": "application/json; charset=UTF-8"}, {}):
        response = _session_decode([body], headers)[1]
        assert response.text == whole.text and response.finish_reason == whole.finish_reason


def test_json_array_option_requests_the_stream_without_alt_sse() -> None:
    captured = CAPTURES.request("llmg-stream-array-thinking.json")["url"]
    provider = make_provider(GEMINI, stream_framing="json-array")
    request = ChatRequest(model="gemini-flash-latest", messages=[Message.user("hi")])
    built = wire.build_chat_request(provider, request, stream=True)
    assert built.url == captured  # .../models/gemini-flash-latest:streamGenerateContent
    assert built.headers["accept"] == "application/json"
    assert wire.build_chat_request(_provider(), request, stream=True).url.endswith("?alt=sse")
    with pytest.raises(ConfigurationError, match="stream_framing='sse'"):
        wire.build_chat_request(make_provider(GEMINI, stream_framing="xml"), request, True)

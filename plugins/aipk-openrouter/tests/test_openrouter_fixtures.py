"""Every OpenRouter capture in ``tests/fixtures/openrouter/`` decoded through the real hooks
(aipk-openai plus this plugin), with expected values written out by hand from the fixture.

A meta-test fails when a fixture file is added without an expectation here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk_openai.plugin
import aipk_openrouter.plugin
from aipk import (
    ChatRequest,
    FinishEvent,
    FinishReason,
    Message,
    Provider,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Tool,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from aipk._core import Engine
from aipk.errors import RateLimitError, StreamError
from aipk.sse import SSEDecoder
from aipk_openrouter import OPENROUTER, OpenRouterStreamDecoder
from aipk_testkit.fixtures import (
    Captures,
    find_fixtures,
    flatten_headers,
    make_engine,
    make_provider,
    manifest_names,
)

FIXTURES = find_fixtures(__file__)
OR_DIR = FIXTURES / "openrouter"
CAPTURES = Captures(OR_DIR)
NOW = 1_700_000_000.0


def _provider() -> Provider:
    return make_provider(OPENROUTER)


def _engine() -> Engine:
    plugins = {"openai": aipk_openai.plugin, "openrouter": aipk_openrouter.plugin}
    return make_engine(OPENROUTER, plugins, clock=lambda: NOW)


def _request_of(body: dict[str, Any]) -> ChatRequest:
    known = {"model", "messages", "stream", "stream_options", "tools", "tool_choice"}
    tools = [Tool(name=t["function"]["name"], description=t["function"]["description"],
                  parameters=t["function"]["parameters"]) for t in body.get("tools", ())]
    return ChatRequest(model=body["model"], messages=body["messages"], tools=tools,
                       tool_choice=body.get("tool_choice"),
                       extra={k: v for k, v in body.items() if k not in known})


CHAT_BODIES = ("pai-chat-text.json", "pai-chat-tool-call.json", "pai-chat-usage-cost.json")
ERRORS = ("pai-error-429-upstream-rate-limit.json",)
STREAM_ERROR = ("pai-stream-error-in-chunk.json", "pai-stream-error-in-chunk.sse")
STREAM_REASONING = ("pai-stream-reasoning.json", "pai-stream-reasoning.sse")
STREAM_PARALLEL = "lcgo-stream-parallel-calls-one-chunk.json"
PADDED_BODY = "lcgo-chat-reasoning-whitespace-padded.json"
COVERED = {*CHAT_BODIES, *ERRORS, *STREAM_ERROR, *STREAM_REASONING, STREAM_PARALLEL,
           PADDED_BODY}


# -- meta ------------------------------------------------------------------------------------


def test_every_openrouter_fixture_is_covered() -> None:
    assert CAPTURES.names() == COVERED


def test_manifest_lists_exactly_the_openrouter_fixtures() -> None:
    listed = manifest_names(FIXTURES, "openrouter")
    assert listed == COVERED


@pytest.mark.parametrize("pair", [STREAM_ERROR, STREAM_REASONING])
def test_sse_files_are_the_interaction_bodies(pair: tuple[str, str]) -> None:
    assert CAPTURES.body(pair[0]) == CAPTURES.body(pair[1])


@pytest.mark.parametrize("name", sorted(n for n in COVERED if n.endswith(".json")
                                         and n != PADDED_BODY))  # its content is a part list
def test_requests_we_build_match_the_captures(name: str) -> None:
    captured = CAPTURES.interaction(name)["request"]
    body = captured["body"]
    built, raw = _engine().build(_request_of(body), stream=bool(body.get("stream")))
    assert built.url == captured["url"] == "https://openrouter.ai/api/v1/chat/completions"
    assert raw is not None
    assert json.loads(raw) == {k: v for k, v in body.items() if v is not False}
    assert "http-referer" not in built.headers and "x-title" not in built.headers


# -- non-streaming bodies --------------------------------------------------------------------


def _chat(name: str) -> Any:
    data = CAPTURES.interaction(name)
    assert data["response"]["status"] == 200
    engine = _engine()
    headers = flatten_headers(data["response"]["headers"])
    state = engine.observe(200, headers, data["request"]["body"]["model"])
    assert state is None  # pydantic-ai cassettes strip x-ratelimit-* headers
    return engine.chat_response(_request_of(data["request"]["body"]), CAPTURES.body(name),
                                headers, state)


def test_text_body() -> None:
    reply = _chat("pai-chat-text.json")
    assert reply.provider == "openrouter"
    assert reply.id == "gen-1759510642-J9qupM2EtKoYTfG7ehDn"
    assert reply.model == "google/gemini-2.5-flash-lite"
    assert reply.text == ("Why did the train break up with the track?\n\nBecause it felt like "
                          "their relationship was going nowhere.")
    assert reply.reasoning is None and reply.refusal is None and reply.tool_calls == ()
    assert (reply.finish_reason, reply.raw_finish_reason) == (FinishReason.STOP, "stop")
    assert reply.usage == Usage(input_tokens=31, output_tokens=21, total_tokens=52,
                                reasoning_tokens=0, cache_read_tokens=0)
    assert reply.extra == {"upstream_provider": "Google", "native_finish_reason": "STOP"}


def test_tool_call_body() -> None:
    reply = _chat("pai-chat-tool-call.json")
    assert reply.id == "gen-1762047030-dJUcJW4ildNGqK4UV6iJ"
    assert reply.model == "mistralai/mistral-small"
    assert reply.message.content == ""
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("3sniiMddS", "divide", '{"numerator": 123, "denominator": 456, "on_inf": "infinity"}')]
    assert (reply.finish_reason, reply.raw_finish_reason) == (FinishReason.TOOL_CALLS,
                                                              "tool_calls")
    assert reply.usage == Usage(input_tokens=134, output_tokens=43, total_tokens=177)
    assert reply.extra == {"upstream_provider": "Mistral", "native_finish_reason": "tool_calls"}


def test_usage_body_with_reasoning_details() -> None:
    reply = _chat("pai-chat-usage-cost.json")
    assert reply.id == "gen-1762789695-8IngOktYUifJqeBs0mwc"
    assert reply.model == "openai/gpt-5-mini"
    assert reply.text.startswith("Brief summary\n- Venus is the second planet from the Sun")
    assert reply.text.endswith("Which would you prefer?")
    assert reply.reasoning is not None
    assert reply.reasoning.startswith("**Exploring Venus**\n\nThe user wants a concise yet")
    assert reply.finish_reason is FinishReason.STOP
    assert reply.usage == Usage(input_tokens=17, output_tokens=1515, total_tokens=1532,
                                reasoning_tokens=704)
    assert reply.extra["upstream_provider"] == "OpenAI"
    assert reply.extra["native_finish_reason"] == "completed"
    details = reply.extra["reasoning_details"]
    assert [d["type"] for d in details] == ["reasoning.summary", "reasoning.encrypted"]
    assert details[1]["id"] == "rs_0f2864c6e4889623016912094071dc81979635e33414ef8729"
    # Despite the manifest's description, this capture's usage carries no cost field.
    assert "cost" not in json.loads(CAPTURES.body("pai-chat-usage-cost.json"))["usage"]
    assert "cost" not in reply.extra


# -- errors ----------------------------------------------------------------------------------


def test_429_upstream_rate_limit() -> None:
    data = CAPTURES.interaction("pai-error-429-upstream-rate-limit.json")
    status, headers = data["response"]["status"], flatten_headers(data["response"]["headers"])
    assert status == 429
    error = _engine().error(status, headers,
                            CAPTURES.body("pai-error-429-upstream-rate-limit.json"))
    assert type(error) is RateLimitError
    assert error.status == 429 and error.code == "429"
    assert error.message == (
        "Provider returned error: (Google) google/gemini-2.0-flash-exp:free is temporarily "
        "rate-limited upstream. Please retry shortly, or add your own key to accumulate your "
        "rate limits: https://openrouter.ai/settings/integrations")
    assert error.retryable
    assert error.retry_after is None  # no retry-after header, no metadata.headers
    assert error.provider == "openrouter"
    assert error.body["user_id"] == "user_2wT5ElBE4Es3R4QrNLpZiXICmQP"


# -- streams ---------------------------------------------------------------------------------


def _manual(raw: bytes) -> tuple[list[StreamEvent], OpenRouterStreamDecoder, int,
                                 StreamError | None]:
    """SSEDecoder -> OpenRouterStreamDecoder event by event, keeping what came before an
    error; returns events, the decoder, how many SSE events there were, and the error."""
    sse = [*SSEDecoder().feed(raw)]
    decoder = OpenRouterStreamDecoder(_provider())
    events: list[StreamEvent] = []
    for event in sse:
        try:
            events.extend(decoder.feed(event))
        except StreamError as exc:
            return events, decoder, len(sse), exc
    events.extend(decoder.close())
    return events, decoder, len(sse), None


@pytest.mark.parametrize("name", STREAM_ERROR)
def test_stream_error_in_chunk(name: str) -> None:
    raw = CAPTURES.body(name)
    assert raw.count(b": OPENROUTER PROCESSING\n") == 17
    events, decoder, sse_count, error = _manual(raw)
    assert sse_count == 5  # 4 data chunks and [DONE]; the 17 comment lines yield nothing
    assert events == [
        ReasoningDelta(text="We need"),
        ReasoningDelta(text=" to respond to a greeting. The user"),
        FinishEvent(reason=FinishReason.LENGTH, raw="length"),
        FinishEvent(reason=FinishReason.LENGTH, raw="length"),
    ]
    assert error is not None
    assert error.message == "Token limit reached"
    assert error.code == "400" and not error.retryable
    assert error.body == {"code": 400, "message": "Token limit reached"}
    assert decoder.extra == {
        "upstream_provider": "Minimax", "native_finish_reason": "length",
        "reasoning_details": [{"type": "reasoning.text", "index": 0, "format": None,
                               "text": "We need to respond to a greeting. The user"}]}
    assert decoder.model == "minimax/minimax-m2:free"

    # Through the engine's stream session: a StreamError stamped with the request id.
    session = _engine().open_stream(ChatRequest(model="minimax/minimax-m2:free",
                                                messages=[{"role": "user", "content": "Hi"}]),
                                    {"x-request-id": "req_or_1"}, None)
    delivered = session.feed(raw)  # the events before the error come first
    assert delivered == events[:len(delivered)] and delivered
    with pytest.raises(StreamError, match="Token limit reached") as info:
        session.finish()
    assert info.value.request_id == "req_or_1"


REASONING = "This is a simple arithmetic question. 2+2 equals 4."


def _session(pieces: Sequence[bytes]) -> tuple[list[StreamEvent], Any]:
    session = _engine().open_stream(
        ChatRequest(model="anthropic/claude-sonnet-4.5",
                    messages=[{"role": "user", "content": "What is 2+2?"}]), {}, None)
    events: list[StreamEvent] = []
    for piece in pieces:
        events.extend(session.feed(piece))
    events.extend(session.finish())
    return events, session.response()


#: The stream's extra: as a non-streamed answer's, its reasoning_details fragments merged into
#: one entry whose signature (sent in a fragment of its own) is kept for the next turn.
STREAM_REASONING_EXTRA = {
    "upstream_provider": "Google", "cost": 0.000669, "native_finish_reason": "stop",
    "reasoning_details": [{
        "type": "reasoning.text", "text": "This is a simple arithmetic question. 2+2 equals 4.",
        "signature": "Et0BCkgIChACGAIqQA2s7h7tA7IG35fbwVkou9PM2hANVJNUwcEM4q12fTRDK6y3v6YoEvJ+7bk"
                     "o8wnW/GLsQFXadaJPAEMCpLkhI9ISDLjFkeR1aVUIvdCtyBoMrUTovh0jwk+wpnZWIjANV3e6V"
                     "VdgbGSsEyyTHO6KMmVtqqs79f9blnVdJmmMIwMyTi6bEtG59+jTU7v1zlsqQ2IKGZILOlr6adh0"
                     "Aam7zYttvisys+wjyZZXU1y/Srz0nmp1cFgVOJe1BLKQI3SSRrjsqQC0uAEUZy0GX0Rq1AXjvI"
                     "cYAQ==",
        "format": "anthropic-claude-v1", "index": 0}],
}


@pytest.mark.parametrize("name", STREAM_REASONING)
def test_stream_reasoning(name: str) -> None:
    raw = CAPTURES.body(name)
    events, response = _session([raw])
    assert [e.text for e in events if type(e) is ReasoningDelta] == [
        "This", " is a simple arithmetic question. ", "2+2 equals 4."]
    assert [e.text for e in events if type(e) is TextDelta] == ["2 ", "+ 2 = 4"]
    assert [e for e in events if type(e) is FinishEvent] == [
        FinishEvent(reason=FinishReason.STOP, raw="stop")]
    usage = Usage(input_tokens=43, output_tokens=36, total_tokens=79, reasoning_tokens=13,
                  cache_read_tokens=0)
    assert events[-1] == UsageEvent(usage=usage)
    assert response.id == "gen-1765226419-AGrwjunAftQIAgweibL8"
    assert response.model == "anthropic/claude-sonnet-4.5"
    assert (response.text, response.reasoning) == ("2 + 2 = 4", REASONING)
    assert response.usage == usage
    assert response.extra == STREAM_REASONING_EXTRA
    assert response.cost == 0.000669

    manual, decoder, sse_count, error = _manual(raw)
    assert error is None and sse_count == 15 and decoder.done
    assert manual == events


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, len(CAPTURES.body("pai-stream-reasoning.sse")) - 1),
                     max_size=40))
def test_stream_reasoning_any_chunking(cuts: list[int]) -> None:
    raw = CAPTURES.body("pai-stream-reasoning.sse")
    points = sorted(set(cuts))
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    whole_events, whole = _session([raw])
    events, response = _session(pieces)
    assert events == whole_events
    assert response.extra == whole.extra == STREAM_REASONING_EXTRA


def test_parallel_calls_whole_in_one_chunk_with_the_finish() -> None:
    """Gemini through OpenRouter: both calls, whole, and the finish reason in one chunk; the
    usage (with the cost) in a chunk of its own whose choice is empty."""
    body, headers = CAPTURES.body_and_headers(STREAM_PARALLEL)
    assert headers["content-type"] == "text/event-stream"
    events, response = _session([body])
    deltas = [e for e in events if type(e) is ToolCallDelta]
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, "tool_getCurrentWeather_3lhCz5SSaZG604yaibNB", "getCurrentWeather",
         '{"location":"Boston, MA"}'),
        (1, "tool_getCurrentTime_ljJXl2E9hr87YwAgPI1B", "getCurrentTime",
         '{"location":"Boston, MA"}')]
    assert [c.parsed_arguments() for c in response.tool_calls] == [{"location": "Boston, MA"}] * 2
    assert (response.finish_reason, response.raw_finish_reason) == (
        FinishReason.TOOL_CALLS, "tool_calls")
    assert response.text == "" and response.message.content is None
    assert response.usage == Usage(input_tokens=71, output_tokens=12, total_tokens=83,
                                   reasoning_tokens=0, cache_read_tokens=0)
    assert response.extra == {"upstream_provider": "Google", "native_finish_reason": "STOP",
                              "cost": 0.0000513}
    assert response.cost == 0.0000513  # as a non-streamed answer's: the cost OpenRouter reported
    assert response.id == "gen-1769111920-C4gWchv6Vg3abgcZ92D5"
    for cut in range(1, len(body), 37):
        assert _session([body[:cut], body[cut:]])[0] == events


def test_body_after_whitespace_keep_alive_lines_with_reasoning() -> None:
    """A non-streamed answer OpenRouter kept alive with whitespace lines before the JSON (as it
    does while the upstream thinks): read as the JSON it ends in, reasoning and all."""
    status, headers, text = CAPTURES.response(PADDED_BODY)
    assert status == 200 and text.startswith("\n         \n") and text.count("\n") > 50
    request = ChatRequest(model="deepseek/deepseek-r1", messages=[Message.user("hi")])
    reply = _engine().chat_response(request,
                                    text.encode(), headers, None)
    assert reply.id == "gen-1769111316-V8iQb6OJXl7jB10Q9jEW"
    assert reply.text.startswith("You are a **domestic dog** (*Canis lupus familiaris*)")
    assert reply.text.endswith("Spitz-type dogs! \U0001f43e")
    assert reply.reasoning is not None
    assert reply.reasoning.startswith("Okay, let's see. The user says they're a Pomeranian")
    assert (reply.finish_reason, reply.raw_finish_reason) == (FinishReason.STOP, "stop")
    assert reply.usage == Usage(input_tokens=19, output_tokens=600, total_tokens=619,
                                reasoning_tokens=443, cache_read_tokens=0)
    assert reply.extra["upstream_provider"] == "Novita"
    assert reply.extra["native_finish_reason"] == "stop"
    assert reply.cost == 0.0015133
    [details] = reply.extra["reasoning_details"]
    assert details["text"] == reply.reasoning and details["type"] == "reasoning.text"


@pytest.mark.parametrize("streamed", [False, True], ids=["answer", "stream"])
def test_reasoning_details_go_back_with_the_assistant_message(streamed: bool) -> None:
    if streamed:
        _, reply = _session([CAPTURES.body("pai-stream-reasoning.sse")])
        expected = STREAM_REASONING_EXTRA["reasoning_details"]
    else:
        reply = _chat("pai-chat-usage-cost.json")
        expected = reply.extra["reasoning_details"]
    assert reply.message.extra["reasoning_details"] == expected
    follow_up = ChatRequest(model="anthropic/claude-sonnet-4.5", messages=[
        {"role": "user", "content": "What is 2+2?"}, reply.message,
        {"role": "user", "content": "And 3+3?"}])
    body = _engine().prepare(follow_up, stream=False).json
    assert body["messages"][1]["role"] == "assistant"
    assert body["messages"][1]["reasoning_details"] == expected
    assert "reasoning_details" not in body["messages"][0]
    assert "reasoning_details" not in body["messages"][2]
    plain = ChatRequest(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert "reasoning_details" not in json.dumps(_engine().prepare(plain, stream=False).json)

"""Every captured Anthropic fixture in ``tests/fixtures/anthropic/`` decoded by the plugin, with
the expected values written out by hand from the fixture (not computed by the code under test).

A meta-test fails when a fixture file is added without an expectation here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk_anthropic.plugin
from aipk import (
    ChatRequest,
    ChatResponse,
    FinishEvent,
    FinishReason,
    Message,
    Provider,
    ReasoningDelta,
    RefusalDelta,
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
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    StatusError,
)
from aipk_anthropic import ANTHROPIC, stream, tokens, wire
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
ANTHROPIC_DIR = FIXTURES / "anthropic"
CAPTURES = Captures(ANTHROPIC_DIR)
NOW = 1_700_000_000.0
REQUEST = ChatRequest(model="claude-sonnet-4-5", messages=[Message.user("hi")])


# -- helpers ---------------------------------------------------------------------------------


def _provider() -> Provider:
    return make_provider(ANTHROPIC)


def _engine(now: float = NOW) -> Engine:
    return make_engine(ANTHROPIC, {"anthropic": aipk_anthropic.plugin}, clock=lambda: now)


def _manual_decode(pieces: Sequence[bytes]) -> tuple[list[StreamEvent], StreamAccumulator,
                                                     stream.AnthropicStreamDecoder]:
    """SSEDecoder -> AnthropicStreamDecoder -> StreamAccumulator, then decoder.close()."""
    decoder = stream.AnthropicStreamDecoder(_provider())
    events = decode_sse(decoder, pieces)
    acc = StreamAccumulator()
    for item in events:
        acc.add(item)
    return events, acc, decoder


def _session_decode(pieces: Sequence[bytes], headers: Mapping[str, str] | None = None) -> (
        tuple[list[StreamEvent], ChatResponse]):
    return replay_stream(_engine(), REQUEST, pieces, headers)


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp()


# -- expectations, read by hand from the fixtures --------------------------------------------

#: (id, name, input): input is the parsed dict, or the exact argument text when the stream
#: cut the JSON short.
Call = tuple[str, str, "dict[str, Any] | str"]


@attrs.frozen
class Expect:
    id: str
    model: str
    text: str
    finish: FinishReason
    raw_finish: str
    usage: tuple[int, int]  # input, output
    cache: tuple[int | None, int | None] = (0, 0)  # cache read, cache write
    calls: tuple[Call, ...] = ()
    reasoning: str | None = None
    reasoning_tokens: int | None = None
    refusal: str | None = None
    signature: str | None = None


STOP, LENGTH, TOOLS, REFUSAL = (FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS,
                                FinishReason.REFUSAL)
NO_CACHE = (None, None)
HELLO = "Hello there!"
PARIS = "I'll check the current weather in Paris for you."
LONG_TEXT = (
    " there! Happy to explain.\n\n**Solar eclipses** happen when the Moon passes between the Sun "
    "and the Earth, casting a shadow that blocks some or all of the Sun's light for viewers "
    "inside it. They're one of the most dramatic sights in the sky.\n\nSome key points:\n\n**The "
    "three main types:**\n- Total (the Moon completely covers the Sun's disk)\n- Partial (only "
    "part of the Sun is covered)\n- Annular (the famous *ring of fire*)\n\n**Why they're so "
    "striking:**\n- Totality can turn day into twilight (for a few minutes), and the Sun's "
    "corona becomes visible to the naked eye\n- Temperatures can drop noticeably while the "
    "shadow passes over\n- Animals sometimes behave as if night has fallen\n\n**Viewing "
    "safely:**\n- **Certified eclipse glasses** are a must for looking at the Sun directly. "
    "Ordinary sunglasses are not safe, even very dark ones.\n- A pinhole projector is an easy, "
    "safe alternative.\n\n**Why they're rare:**\nThe Moon's shadow traces a (narrow) path across "
    "the Earth, so any given spot sees a total eclipse only about once every few centuries. "
    "That rarity is a big part of the excitement.\n\nIs there a particular angle you're curious "
    "about? For example, I'd be happy to go deeper on the history, the science of totality, "
    "safe viewing, or how they're portrayed in fiction. Just let me know what's sparking your "
    "interest!"
)
THINKING = (
    "Simple educational question about what a solar eclipse is. This is benign general "
    "knowledge — definitions are fine. Also the user called me \"claudius\" — I'm Claude. "
    "Minor correction or just roll with it politely."
)
TAX_ARGS = (
    '{"filename": "taxes.txt", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS '
    'WITH MULTIPLE W-2s",\n"",\n"## INTRODUCTION",\n"",\n"Filing taxes'
)

PAI_TEXT = Expect("msg_018E1hg8GoVTGEKQY3ovMcSJ", "claude-sonnet-4-5-20250929", "2", STOP,
                  "end_turn", (20, 5))
PAI_TOOL_SEARCH = Expect(
    "msg_01E3Wn1NynZw9FALZ68znj9S", "claude-sonnet-4-6",
    "Let me search for a tool that can provide current exchange rate information."
    "I found the right tool! Let me fetch the current USD to EUR exchange rate for you.",
    TOOLS, "tool_use", (1591, 175),
    calls=(("toolu_01EFn5wTNBYA8Reni8rbmnHT", "get_exchange_rate",
            {"from_currency": "USD", "to_currency": "EUR"}),))
STRUCTURED_RETRY = Expect("msg_013nnniYDrJDocdy5nrMU7cH", "claude-sonnet-4-5-20250929",
                          "[12345,67890]", STOP, "end_turn", (135, 10))
TOOL_CLIENT = Expect(
    "msg_01AusY9WEbCaj3N7Tv5J4YjH", "claude-haiku-4-5-20251001", "", TOOLS, "tool_use",
    (656, 74), calls=(("toolu_018acGYLtfR52q9yDbWaEdQZ", "get_weather",
                       {"location": "San Francisco, CA", "units": "f"}),))
TOOL_PARIS = Expect(
    "msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514", PARIS, TOOLS, "tool_use",
    (377, 65), calls=(("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", {"location": "Paris"}),))

#: Streams: raw SSE files, and interaction-json files whose body is the same SSE stream.
STREAMS: dict[str, Expect] = {
    "pai-stream-text.sse": PAI_TEXT,
    "pai-stream-text.json": PAI_TEXT,
    "pai-stream-tool-search-then-tool-use.sse": PAI_TOOL_SEARCH,
    "pai-stream-tool-search-then-tool-use.json": PAI_TOOL_SEARCH,
    "sdk-stream-structured-output-after-retry.sse": STRUCTURED_RETRY,
    "sdk-stream-structured-output-after-retry.json": STRUCTURED_RETRY,
    "sdk-stream-tool-use-client.sse": TOOL_CLIENT,
    "sdk-stream-tool-use-client.json": TOOL_CLIENT,
    "sdk-stream-tool-use.sse": TOOL_PARIS,
    "sdk-stream-tool-use-original-padded.sse": TOOL_PARIS,
    "sdk-stream-compaction-block.sse": Expect(
        "msg_01CompactionEncryptedContent01", "claude-opus-4-7", HELLO, STOP, "end_turn",
        (30, 8), NO_CACHE),
    "sdk-stream-fallback-block.sse": Expect(
        "msg_01FallbackModelRelabel000001", "claude-opus-4-7", HELLO, STOP, "end_turn", (25, 8),
        NO_CACHE),
    "sdk-stream-fallback-credit-usage.sse": Expect(
        "msg_01FallbackCreditUsage0000001", "claude-sonnet-4-5", HELLO, STOP, "end_turn",
        (25, 8), NO_CACHE),
    "sdk-stream-refusal-stop-details.sse": Expect(
        "msg_01RefusalTestMessage123456789", "claude-opus-4-7", "", REFUSAL, "refusal", (20, 0),
        NO_CACHE, refusal="This request was refused due to policy."),
    "sdk-stream-server-tool-then-refusal.sse": Expect(
        "msg_fixture_atool_0001", "claude-fable-5",
        "Here's a summary of this year's solar eclipses and how", REFUSAL, "refusal", (28, 106),
        reasoning_tokens=67, refusal=""),
    "sdk-stream-text-basic.sse": Expect(
        "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-latest", HELLO, STOP,
        "end_turn", (11, 6), NO_CACHE),
    "sdk-stream-text-long-padded.sse": Expect(
        "msg_fixture_b_0001", "claude-opus-4-8", LONG_TEXT, STOP, "end_turn", (31, 547),
        reasoning_tokens=0),
    "sdk-stream-thinking-then-refusal.sse": Expect(
        "msg_fixture_a_0001", "claude-fable-5", "Hi", REFUSAL, "refusal", (28, 106),
        reasoning=THINKING, reasoning_tokens=67, refusal="",
        signature="c3ludGhldGljLXNpZ25hdHVyZS1maXh0dXJlLWEtbm90LWEtcmVhbC1zaWduYXR1cmU="),
    "sdk-stream-tool-use-truncated-max-tokens.sse": Expect(
        "msg_01UdjYBBipA9omjYhicnevgq", "claude-3-7-sonnet-20250219",
        "I'll create a comprehensive tax guide for someone with multiple W2s and save it in a "
        "file called taxes.txt. Let me do that for you now.", LENGTH, "max_tokens", (450, 124),
        calls=(("toolu_01EKqbqmZrGRXy18eN7m9kvY", "make_file", TAX_ARGS),)),
}

TIDY_TEXT = ("Hello! How can I assist you today? Is there anything specific you'd like to know or "
             "discuss?")

#: Non-streaming ``message`` bodies (interaction-json, status 200).
MESSAGES: dict[str, Expect] = {
    "pai-stop-sequence.json": Expect(
        "msg_01376yZQxHcw9pER2Ab2SvQb", "claude-sonnet-4-5-20250929", "The beautiful city of ",
        STOP, "stop_sequence", (32, 5)),
    "pai-text-basic.json": Expect(
        "msg_01Fg1JVgvCYUHWsxrj9GkpEv", "claude-3-opus-20240229",
        "The capital of France is Paris.", STOP, "end_turn", (20, 10)),
    "pai-tool-use-parallel.json": Expect(
        "msg_011S3wxtqL5CVescWqS3zeg2", "claude-haiku-4-5-20251001",
        "I'll help you find out who is the youngest by retrieving information about each family "
        "member. I'll retrieve their entity information to compare their ages.", TOOLS,
        "tool_use", (423, 202),
        calls=(("toolu_0167cfEnoQaPviGdVXA95zcu", "retrieve_entity_info", {"name": "Alice"}),
               ("toolu_01EEe2V5HD1Ac4rKiUR4HD2T", "retrieve_entity_info", {"name": "Bob"}),
               ("toolu_01XFyAjstT3966qvRynZyVPo", "retrieve_entity_info", {"name": "Charlie"}),
               ("toolu_013mnQZbgtK2oe3Mo3XKJsx3", "retrieve_entity_info", {"name": "Daisy"}))),
    "pai-tool-use-single.json": Expect(
        "msg_012TXW181edhmR5JCsQRsBKx", "claude-sonnet-4-5-20250929", "", TOOLS, "tool_use",
        (445, 23), calls=(("toolu_01X9wcHKKAZD9tBC711xipPa", "get_user_country", {}),)),
    "sdk-structured-output-json.json": Expect(
        "msg_01EojSKby3oqoP7mb4PHsMJ7", "claude-sonnet-4-5-20250929",
        '{"name":"John Doe","age":30}', STOP, "end_turn", (222, 14)),
    "tidyllm-text-ratelimit-headers-2025-03.json": Expect(
        "msg_01MbyDCVWj1k6oBZxTbKd4qH", "claude-3-5-sonnet-20240620", TIDY_TEXT, STOP,
        "end_turn", (16, 24)),
    "tidyllm-text-ratelimit-headers.json": Expect(
        "msg_01QgNtCXZKCJgpWHW3NEwmdP", "claude-3-5-sonnet-20240620", TIDY_TEXT, STOP,
        "end_turn", (16, 24)),
}

#: The ``request-id`` header of the message bodies that carry one (pydantic-ai drops it).
REQUEST_IDS = {
    "tidyllm-text-ratelimit-headers-2025-03.json": "req_0189MaYtDHWeMgWcywdR2k3j",
    "tidyllm-text-ratelimit-headers.json": "req_011CSLsW7mFqvHHnzrKdKjAE",
}


@attrs.frozen
class ErrorExpect:
    status: int
    cls: type[Exception]
    code: str
    message: str
    request_id: str  # from the body's request_id (no request-id header survives)
    retryable: bool


ERRORS: dict[str, ErrorExpect] = {
    "pai-error-400-invalid-request.json": ErrorExpect(
        400, BadRequestError, "invalid_request_error",
        "This model does not support effort level 'xhigh'. Supported levels: high, low, max, "
        "medium.", "req_011Ca7jT9AHpgXgdv8igm4z9", False),
    "pai-error-404-not-found.json": ErrorExpect(
        404, NotFoundError, "not_found_error", "model: claude-does-not-exist",
        "req_011CVEA3SF7rnb3DuBZytqQa", False),
    "sdk-error-400-invalid-request.json": ErrorExpect(
        400, BadRequestError, "invalid_request_error",
        "messages.0.content.1: unexpected `tool_use_id` found in `tool_result` blocks: "
        "toolu_01GHndag5wQmbzNihYmV2UBj. Each `tool_result` block must have a corresponding "
        "`tool_use` block in the previous message.", "req_011CYHyk9NPsBYeGbC9LuDNK", False),
    "sdk-error-429-rate-limit.json": ErrorExpect(
        429, RateLimitError, "rate_limit_error",
        "This request would exceed your organization's rate limit of 20,000,000 prompt bytes per "
        "hour (org: 5576611f-a1ee-427c-9800-298d9579899c, model: claude-sonnet-4-5-20250929).",
        "req_011CYK5n67SytMUxm8WMZUWY", True),
}


@attrs.frozen
class Window:
    limit: int
    remaining: int
    reset_at: float


#: anthropic-ratelimit-* headers (RFC 3339 resets), and a clock a few seconds before them.
RATE_LIMITS: dict[str, tuple[float, dict[str, Window]]] = {
    "tidyllm-text-ratelimit-headers-2025-03.json": (_utc(2025, 3, 21, 8, 22, 30), {
        "requests": Window(1000, 999, _utc(2025, 3, 21, 8, 22, 33)),
        "tokens": Window(96000, 96000, _utc(2025, 3, 21, 8, 22, 38)),
        "input_tokens": Window(80000, 80000, _utc(2025, 3, 21, 8, 22, 38)),
        "output_tokens": Window(16000, 16000, _utc(2025, 3, 21, 8, 22, 38)),
    }),
    "tidyllm-text-ratelimit-headers.json": (_utc(2025, 8, 21, 12, 40, 55), {
        "requests": Window(1000, 999, _utc(2025, 8, 21, 12, 40, 59)),
        "tokens": Window(96000, 96000, _utc(2025, 8, 21, 12, 40, 59)),
        "input_tokens": Window(80000, 80000, _utc(2025, 8, 21, 12, 40, 59)),
        "output_tokens": Window(16000, 16000, _utc(2025, 8, 21, 12, 41, 0)),
    }),
}

#: ``count_tokens`` answers: the count.
COUNTS: dict[str, int] = {
    "pai-count-tokens-basic.json": 16,
    "pai-count-tokens-tools-thinking.json": 671,
}



@attrs.frozen
class UsageExpect:
    """A stream whose usage is spread oddly over message_start and message_delta."""

    id: str
    text: str
    raw_finish: str | None
    usage: Usage
    calls: tuple[tuple[str, str, str], ...] = ()  # (id, name, exact argument text)


#: Usage that a count left out must leave None (never 0), and that must survive a
#: message_delta carrying only some counts (or no message_delta at all).
USAGE_STREAMS: dict[str, UsageExpect] = {
    "sdk-stream-usage-in-delta-only.sse": UsageExpect(
        "msg_usage_omitted", "Hello", "end_turn",
        Usage(input_tokens=12, output_tokens=6)),
    "sdk-stream-usage-no-input-count.sse": UsageExpect(
        "msg_usage_omitted_input", "Hello", "end_turn", Usage(output_tokens=6)),
    "sdk-stream-usage-delta-output-only.sse": UsageExpect(
        "msg_01MessageDeltaOmitted00000001", HELLO, "end_turn",
        Usage(input_tokens=40, output_tokens=8, cache_read_tokens=5, cache_write_tokens=10)),
    "sdk-stream-usage-in-delta-with-cache.sse": UsageExpect(
        "msg_test", "hi", "end_turn",
        Usage(input_tokens=19, output_tokens=1, cache_read_tokens=5, cache_write_tokens=3)),
    "sdk-stream-no-message-delta.sse": UsageExpect(
        "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "", None,
        Usage(input_tokens=11, output_tokens=1)),
    "sdk-stream-server-tool-use-input.sse": UsageExpect(
        "msg_01ServerToolUseInputJson", "Let me search for that.", "end_turn",
        Usage(input_tokens=42, output_tokens=40, cache_read_tokens=0, cache_write_tokens=0)),
    "sdk-stream-tool-use-invalid-json.sse": UsageExpect(
        "msg_019Q1hrJbZG26Fb9BQhrkHEr", PARIS, "tool_use",
        Usage(input_tokens=377, output_tokens=65, cache_read_tokens=0, cache_write_tokens=0),
        calls=(("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather",
                '{"location": "Paris", "unit": celsius}'),)),
    "sdk-stream-extra-fields.sse": UsageExpect(
        "msg_123", "Hello!", "end_turn", Usage(input_tokens=11, output_tokens=3)),
    "sdk-stream-container.sse": UsageExpect(
        "msg_01Gh8kQEinLbnrkVJ9BqrmyQ", "Running your code now.", "end_turn",
        Usage(input_tokens=11, output_tokens=6)),
    "sdk-stream-input-transformations.sse": UsageExpect(
        "msg_01InputTransformations00001", HELLO, "end_turn",
        Usage(input_tokens=25, output_tokens=8, cache_read_tokens=0, cache_write_tokens=0)),
    "sdk-stream-server-tool-results.sse": UsageExpect(  # the client call is content block 1
        "msg_server_tool_result_test", "", "tool_use",
        Usage(input_tokens=50, output_tokens=20, cache_read_tokens=0, cache_write_tokens=0),
        calls=(("tu_client_001", "ask_internal_tool", '{"query":"test"}'),)),
}

REDACTED_THINKING = ("pai-stream-redacted-thinking.json", "pai-stream-redacted-thinking.sse")

COVERED = (set(STREAMS) | set(MESSAGES) | set(ERRORS) | set(RATE_LIMITS) | set(COUNTS)
           | set(USAGE_STREAMS) | set(REDACTED_THINKING))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_count_tokens_fixture(name: str) -> None:
    status, headers, body = CAPTURES.response(name)
    assert status == 200
    assert tokens.parse_token_count(json.loads(body)) == COUNTS[name]
    captured = CAPTURES.request(name)
    assert captured["url"].split("?")[0].endswith("/v1/messages/count_tokens")
    sent = captured["body"]
    request = ChatRequest(model=sent["model"], messages=[Message.user("What is 2 + 2?")],
                          max_tokens=100, temperature=0.5, extra={
                              k: sent[k] for k in ("thinking", "tool_choice") if k in sent})
    built = tokens.build_count_tokens_request(_provider(), request)
    assert built.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert built.json["model"] == sent["model"]
    # what the endpoint refuses is left out; what it counts is kept
    assert not {"max_tokens", "temperature", "stream"} & set(built.json)
    assert {k: built.json[k] for k in ("thinking", "tool_choice") if k in sent} == {
        k: sent[k] for k in ("thinking", "tool_choice") if k in sent}
    # through the engine, as the client uses it
    engine = _engine()
    call = engine.prepare_count(request)
    assert call is not None
    count = engine.token_count(call, request, body.encode(), headers)
    assert (count.input_tokens, count.estimated) == (COUNTS[name], False)


# -- meta ------------------------------------------------------------------------------------


def test_every_anthropic_fixture_has_a_test() -> None:
    on_disk = CAPTURES.names()
    assert on_disk == COVERED


def test_manifest_lists_exactly_the_anthropic_fixtures() -> None:
    listed = manifest_names(FIXTURES, "anthropic")
    assert listed == COVERED


# -- shared checks ---------------------------------------------------------------------------


def _check(response: ChatResponse, expect: Expect) -> None:
    assert response.provider == "anthropic"
    assert response.id == expect.id
    assert response.model == expect.model
    assert response.text == expect.text
    assert response.finish_reason is expect.finish
    assert response.raw_finish_reason == expect.raw_finish
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == expect.usage
    assert usage.total_tokens == sum(expect.usage)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == expect.cache
    assert usage.reasoning_tokens == expect.reasoning_tokens
    assert response.reasoning == expect.reasoning
    assert response.refusal == expect.refusal
    calls = response.tool_calls
    assert [(c.id, c.name) for c in calls] == [(i, n) for i, n, _ in expect.calls]
    for call, (_, _, expected_input) in zip(calls, expect.calls, strict=True):
        if isinstance(expected_input, str):  # cut short by max_tokens: kept as produced
            assert call.arguments == expected_input
            with pytest.raises(InvalidRequestError):
                call.parsed_arguments()
        else:
            assert call.parsed_arguments() == expected_input
    assert response.message.content == (expect.text if expect.text or not expect.calls
                                         else None)
    if expect.signature is not None:
        assert response.extra["thinking_blocks"] == [
            {"type": "thinking", "thinking": expect.reasoning, "signature": expect.signature}]
    else:
        assert "thinking_blocks" not in response.extra


# -- streams ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_fixture(name: str) -> None:
    raw, headers = CAPTURES.body_and_headers(name)
    expect = STREAMS[name]
    events, response = _session_decode([raw], headers)
    _check(response, expect)

    # The same events from the bare pipeline (SSEDecoder -> decoder -> accumulator).
    manual, acc, decoder = _manual_decode([raw])
    assert manual == events
    assert decoder.done
    assert (decoder.response_id, decoder.model) == (expect.id, expect.model)
    assert acc.text() == expect.text

    kinds = {type(e) for e in events}
    assert (TextDelta in kinds) == bool(expect.text)
    assert (ReasoningDelta in kinds) == (expect.reasoning is not None)
    assert (RefusalDelta in kinds) == (expect.refusal is not None)
    assert [e for e in events if type(e) is FinishEvent] == [
        FinishEvent(reason=expect.finish, raw=expect.raw_finish)]
    usages = [e for e in events if type(e) is UsageEvent]
    # message_start's counts just before the first content (the input is billed from there),
    # then message_delta's, merged with them, last
    assert 1 <= len(usages) <= 2
    if len(usages) == 2:
        assert events.index(usages[0]) == min(i for i, e in enumerate(events)
                                              if type(e) is not UsageEvent) - 1
        assert usages[0].usage.input_tokens is not None
    assert type(events[-1]) is UsageEvent
    # Tool calls: numbered 0, 1, … in order; id and name only on the first fragment.
    deltas = [e for e in events if type(e) is ToolCallDelta]
    assert sorted({d.index for d in deltas}) == list(range(len(expect.calls)))
    for index, (call_id, call_name, _) in enumerate(expect.calls):
        mine = [d for d in deltas if d.index == index]
        assert (mine[0].id, mine[0].name, mine[0].arguments) == (call_id, call_name, "")
        assert all(d.id is None and d.name is None and d.arguments for d in mine[1:])


def test_server_tool_input_is_not_a_client_tool_call() -> None:
    """tool_search's server_tool_use block (index 1) is run by Anthropic; the client tool
    (content block 4) is tool call 0, with exactly its eight non-empty fragments."""
    events, response = _session_decode([CAPTURES.raw("pai-stream-tool-search-then-tool-use.sse")])
    deltas = [e for e in events if type(e) is ToolCallDelta]
    assert [d.index for d in deltas] == [0] * 9
    assert [d.arguments for d in deltas[1:]] == [
        '{"from_', "curre", 'ncy"', ': "US', 'D"', ', "', 'to_currency"', ': "EUR"}']
    assert "tool_search_tool_bm25" not in {c.name for c in response.tool_calls}


def test_thinking_stream_keeps_signature_for_the_next_turn() -> None:
    events, response = _session_decode([CAPTURES.raw("sdk-stream-thinking-then-refusal.sse")])
    reasoning = [e.text for e in events if type(e) is ReasoningDelta]
    assert reasoning[0] == "Simple educ"
    assert len(reasoning) == 3  # the empty fourth thinking_delta yields nothing
    follow_up = Message(role="assistant", content=response.text, extra=response.extra)
    request = ChatRequest(model="claude-sonnet-4-5", messages=[
        Message.user("What is an eclipse?"), follow_up, Message.user("Go on")])
    body = wire.build_messages_body(_provider(), request, stream=False)
    assert body["messages"][1]["content"][0] == {
        "type": "thinking", "thinking": THINKING,
        "signature": "c3ludGhldGljLXNpZ25hdHVyZS1maXh0dXJlLWEtbm90LWEtcmVhbC1zaWduYXR1cmU="}
    assert body["messages"][1]["content"][1] == {"type": "text", "text": "Hi"}


def test_stop_details_and_refusal_explanation_are_kept() -> None:
    _, response = _session_decode([CAPTURES.raw("sdk-stream-refusal-stop-details.sse")])
    assert response.extra["stop_details"] == {
        "type": "refusal", "category": "cyber",
        "explanation": "This request was refused due to policy."}


@pytest.mark.parametrize("name", sorted(USAGE_STREAMS))
def test_usage_stream_fixture(name: str) -> None:
    raw = CAPTURES.raw(name)
    expect = USAGE_STREAMS[name]
    events, response = _session_decode([raw])
    assert (response.id, response.text) == (expect.id, expect.text)
    assert response.raw_finish_reason == expect.raw_finish
    assert response.usage == expect.usage
    usages = [e.usage for e in events if type(e) is UsageEvent]
    assert usages[-1] == expect.usage  # the last replaces message_start's, just before content
    assert 1 <= len(usages) <= 2
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == list(expect.calls)
    assert response.reasoning is None and "thinking_blocks" not in response.extra
    # any chunking, down to one byte at a time, gives the same events
    assert _session_decode([raw[i:i + 1] for i in range(len(raw))])[0] == events


def test_tool_arguments_that_are_not_json_are_kept_and_refused_when_parsed() -> None:
    _, response = _session_decode([CAPTURES.raw("sdk-stream-tool-use-invalid-json.sse")])
    [call] = response.tool_calls
    with pytest.raises(InvalidRequestError):
        call.parsed_arguments()


@pytest.mark.parametrize("name", REDACTED_THINKING)
def test_redacted_thinking_stream_keeps_both_blocks_and_no_reasoning(name: str) -> None:
    raw, headers = CAPTURES.body_and_headers(name)
    events, response = _session_decode([raw], headers)
    assert (response.id, response.model) == ("msg_018XZkwvj9asBiffg3fXt88s",
                                            "claude-sonnet-4-5-20250929")
    assert response.text.startswith("I notice that you've sent what appears to be some kind of "
                                    "test string or command.")
    assert response.text.endswith("How can I assist you today with a legitimate task or "
                                  "question?")
    assert len([e for e in events if type(e) is TextDelta]) == 15
    assert not any(type(e) is ReasoningDelta for e in events)
    assert response.reasoning is None
    assert (response.finish_reason, response.raw_finish_reason) == (STOP, "end_turn")
    assert response.usage == Usage(input_tokens=92, output_tokens=189, cache_read_tokens=0,
                                   cache_write_tokens=0)
    blocks = response.extra["thinking_blocks"]
    assert [b["type"] for b in blocks] == ["redacted_thinking", "redacted_thinking"]
    assert blocks[0]["data"].startswith("EqkECkYIBxgCKkA8AZ4noDfV5VcOJe")
    assert blocks[1]["data"].endswith("Z1J0GAE=")
    # the blocks go back, unchanged and first, with the assistant turn
    follow_up = Message(role="assistant", content=response.text, extra=response.extra)
    request = ChatRequest(model="claude-sonnet-4-5", messages=[
        Message.user("hi"), follow_up, Message.user("Go on")])
    sent = wire.build_messages_body(_provider(), request, stream=False)["messages"][1]["content"]
    assert sent[:2] == blocks and sent[2] == {"type": "text", "text": response.text}


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 5000), max_size=30))
def test_redacted_thinking_any_chunking(cuts: list[int]) -> None:
    raw = CAPTURES.raw("pai-stream-redacted-thinking.sse")
    whole = _session_decode([raw])
    pieces = split_at(raw, cuts)
    again = _session_decode(pieces)
    assert again[0] == whole[0] and again[1] == whole[1]


@pytest.mark.parametrize("name", sorted(STREAMS))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stream_fixture_any_chunking(name: str, data: st.DataObject) -> None:
    raw, _ = CAPTURES.body_and_headers(name)
    whole, _ = _session_decode([raw])
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=40))
    pieces = split_at(raw, cuts)
    assert b"".join(pieces) == raw
    assert _session_decode(pieces)[0] == whole
    assert _manual_decode(pieces)[0] == whole


def test_stream_fixture_byte_by_byte_and_crlf() -> None:
    raw = CAPTURES.raw("sdk-stream-tool-use-original-padded.sse")
    whole = _session_decode([raw])[0]
    assert _session_decode([raw[i:i + 1] for i in range(len(raw))])[0] == whole
    crlf = raw.replace(b"\n", b"\r\n")
    assert _session_decode(split_at(crlf, range(5, len(crlf), 61)))[0] == whole


# -- non-streaming bodies --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_message_body_fixture(name: str) -> None:
    status, headers, body = CAPTURES.response(name)
    assert status == 200
    expect = MESSAGES[name]
    response = wire.parse_messages_response(_provider(), REQUEST, json.loads(body))
    _check(response, expect)

    # Through the engine (hooks): the same answer, plus request id and rate-limit state.
    now = RATE_LIMITS[name][0] if name in RATE_LIMITS else NOW
    engine = _engine(now)
    state = engine.observe(200, headers, REQUEST.model)
    through = engine.chat_response(REQUEST, body.encode("utf-8"), headers, state)
    _check(through, expect)
    assert through.request_id == REQUEST_IDS.get(name)
    assert through.rate_limit == state
    assert (state is not None) == (name in RATE_LIMITS)


def test_stop_sequence_value_is_kept() -> None:
    _, _, body = CAPTURES.response("pai-stop-sequence.json")
    response = wire.parse_messages_response(_provider(), REQUEST, json.loads(body))
    assert response.extra == {"stop_sequence": "Paris"}


def test_parallel_tool_arguments_are_json_of_the_input() -> None:
    _, _, body = CAPTURES.response("pai-tool-use-parallel.json")
    response = wire.parse_messages_response(_provider(), REQUEST, json.loads(body))
    assert [c.arguments for c in response.tool_calls] == [
        '{"name": "Alice"}', '{"name": "Bob"}', '{"name": "Charlie"}', '{"name": "Daisy"}']


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_fixture(name: str) -> None:
    status, headers, body = CAPTURES.response(name)
    expect = ERRORS[name]
    assert status == expect.status
    data = json.loads(body)
    error = wire.map_error(_provider(), status, headers, data, None, NOW)
    assert type(error) is expect.cls
    assert isinstance(error, StatusError)
    assert error.status == expect.status
    assert error.code == expect.code
    assert error.message.startswith(expect.message)
    assert error.retryable is expect.retryable
    assert error.request_id == expect.request_id
    assert error.provider == "anthropic"
    assert error.body == data
    if status == 404:
        assert "check the model name and base_url" in error.message
    if isinstance(error, RateLimitError):
        assert error.retry_after is None  # no retry-after header in the capture

    # Through the engine: the plugin's hook wins over the built-in fallback.
    through = _engine().error(status, headers, body.encode("utf-8"))
    assert type(through) is expect.cls
    assert isinstance(through, StatusError)
    assert (through.code, through.message, through.request_id) == (
        error.code, error.message, expect.request_id)


def test_request_id_header_wins_over_the_body() -> None:
    status, headers, body = CAPTURES.response("sdk-error-400-invalid-request.json")
    error = _engine().error(status, {**headers, "request-id": "req_header"}, body.encode())
    assert error.request_id == "req_header"
    assert "req_header" in str(error)


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RATE_LIMITS))
def test_rate_limit_headers(name: str) -> None:
    status, headers, _ = CAPTURES.response(name)
    now, windows = RATE_LIMITS[name]
    state = wire.parse_rate_limits(status, headers, now)
    assert state is not None
    got = state.windows()
    assert set(got) == set(windows)
    for field, want in windows.items():
        assert (got[field].limit, got[field].remaining) == (want.limit, want.remaining)
        assert got[field].reset_at == pytest.approx(want.reset_at)
    assert state.not_before is None
    assert state.observed_at == now


def test_resets_already_in_the_past_are_dropped() -> None:
    _, headers, _ = CAPTURES.response("tidyllm-text-ratelimit-headers-2025-03.json")
    state = wire.parse_rate_limits(200, headers, _utc(2025, 3, 21, 8, 22, 36))
    assert state is not None and state.requests is not None and state.tokens is not None
    assert state.requests.reset_at is None  # 08:22:33Z is 3 s before "now"
    assert state.requests.remaining == 999
    assert state.tokens.reset_at == pytest.approx(_utc(2025, 3, 21, 8, 22, 38))


def test_interactions_without_ratelimit_headers_give_no_state() -> None:
    for path in sorted(ANTHROPIC_DIR.glob("*.json")):
        if path.name in RATE_LIMITS:
            continue
        status, headers, _ = CAPTURES.response(path.name)
        assert wire.parse_rate_limits(status, headers, NOW) is None, path.name

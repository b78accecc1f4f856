"""The end-of-stream rule, property-based, on real captured streams of every protocol.

Whatever byte a real stream is cut at, and however the bytes before it are split into chunks:
a cut before the terminator arrived raises IncompleteStreamError whose partial text is a prefix
of the whole answer; the whole body decodes to the whole answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk_anthropic.plugin
import aipk_gemini.plugin
import aipk_openai.plugin
import aipk_openrouter.plugin
from aipk import ChatRequest, ChatResponse, IncompleteStreamError, Message
from aipk._core import Engine
from aipk_anthropic import ANTHROPIC
from aipk_gemini import GEMINI
from aipk_openai.plugin import OPENAI
from aipk_openrouter import OPENROUTER
from aipk_testkit.fixtures import Captures, find_fixtures, make_engine

FIXTURES = find_fixtures(__file__)
REQUEST = ChatRequest(model="m", messages=[Message.user("Hi")])
#: folder -> (engine factory, the bytes that start the terminator)
PROTOCOLS: dict[str, tuple[Any, bytes]] = {
    "openai": (lambda: make_engine(OPENAI, {"openai": aipk_openai.plugin}), b"data: [DONE]"),
    "openrouter": (lambda: make_engine(OPENROUTER, {"openai": aipk_openai.plugin,
                                                    "openrouter": aipk_openrouter.plugin}),
                   b"data: [DONE]"),
    "anthropic": (lambda: make_engine(ANTHROPIC, {"anthropic": aipk_anthropic.plugin}),
                  b"event: message_stop"),
    # Gemini has no terminator event: its last data line, the finishReason chunk, is the end
    "google": (lambda: make_engine(GEMINI, {"gemini": aipk_gemini.plugin}), b"data:"),
}
#: captures of other APIs (Responses) or ending in an in-band error
SKIP = {"pai-responses-stream-logprobs.sse", "pai-stream-error-in-chunk.sse"}
CASES = sorted((folder, name) for folder in PROTOCOLS
               for name in Captures(FIXTURES / folder).names()
               if name.endswith(".sse") and name not in SKIP)


def _decode(engine: Engine, raw: bytes, splits: list[int]) -> ChatResponse:
    session = engine.open_stream(REQUEST, {}, None)
    start = 0
    for end in sorted({*[s for s in splits if s < len(raw)], len(raw)}):
        session.feed(raw[start:end])
        start = end
    session.finish()
    return session.response()


def test_every_protocol_has_captures() -> None:
    assert {folder for folder, _ in CASES} == set(PROTOCOLS)
    assert len(CASES) >= 25


@pytest.mark.parametrize(("folder", "name"), CASES)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_cut_before_the_terminator_is_incomplete_and_keeps_a_prefix(
        folder: str, name: str, data: st.DataObject) -> None:
    factory, marker = PROTOCOLS[folder]
    raw = Captures(FIXTURES / folder).raw(name)
    whole = _decode(factory(), raw, [])
    terminator = raw.rindex(marker)
    cut = data.draw(st.integers(0, terminator), label="cut")
    splits = data.draw(st.lists(st.integers(1, max(cut, 1)), max_size=6), label="splits")
    with pytest.raises(IncompleteStreamError) as info:
        _decode(factory(), raw[:cut], splits)
    partial = info.value.partial
    assert whole.text.startswith(partial.text)
    assert len(partial.tool_calls) <= len(whole.tool_calls)
    assert info.value.retryable
    # and the whole body, split the same way, is the whole answer
    assert _decode(factory(), raw, splits).text == whole.text

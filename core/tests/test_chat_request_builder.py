"""`chat_request()` (what a client builds the ChatRequest of every keyword call with) is
``ChatRequest(**fields)``: the same record, or the same error, from any fields."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk import ChatRequest, Message, Tool
from aipk._messages import chat_request

_USER = Message.user("hi")
_ITERATOR = object()  # stands for a fresh iterator over messages (each build takes its own)

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["m", "", None, 3]),
    "messages": st.sampled_from([
        [_USER], (_USER,), [_USER, Message.system("be brief")], [], (),
        [{"role": "user", "content": "hi"}], [_USER, {"role": "developer", "content": "x"}],
        "hi", _USER, [{"role": "nobody"}], [3], None, 7, _ITERATOR,
    ]),
    "temperature": st.sampled_from([None, 0, 1.5, 2, 3, -1, "1", True, float("nan")]),
    "top_p": st.sampled_from([None, 0.5, 1, 2, "x"]),
    "max_tokens": st.sampled_from([None, 1, 100, 0, -2, 1.5, True, "8"]),
    "stop": st.sampled_from([None, "END", ["a", "b"], ("a",), [1], b"x", 4]),
    "tools": st.sampled_from([None, (), [], [Tool(name="t")], (Tool(name="t"),), "bad",
                              [{"type": "function", "function": {"name": "u"}}]]),
    "tool_choice": st.sampled_from([None, "auto", "required", "none", "bogus",
                                    {"type": "function", "function": {"name": "t"}}]),
    "parallel_tool_calls": st.sampled_from([None, True, False]),
    "extra": st.sampled_from([{}, {"seed": 1}, {"n": 2}, {"n": 0}, None]),
    "response_format": st.sampled_from([None, "json", {"type": "object"}, "nonsense"]),
    "temprature": st.just(1.0),  # not a field: a TypeError, as from ChatRequest itself
}


def _outcome(build: Any, fields: dict[str, Any]) -> Any:
    try:
        made = build(fields)
    except Exception as exc:  # the error itself is what is compared
        return ("error", type(exc), str(exc))
    assert type(made) is ChatRequest
    return ("made", made, [getattr(made, f.name) for f in attrs.fields(ChatRequest)])


@settings(max_examples=400)
@given(st.fixed_dictionaries({}, optional=_VALUES))
def test_chat_request_is_the_keyword_build(fields: dict[str, Any]) -> None:
    def fresh() -> dict[str, Any]:
        return {key: iter([_USER]) if value is _ITERATOR else value
                for key, value in fields.items()}

    assert _outcome(chat_request, fresh()) == _outcome(lambda f: ChatRequest(**f), fresh())


@given(st.fixed_dictionaries({"model": _VALUES["model"], "messages": _VALUES["messages"]}))
def test_chat_request_of_model_and_messages_alone_is_the_keyword_build(
        fields: dict[str, Any]) -> None:
    # the usual call, built on its own path (every other field at its default)
    test_chat_request_is_the_keyword_build.hypothesis.inner_test(fields)  # type: ignore[attr-defined]


def test_chat_request_covers_every_field() -> None:
    # chat_request stores each field itself: a new field must be stored there too
    assert [f.name for f in attrs.fields(ChatRequest)] == [
        "model", "messages", "temperature", "top_p", "max_tokens", "stop", "tools",
        "tool_choice", "parallel_tool_calls", "extra", "response_format"]
    assert not any(f.validator for f in attrs.fields(ChatRequest))


def test_a_built_request_is_a_frozen_chat_request_of_its_own() -> None:
    made = chat_request({"model": "m", "messages": [_USER]})
    assert type(made) is ChatRequest
    assert made == ChatRequest(model="m", messages=[_USER])
    assert made.extra == {} and made.extra is not chat_request(
        {"model": "m", "messages": [_USER]}).extra
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.model = "other"  # type: ignore[misc]

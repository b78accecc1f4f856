"""The attrs records: validation, converters, Secret, HttpRequest redaction, StreamAccumulator."""

from __future__ import annotations

import copy
import json
import pickle
import string

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipk._http import HttpRequest, Timeout, encode_json, redact_headers, redact_url
from aipk._messages import ChatRequest, Image, Message, Tool, ToolCall, ToolChoice
from aipk._providers import Credential, Secret
from aipk._responses import (
    ChatResponse,
    FinishEvent,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    StreamAccumulator,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from aipk.errors import ConfigurationError, InvalidRequestError

HELLO = [Message.user("hi")]


# --- Message -----------------------------------------------------------------------------------


def test_message_constructors() -> None:
    assert Message.system("be brief").role == "system"
    user = Message.user("look", images=[Image(url="https://x/y.png")])
    assert (user.role, user.content, len(user.images)) == ("user", "look", 1)
    call = ToolCall(id="c1", name="f")
    assistant = Message.assistant(tool_calls=[call])
    assert assistant.content is None
    assert assistant.tool_calls == (call,)
    tool = Message.tool("c1", "42", name="f")
    assert (tool.role, tool.tool_call_id, tool.content, tool.name) == ("tool", "c1", "42", "f")


def test_message_lists_become_tuples_and_records_are_frozen() -> None:
    msg = Message(role="assistant", tool_calls=[ToolCall(id="a", name="f")])
    assert isinstance(msg.tool_calls, tuple)
    assert isinstance(msg.images, tuple)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        msg.content = "x"  # type: ignore[misc]


@pytest.mark.parametrize("role", ["", "User", "bot", "developer", "function"])
def test_message_bad_role(role: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Message(role=role)  # type: ignore[arg-type]
    assert info.value.field == "role"
    assert repr(role) in str(info.value)


@pytest.mark.parametrize("tool_call_id", [None, ""])
def test_tool_message_needs_tool_call_id(tool_call_id: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Message(role="tool", content="42", tool_call_id=tool_call_id)
    assert info.value.field == "tool_call_id"
    assert "tool_call_id" in str(info.value)
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ValueError)


def test_coerce_openai_style_dicts() -> None:
    assert Message.coerce({"role": "user", "content": "hi"}) == Message.user("hi")
    msg = Message.user("x")
    assert Message.coerce(msg) is msg

    assistant = Message.coerce(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_time", "arguments": {"tz": "CET"}}},
                ToolCall(id="call_3", name="noop"),
            ],
        }
    )
    assert assistant.role == "assistant"
    assert assistant.content is None
    assert assistant.tool_calls[0] == ToolCall(
        id="call_1", name="get_weather", arguments='{"city": "Paris"}'
    )
    assert assistant.tool_calls[1].name == "get_time"
    assert json.loads(assistant.tool_calls[1].arguments) == {"tz": "CET"}
    assert assistant.tool_calls[2] == ToolCall(id="call_3", name="noop")

    tool = Message.coerce({"role": "tool", "tool_call_id": "call_1", "content": "18C",
                           "name": "get_weather"})
    assert tool == Message.tool("call_1", "18C", name="get_weather")


def test_coerce_rejects_bad_values() -> None:
    with pytest.raises(InvalidRequestError) as info:
        Message.coerce({"content": "no role"})
    assert info.value.field == "role"
    with pytest.raises(InvalidRequestError) as info:
        Message.coerce("hello")  # type: ignore[arg-type]
    assert info.value.field == "messages"
    assert "str" in str(info.value)
    with pytest.raises(InvalidRequestError) as info:
        Message.coerce({"role": "tool", "content": "x"})
    assert info.value.field == "tool_call_id"


_parts = st.lists(st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=20)),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}},
              st.from_regex(r"https://x\.test/[a-z]{1,8}\.png", fullmatch=True))), max_size=6)


@given(_parts)
def test_coerce_reads_openai_content_parts(parts: list[dict[str, object]]) -> None:
    message = Message.coerce({"role": "user", "content": parts})
    texts = [p["text"] for p in parts if p["type"] == "text"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]  # type: ignore[index]
    assert message.content == ("\n".join(texts) if texts else None)  # type: ignore[arg-type]
    assert [image.url for image in message.images] == urls


def test_coerce_maps_developer_to_system_and_refuses_other_parts_and_contents() -> None:
    assert Message.coerce({"role": "developer", "content": "be brief"}) == Message.system(
        "be brief")
    with pytest.raises(InvalidRequestError) as info:
        Message.coerce({"role": "user", "content": [{"type": "text", "text": "hi"},
                                                    {"type": "input_audio"}]})
    assert info.value.field == "content[1]" and "'input_audio'" in str(info.value)
    with pytest.raises(InvalidRequestError) as info:
        Message.coerce({"role": "user", "content": [{"type": "image_url", "image_url": {}}]})
    assert info.value.field == "content[0]" and "url" in str(info.value)
    for content in (123, {"text": "hi"}, b"hi"):
        with pytest.raises(InvalidRequestError) as info:
            Message.coerce({"role": "user", "content": content})
        assert info.value.field == "content"
    with pytest.raises(InvalidRequestError):
        Message.user(["a", "b"])  # type: ignore[arg-type]


# --- ToolCall ----------------------------------------------------------------------------------


def test_tool_call_parsed_arguments() -> None:
    assert ToolCall(id="c", name="f", arguments='{"a": [1, 2]}').parsed_arguments() == {"a": [1, 2]}
    assert ToolCall(id="c", name="f").parsed_arguments() == {}
    assert ToolCall(id="c", name="f", arguments="").parsed_arguments() == {}


def test_tool_call_parsed_arguments_error_names_the_call() -> None:
    call = ToolCall(id="call_9", name="get_weather", arguments='{"city": "Par')
    with pytest.raises(InvalidRequestError) as info:
        call.parsed_arguments()
    assert info.value.field == "arguments"
    assert "call_9" in str(info.value)
    assert "get_weather" in str(info.value)
    assert info.value.__cause__ is None


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
))
def test_tool_call_arguments_roundtrip(value: object) -> None:
    assert ToolCall(id="c", name="f", arguments=json.dumps(value)).parsed_arguments() == value


# --- Image -------------------------------------------------------------------------------------


def test_image_url_or_data() -> None:
    assert Image(url="https://example.com/cat.png").url == "https://example.com/cat.png"
    img = Image(data=b"\x89PNG" * 100, media_type="image/png")
    assert "400 bytes" in repr(img)
    assert "PNG" not in repr(img)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "image"),
        ({"url": "https://x/a.png", "data": b"x", "media_type": "image/png"}, "image"),
        ({"data": b"x"}, "media_type"),
        ({"data": b"x", "media_type": ""}, "media_type"),
    ],
)
def test_image_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Image(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


# --- Tool and ToolChoice -----------------------------------------------------------------------


def test_tool_defaults() -> None:
    tool = Tool(name="get_weather-2")
    assert tool.parameters == {"type": "object", "properties": {}}
    assert tool.description == ""
    assert Tool(name="t", parameters={"properties": {}}).name == "t"  # type may be omitted


@pytest.mark.parametrize("name", ["", "get weather", "a.b", "fn()", "x/y", "tab\t"])
def test_tool_bad_name(name: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Tool(name=name)
    assert info.value.field == "tools"
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("schema_type", ["array", "string", None])
def test_tool_parameters_must_be_an_object_schema(schema_type: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Tool(name="f", parameters={"type": schema_type})
    assert info.value.field == "tools"
    assert "object" in str(info.value)


_NAME_CHARS = string.ascii_letters + string.digits + "_-"


@given(st.text(_NAME_CHARS, min_size=1, max_size=64))
def test_tool_valid_names_accepted(name: str) -> None:
    assert Tool(name=name).name == name


@given(st.text(_NAME_CHARS, max_size=10), st.sampled_from(" .,/:;()[]{}!?@#$%^&*+=\t\n'\"\\"),
       st.text(_NAME_CHARS, max_size=10))
def test_tool_names_with_other_characters_rejected(head: str, bad: str, tail: str) -> None:
    with pytest.raises(InvalidRequestError):
        Tool(name=head + bad + tail)


def test_tool_choice_coerce() -> None:
    assert ToolChoice.coerce("auto") == ToolChoice.AUTO
    assert ToolChoice.coerce("required") == ToolChoice.REQUIRED
    assert ToolChoice.coerce("none") == ToolChoice.NONE
    assert ToolChoice.coerce(None) is None
    fn = ToolChoice.function("f")
    assert ToolChoice.coerce(fn) is fn
    assert (fn.mode, fn.name) == ("function", "f")
    with pytest.raises(InvalidRequestError) as info:
        ToolChoice.coerce("any")
    assert info.value.field == "tool_choice"
    assert ToolChoice.coerce({"type": "function", "function": {"name": "f"}}) == fn
    for bad in ({"type": "function"}, {"type": "function", "function": {"name": ""}},
                {"type": "tool", "name": "f"}):
        with pytest.raises(InvalidRequestError) as info:
            ToolChoice.coerce(bad)
        assert info.value.field == "tool_choice"


# --- ChatRequest -------------------------------------------------------------------------------


def test_chat_request_converters() -> None:
    req = ChatRequest(
        model="m",
        messages=[{"role": "system", "content": "s"}, Message.user("u")],
        stop="END",
        tools=[Tool(name="f")],
        tool_choice="required",
        temperature=0,
        top_p=0.0,
    )
    assert req.messages == (Message.system("s"), Message.user("u"))
    assert req.stop == ("END",)
    assert req.tools == (Tool(name="f"),)
    assert req.tool_choice == ToolChoice.REQUIRED
    assert req.temperature == 0
    assert req.temperature is not None
    assert req.top_p == 0.0
    assert ChatRequest(model="m", messages=HELLO, stop=["a", "b"]).stop == ("a", "b")
    assert ChatRequest(model="m", messages=HELLO).stop is None
    assert ChatRequest(model="m", messages=(m for m in HELLO)).messages == tuple(HELLO)


def test_chat_request_tool_choice_function() -> None:
    tools = [Tool(name="a"), Tool(name="b")]
    req = ChatRequest(model="m", messages=HELLO, tools=tools, tool_choice=ToolChoice.function("b"))
    assert req.tool_choice == ToolChoice.function("b")
    with pytest.raises(InvalidRequestError) as info:
        ChatRequest(model="m", messages=HELLO, tools=tools, tool_choice=ToolChoice.function("c"))
    assert info.value.field == "tool_choice"
    assert "'c'" in str(info.value)
    with pytest.raises(InvalidRequestError):
        ChatRequest(model="m", messages=HELLO, tool_choice=ToolChoice.function("a"))


@pytest.mark.parametrize("messages", ["hello", b"hello"])
def test_chat_request_messages_as_text_is_an_error(messages: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        ChatRequest(model="m", messages=messages)  # type: ignore[arg-type]
    assert info.value.field == "messages"
    assert "[Message.user(text)]" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "", "messages": HELLO}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": HELLO, "max_tokens": -5}, "max_tokens"),
        ({"model": "m", "messages": HELLO, "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"model": "m", "messages": [42]}, "messages"),
    ],
)
def test_chat_request_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        ChatRequest(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_chat_request_max_tokens_positive_ok() -> None:
    assert ChatRequest(model="m", messages=HELLO, max_tokens=1).max_tokens == 1


# --- Secret ------------------------------------------------------------------------------------

SECRET = "sk-live-0123456789abcdef"


def test_secret_never_shows_its_value() -> None:
    secret = Secret(SECRET)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", format(secret),
                  repr([secret]), repr({"k": secret})):
        assert SECRET not in shown
        assert "****" in shown
    cred = Credential(kind="api_key", secret=secret, id="main")
    assert SECRET not in repr(cred)
    assert SECRET not in str(cred)
    assert secret.reveal() == SECRET


def test_secret_equality_and_truthiness() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert bool(Secret("a"))
    assert not Secret("")


def test_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(SECRET))
    with pytest.raises(TypeError):
        pickle.dumps(Credential(kind="api_key", secret=Secret(SECRET)))
    with pytest.raises(TypeError):
        copy.deepcopy(Secret(SECRET))


@given(st.text(min_size=8).filter(lambda s: "*" not in s and "Secret" not in s))
def test_secret_repr_property(value: str) -> None:
    secret = Secret(value)
    assert value not in repr(secret)
    assert value not in f"{secret}"
    assert secret.reveal() == value


# --- HttpRequest -------------------------------------------------------------------------------


def test_http_request_repr_redacts_credentials() -> None:
    req = HttpRequest(
        url="https://generativelanguage.googleapis.com/v1/models?key=AIzaSECRET1&alt=sse",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "x-api-key": "SECRET2",
            "X-Goog-Api-Key": "SECRET3",
            "api-key": "SECRET4",
            "content-type": "application/json",
        },
        json={"messages": [{"content": "SECRET5"}]},
    )
    shown = repr(req)
    for secret in (SECRET, "SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"):
        assert secret not in shown
        assert secret not in str(req)
    assert "application/json" in shown  # other headers are shown
    assert "alt=sse" in shown
    assert "key=****" in shown
    # Redaction is for display only: the request itself is unchanged.
    assert req.headers["Authorization"] == f"Bearer {SECRET}"
    assert "key=AIzaSECRET1" in req.url


def test_redact_helpers() -> None:
    assert redact_headers({"AUTHORIZATION": "x", "Accept": "y"}) == {
        "AUTHORIZATION": "****", "Accept": "y"
    }
    assert redact_url("https://h/p?a=1&api_key=zzz#frag") == "https://h/p?a=1&api_key=****#frag"
    assert redact_url("https://h/p?KEY=zzz&token=yyy") == "https://h/p?KEY=****&token=****"
    assert redact_url("https://h/monkey=1") == "https://h/monkey=1"  # not a query parameter
    assert redact_url("https://h/p?monkey=1") == "https://h/p?monkey=1"


@given(
    st.text(string.ascii_uppercase + string.digits + "-_.~%", min_size=6, max_size=40),
    st.sampled_from(["key", "api_key", "apikey", "access_token", "token", "Key"]),
    st.booleans(),
)
def test_redact_url_property(secret: str, param: str, first: bool) -> None:
    query = f"?{param}={secret}&alt=sse" if first else f"?alt=sse&{param}={secret}"
    url = "https://api.example.com/v1/models" + query
    redacted = redact_url(url)
    assert secret not in redacted
    assert f"{param}=****" in redacted
    assert "alt=sse" in redacted
    assert redacted.startswith("https://api.example.com/v1/models?")


def test_http_request_body() -> None:
    req = HttpRequest(url="https://h", json={"a": [1, 2], "b": "é", "c": None})
    assert req.body() == b'{"a":[1,2],"b":"\xc3\xa9","c":null}'
    assert HttpRequest(url="https://h", json={}, content=b"raw").body() == b"raw"
    assert HttpRequest(url="https://h").body() is None
    assert HttpRequest(url="https://h", json=[]).body() == b"[]"
    assert req.method == "POST"


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
))
def test_encode_json_is_compact_and_roundtrips(value: object) -> None:
    encoded = encode_json(value)
    assert json.loads(encoded) == value
    assert encoded == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@given(st.recursive(
    st.none() | st.floats() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=3) | st.integers() | st.floats() | st.booleans() | st.none(), inner,
        max_size=3),
    max_leaves=12,
))
def test_encode_json_writes_what_json_dumps_writes(value: object) -> None:
    """Floats (NaN and infinities too) and non-string keys included."""
    assert encode_json(value) == json.dumps(
        value, ensure_ascii=False, separators=(",", ":")).encode()


def test_encode_json_refuses_what_json_dumps_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_json({"a": object()})
    with pytest.raises(TypeError, match="keys must be"):
        encode_json({(1, 2): 1})


def test_http_request_with_headers() -> None:
    req = HttpRequest(url="https://h", headers={"a": "1", "b": "2"})
    new = req.with_headers(b="3", c="4")
    assert new.headers == {"a": "1", "b": "3", "c": "4"}
    assert req.headers == {"a": "1", "b": "2"}
    assert req.merge_headers({"a": "0"}).headers == {"a": "0", "b": "2"}


@given(st.none() | st.text(max_size=20))
def test_an_assistant_text_message_equals_the_keyword_built(content: str | None) -> None:
    # Message.assistant builds a text answer's message field by field: every field, in order
    assert [f.name for f in attrs.fields(Message)] == [
        "role", "content", "images", "tool_calls", "tool_call_id", "name", "extra", "cache"]
    made = Message.assistant(content)
    assert type(made) is Message
    assert made == Message(role="assistant", content=content)
    assert made.extra == {} and made.extra is not Message.assistant(content).extra
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.content = "x"  # type: ignore[misc]


def test_an_assistant_message_that_is_not_text_is_still_checked() -> None:
    with pytest.raises(InvalidRequestError, match="must be text"):
        Message.assistant(["part"])  # type: ignore[arg-type]
    call = ToolCall(id="c1", name="f", arguments="{}")
    assert Message.assistant(None, tool_calls=[call]).tool_calls == (call,)


def test_merge_headers_copies_every_other_field() -> None:
    # merge_headers sets each field of the copy itself: a new field must be copied there too
    assert [f.name for f in attrs.fields(HttpRequest)] == [
        "method", "url", "headers", "json", "content", "timeout"]
    req = HttpRequest(method="PUT", url="https://h", headers={"a": "1"}, json={"x": 1},
                      content=b"raw", timeout=Timeout(total=3.0))
    merged = req.merge_headers({"b": "2"})
    assert merged == attrs.evolve(req, headers={"a": "1", "b": "2"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        merged.url = "https://other"  # type: ignore[misc]


@attrs.frozen(kw_only=True)
class _PlainHttpRequest:  # HttpRequest's fields, built by attrs' own __init__
    method: str = "POST"
    url: str
    headers: dict[str, str] = attrs.field(factory=dict)
    json: object = None
    content: bytes | None = None
    timeout: Timeout | None = None


_HTTP_FIELDS = st.fixed_dictionaries({"url": st.text(max_size=10)}, optional={
    "method": st.sampled_from(["GET", "POST", "PUT"]),
    "headers": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    "json": st.none() | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    "content": st.none() | st.binary(max_size=8),
    "timeout": st.none() | st.just(Timeout(total=3.0)),
})


@given(_HTTP_FIELDS)
def test_an_http_request_holds_what_attrs_would(fields: dict[str, object]) -> None:
    # HttpRequest.__init__ fills its fields in as its builder: every field, as attrs' __init__
    assert [f.name for f in attrs.fields(HttpRequest)] == [
        f.name for f in attrs.fields(_PlainHttpRequest)]
    assert not any(f.validator or f.converter for f in attrs.fields(HttpRequest))
    made = HttpRequest(**fields)  # type: ignore[arg-type]
    plain = _PlainHttpRequest(**fields)  # type: ignore[arg-type]
    assert type(made) is HttpRequest
    assert attrs.asdict(made, recurse=False) == attrs.asdict(plain, recurse=False)
    assert made == HttpRequest(**fields) and made == attrs.evolve(made)  # type: ignore[arg-type]
    assert made.headers is not HttpRequest(url="x").headers or "headers" in fields
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.url = "https://other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        HttpRequest(method="GET")  # type: ignore[call-arg]  # no url


def test_a_subclass_of_http_request_is_built_as_itself() -> None:
    class Traced(HttpRequest):
        __slots__ = ()

    made = Traced(url="https://h", json={"a": 1})
    assert type(made) is Traced
    assert (made.method, made.url, made.headers, made.json) == ("POST", "https://h", {}, {"a": 1})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.url = "https://other"  # type: ignore[misc]


# --- Usage -------------------------------------------------------------------------------------


def test_usage_total_defaults_to_sum() -> None:
    assert Usage(input_tokens=10, output_tokens=5).total_tokens == 15
    assert Usage().total_tokens is None  # nothing reported stays unknown, never 0
    assert (Usage().input_tokens, Usage().output_tokens) == (None, None)
    assert Usage(input_tokens=7).total_tokens == 7  # the sum of what was reported
    assert Usage(output_tokens=3).total_tokens == 3
    assert Usage(input_tokens=10, output_tokens=5, total_tokens=20).total_tokens == 20
    assert Usage(input_tokens=1).reasoning_tokens is None


# --- StreamAccumulator -------------------------------------------------------------------------


def test_accumulator_text_reasoning_refusal_usage_finish() -> None:
    acc = StreamAccumulator()
    assert not acc.finished
    events = [
        ReasoningDelta(text="think "),
        TextDelta(text="Hel"),
        ReasoningDelta(text="more"),
        UsageEvent(usage=Usage(input_tokens=1, output_tokens=1)),
        TextDelta(text="lo"),
        TextDelta(text=""),
        RefusalDelta(text="I can"),
        RefusalDelta(text="not"),
        UsageEvent(usage=Usage(input_tokens=10, output_tokens=3)),
        FinishEvent(reason=FinishReason.STOP, raw="end_turn"),
    ]
    for event in events:
        acc.add(event)
    assert acc.finished
    resp = acc.response(provider="p", model="m", request_id="req_1")
    assert isinstance(resp, ChatResponse)
    assert resp.text == "Hello"
    assert resp.message == Message(role="assistant", content="Hello")
    assert resp.reasoning == "think more"
    assert resp.refusal == "I cannot"
    assert resp.usage == Usage(input_tokens=10, output_tokens=3, total_tokens=13)
    assert resp.finish_reason is FinishReason.STOP
    assert resp.raw_finish_reason == "end_turn"
    assert (resp.provider, resp.model, resp.request_id) == ("p", "m", "req_1")
    assert resp.tool_calls == ()


def test_accumulator_empty() -> None:
    resp = StreamAccumulator().response(provider="p", model="m")
    assert resp.text == ""
    assert resp.message.content == ""
    assert resp.reasoning is None
    assert resp.refusal is None
    assert resp.usage is None
    assert resp.finish_reason is None


def test_accumulator_model_and_id_from_stream() -> None:
    acc = StreamAccumulator()
    acc.model = "gpt-4o-2024-08-06"
    acc.id = "chatcmpl-1"
    acc.extra["system_fingerprint"] = "fp"
    resp = acc.response(provider="p", model="gpt-4o")
    assert (resp.model, resp.id) == ("gpt-4o-2024-08-06", "chatcmpl-1")
    assert resp.extra == {"system_fingerprint": "fp"}
    acc.extra["later"] = 1
    assert "later" not in resp.extra


def test_accumulator_parallel_tool_calls() -> None:
    acc = StreamAccumulator()
    for event in [
        ToolCallDelta(index=1, id="call_b", name="get_time"),
        ToolCallDelta(index=0, id="call_a", name="get_weather", arguments='{"ci'),
        ToolCallDelta(index=1, arguments='{"tz":'),
        ToolCallDelta(index=0, arguments='ty": "Paris"}'),
        ToolCallDelta(index=1, arguments=' "CET"}'),
        FinishEvent(reason=FinishReason.TOOL_CALLS, raw="tool_calls"),
    ]:
        acc.add(event)
    resp = acc.response(provider="p", model="m")
    assert resp.tool_calls == (
        ToolCall(id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="call_b", name="get_time", arguments='{"tz": "CET"}'),
    )
    assert [c.parsed_arguments() for c in resp.tool_calls] == [{"city": "Paris"}, {"tz": "CET"}]
    assert resp.message.content is None  # tool calls only: no empty text
    assert resp.text == ""
    assert resp.finish_reason is FinishReason.TOOL_CALLS


def test_accumulator_tool_call_defaults_and_text_alongside() -> None:
    acc = StreamAccumulator()
    acc.add(TextDelta(text="Let me check."))
    acc.add(ToolCallDelta(index=3, name="noop"))
    resp = acc.response(provider="p", model="m")
    assert resp.tool_calls == (ToolCall(id="call_3", name="noop", arguments="{}"),)
    assert resp.message.content == "Let me check."


@st.composite
def _tool_call_streams(draw: st.DrawFn) -> tuple[list[object], dict[int, tuple[str, str, str]]]:
    indices = draw(st.lists(st.integers(0, 20), min_size=1, max_size=5, unique=True))
    fragments = {
        i: draw(st.lists(st.text(max_size=6), min_size=1, max_size=6)) for i in indices
    }
    order = draw(st.permutations([i for i in indices for _ in fragments[i]]))
    texts = iter(draw(st.lists(st.text(min_size=1, max_size=4), min_size=len(order),
                               max_size=len(order))))
    events: list[object] = []
    position = dict.fromkeys(indices, 0)
    text_parts: list[str] = []
    for i in order:
        k = position[i]
        position[i] += 1
        first = k == 0
        events.append(ToolCallDelta(index=i, id=f"id{i}" if first else None,
                                    name=f"fn_{i}" if first else None,
                                    arguments=fragments[i][k]))
        if draw(st.booleans()):
            part = next(texts)
            text_parts.append(part)
            events.append(TextDelta(text=part))
    expected = {i: (f"id{i}", f"fn_{i}", "".join(fragments[i])) for i in indices}
    return events, {-1: ("", "", "".join(text_parts)), **expected}


@settings(max_examples=200, deadline=None)
@given(_tool_call_streams())
def test_accumulator_interleaved_tool_calls_property(
    stream: tuple[list[object], dict[int, tuple[str, str, str]]],
) -> None:
    events, expected = stream
    text = expected.pop(-1)[2]
    acc = StreamAccumulator()
    for event in events:
        acc.add(event)  # type: ignore[arg-type]
    calls = acc.tool_calls()
    assert [c.id for c in calls] == [expected[i][0] for i in sorted(expected)]
    assert [c.name for c in calls] == [expected[i][1] for i in sorted(expected)]
    assert [c.arguments for c in calls] == [expected[i][2] or "{}" for i in sorted(expected)]
    assert acc.text() == text
    resp = acc.response(provider="p", model="m")
    assert resp.tool_calls == calls
    assert resp.message.content == (text or None)

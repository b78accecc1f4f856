"""Request building: body snapshots for every mapping, the requests refused before sending,
and the authentication rules (API key versus OAuth, the Claude Code prompt)."""

from __future__ import annotations

import base64
from typing import Any

import attrs
import pytest

import aipk_anthropic.plugin
from aipk import (
    Capabilities,
    ChatRequest,
    Credential,
    HttpRequest,
    Image,
    Message,
    ModelInfo,
    Provider,
    Secret,
    Tool,
    ToolCall,
    ToolChoice,
)
from aipk._core import Engine
from aipk.errors import InvalidRequestError
from aipk_anthropic import ANTHROPIC, CLAUDE_CODE_SYSTEM_PROMPT, wire
from aipk_testkit.fixtures import make_engine, make_provider

USER = [Message.user("hi")]
MODEL = "claude-sonnet-4-5"
WEATHER = Tool(name="get_weather", description="Weather for a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]})
TIME = Tool(name="get_time", parameters={"type": "object", "properties": {}})
API_KEY = Credential(kind="api_key", secret=Secret("sk-ant-api03-test"), id="api_key")
OAUTH = Credential(kind="oauth", secret=Secret("sk-ant-oat01-test"), id="oauth")


def _provider(**options: Any) -> Provider:
    return make_provider(ANTHROPIC, **options)


def _body(request: ChatRequest, stream: bool = False, **options: Any) -> dict[str, Any]:
    return wire.build_messages_body(_provider(**options), request, stream)


def _req(messages: list[Message] | None = None, **fields: Any) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=messages or USER, **fields)


def _engine(credential: Credential, **options: Any) -> Engine:
    return make_engine(_provider(**options), {"anthropic": aipk_anthropic.plugin},
                       credential=credential)


# -- request bodies --------------------------------------------------------------------------


def test_minimal_body_has_model_default_max_tokens_and_messages() -> None:
    assert _body(_req()) == {"model": MODEL, "max_tokens": 4096,
                             "messages": [{"role": "user", "content": "hi"}]}


def test_default_max_tokens_option_and_explicit_max_tokens() -> None:
    assert _body(_req(), default_max_tokens=1000)["max_tokens"] == 1000
    assert _body(_req(), default_max_tokens="2000")["max_tokens"] == 2000
    assert _body(_req(max_tokens=77), default_max_tokens=1000)["max_tokens"] == 77
    with pytest.raises(InvalidRequestError, match="default_max_tokens") as info:
        _body(_req(), default_max_tokens="lots")
    assert info.value.field == "default_max_tokens"


def test_sampling_fields_only_when_set_and_zero_is_sent() -> None:
    body = _body(_req(temperature=0, top_p=0.5, stop="END"))
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (0, 0.5, ["END"])
    assert _body(_req(stop=["a", "b"]))["stop_sequences"] == ["a", "b"]
    assert not {"temperature", "top_p", "stop_sequences", "tools", "tool_choice", "system",
                "stream"} & set(_body(_req()))


def test_system_messages_become_top_level_system() -> None:
    body = _body(_req([Message.system("Be brief."), Message.user("hi"),
                       Message.system("Answer in French.")]))
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_full_tool_conversation_snapshot() -> None:
    calls = [ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Oslo"}'),
             ToolCall(id="toolu_2", name="get_time", arguments="")]
    body = _body(_req([
        Message.system("sys"),
        Message.user("Weather and time?"),
        Message.assistant("Checking.", tool_calls=calls),
        Message.tool("toolu_1", "3 degrees"),
        Message.tool("toolu_2", "noon"),
        Message.user("Thanks, and tomorrow?"),
        Message.assistant("Tomorrow is sunny."),
        Message.user("Great"),
    ], tools=[WEATHER, TIME]))
    assert body == {
        "model": MODEL,
        "max_tokens": 4096,
        "system": "sys",
        "messages": [
            {"role": "user", "content": "Weather and time?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ]},
            # consecutive tool results: ONE user message, text after them in the same turn
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
                {"type": "text", "text": "Thanks, and tomorrow?"},
            ]},
            {"role": "assistant", "content": "Tomorrow is sunny."},
            {"role": "user", "content": "Great"},
        ],
        "tools": [
            {"name": "get_weather", "description": "Weather for a city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"]}},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ],
    }


def test_tool_result_error_flag_and_images() -> None:
    png = b"\x89PNG\r\n"
    body = _body(_req([
        Message.user("look"),
        Message.assistant(tool_calls=[ToolCall(id="t1", name="shot")]),
        Message(role="tool", tool_call_id="t1", content="failed", extra={"is_error": True}),
    ]))
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "failed", "is_error": True}]}
    body = _body(_req([
        Message.user("look"),
        Message.assistant(tool_calls=[ToolCall(id="t1", name="shot")]),
        Message(role="tool", tool_call_id="t1", content="here",
                images=[Image(data=png, media_type="image/png")]),
    ]))
    assert body["messages"][2]["content"][0]["content"] == [
        {"type": "text", "text": "here"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(png).decode()}}]


def test_images_by_bytes_data_url_and_https_url() -> None:
    body = _body(_req([Message.user("what is this?", images=[
        Image(data=b"\x01\x02", media_type="image/jpeg"),
        Image(url="data:image/gif;base64,R0lGOD"),
        Image(url="https://example.com/cat.png"),
    ])]))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": "AQI="}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif",
                                     "data": "R0lGOD"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "what is this?"},
    ]}]


def test_data_url_that_is_not_base64_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="base64") as info:
        _body(_req([Message.user("x", images=[Image(url="data:text/plain,hello")])]))
    assert info.value.field == "image"


@pytest.mark.parametrize(("choice", "wire_value"), [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    (ToolChoice.function("get_weather"), {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice(choice: ToolChoice | str, wire_value: dict[str, Any]) -> None:
    assert _body(_req(tools=[WEATHER], tool_choice=choice))["tool_choice"] == wire_value


@pytest.mark.parametrize(("choice", "wire_value"), [
    (None, {"type": "auto", "disable_parallel_tool_use": True}),
    ("auto", {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", {"type": "any", "disable_parallel_tool_use": True}),
    (ToolChoice.function("get_weather"),
     {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
    ("none", {"type": "none"}),
])
def test_parallel_tool_calls_false_disables_parallel_use(choice: ToolChoice | str | None,
                                                         wire_value: dict[str, Any]) -> None:
    body = _body(_req(tools=[WEATHER], tool_choice=choice, parallel_tool_calls=False))
    assert body["tool_choice"] == wire_value


def test_parallel_true_and_tool_choice_without_tools() -> None:
    assert "tool_choice" not in _body(_req(tools=[WEATHER], parallel_tool_calls=True))
    assert "tool_choice" not in _body(_req(tool_choice="auto", parallel_tool_calls=False))
    assert "tool_choice" not in _body(_req(tool_choice="none"))
    with pytest.raises(InvalidRequestError, match="needs tools") as info:
        _body(_req(tool_choice="required"))
    assert info.value.field == "tool_choice"


def test_tool_strict_flag_is_passed_through() -> None:
    strict = attrs.evolve(WEATHER, strict=True)
    assert _body(_req(tools=[strict]))["tools"][0]["strict"] is True


def test_streaming_extra_and_headers() -> None:
    request = _req(extra={"thinking": {"type": "enabled", "budget_tokens": 2048},
                          "max_tokens": 9000})
    built = wire.build_messages_request(_provider(beta=["a-1", "b-2"]), request, stream=True)
    assert built.method == "POST"
    assert built.url == "https://api.anthropic.com/v1/messages"
    assert built.json["stream"] is True
    assert built.json["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert built.json["max_tokens"] == 9000  # extra is merged last
    assert built.headers == {"content-type": "application/json", "accept": "text/event-stream",
                             "anthropic-version": "2023-06-01", "anthropic-beta": "a-1,b-2"}
    plain = wire.build_messages_request(_provider(), _req(), stream=False)
    assert plain.headers["accept"] == "application/json"
    assert "anthropic-beta" not in plain.headers
    assert "stream" not in plain.json


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9/anthropic", "http://127.0.0.1:9/anthropic/"])
def test_url_joining_and_models_request(base_url: str) -> None:
    provider = Provider(spec=ANTHROPIC, base_url=base_url)
    built = wire.build_messages_request(provider, _req(), stream=False)
    assert built.url == "http://127.0.0.1:9/anthropic/v1/messages"
    models = wire.build_models_request(provider)
    assert (models.method, models.url, models.json) == (
        "GET", "http://127.0.0.1:9/anthropic/v1/models?limit=1000", None)
    assert models.headers["anthropic-version"] == "2023-06-01"


# -- bad input, refused before sending --------------------------------------------------------


def _refused(messages: list[Message], match: str, field: str = "messages", **fields: Any) -> (
        InvalidRequestError):
    with pytest.raises(InvalidRequestError, match=match) as info:
        _body(_req(messages, **fields))
    assert info.value.field == field
    assert info.value.provider == "anthropic"
    return info.value


def test_conversation_must_start_with_user() -> None:
    _refused([Message.system("s"), Message.assistant("hello")],
             r"messages\[1\].*first non-system message must be a user")


def test_only_system_messages_is_refused() -> None:
    _refused([Message.system("s")], "at least one user message")


@pytest.mark.parametrize(("messages", "pair"), [
    ([Message.user("a"), Message.user("b")], r"messages\[0\] and messages\[1\] are both user"),
    ([Message.user("a"), Message.assistant("b"), Message.system("s"), Message.assistant("c")],
     r"messages\[1\] and messages\[3\] are both assistant"),
])
def test_roles_must_alternate(messages: list[Message], pair: str) -> None:
    _refused(messages, pair + ".*alternate")


def test_tool_result_must_follow_its_tool_call() -> None:
    _refused([Message.user("a"), Message.tool("toolu_x", "r")],
             r"messages\[1\] \(tool\).*does not follow the assistant message")
    err = _refused([Message.user("a"),
                    Message.assistant(tool_calls=[ToolCall(id="toolu_1", name="f")]),
                    Message.tool("toolu_2", "r")],
                   r"tool_call_id 'toolu_2' matches no tool call.*toolu_1", "tool_call_id")
    assert "messages[2]" in str(err)
    _refused([Message.user("a"),
              Message.assistant(tool_calls=[ToolCall(id="toolu_1", name="f")]),
              Message.tool("toolu_1", "r"), Message.user("more"), Message.tool("toolu_1", "r")],
             r"messages\[4\] \(tool\).*does not follow")


def test_unanswered_tool_calls_are_refused() -> None:
    _refused([Message.user("a"),
              Message.assistant(tool_calls=[ToolCall(id="toolu_1", name="f"),
                                            ToolCall(id="toolu_2", name="f")]),
              Message.tool("toolu_1", "r")],
             r"messages\[1\] calls tools toolu_2 but no tool message answers")
    _refused([Message.user("a"), Message.assistant(tool_calls=[ToolCall(id="toolu_1", name="f")]),
              Message.user("never mind")], "calls tools toolu_1")
    # A final assistant turn with tool calls (nothing after it) is allowed.
    body = _body(_req([Message.user("a"),
                       Message.assistant(tool_calls=[ToolCall(id="toolu_1", name="f")])]))
    assert body["messages"][-1]["content"][0]["type"] == "tool_use"


def test_empty_messages_are_refused_but_a_final_empty_assistant_is_not() -> None:
    _refused([Message.user("")], r"messages\[0\] \(user\) is empty")
    _refused([Message.user("a"), Message.assistant(""), Message.user("b")],
             r"messages\[1\] \(assistant\) is empty")
    body = _body(_req([Message.user("a"), Message.assistant()]))
    assert body["messages"][-1] == {"role": "assistant", "content": []}


def test_tool_call_arguments_must_be_a_json_object() -> None:
    bad_json = [Message.user("a"),
                Message.assistant(tool_calls=[ToolCall(id="t", name="f", arguments="{oops")]),
                Message.tool("t", "r")]
    with pytest.raises(InvalidRequestError, match="not valid JSON") as info:
        _body(_req(bad_json))
    assert info.value.field == "arguments"
    _refused([Message.user("a"),
              Message.assistant(tool_calls=[ToolCall(id="t", name="f", arguments="[1]")]),
              Message.tool("t", "r")], "not a JSON object", "arguments")


def test_tool_schema_must_be_an_object_schema() -> None:
    untyped = Tool(name="f", parameters={"properties": {"x": {"type": "string"}}})
    _refused(USER, r"tool 'f'.*\"type\": \"object\"", "tools", tools=[untyped])
    any_of = Tool(name="g", parameters={"anyOf": [{"type": "object"}]})
    _refused(USER, r"tool 'g'", "tools", tools=[any_of])


def test_images_in_system_or_assistant_messages_are_refused() -> None:
    image = Image(url="https://example.com/a.png")
    _refused([Message(role="system", content="s", images=[image]), Message.user("a")],
             "system prompts cannot hold images")
    _refused([Message.user("a"), Message(role="assistant", content="b", images=[image])],
             "assistant messages cannot hold images")


def test_image_to_a_model_without_vision_is_refused() -> None:
    blind = ModelInfo(id="claude-text-only", provider="anthropic",
                      capabilities=Capabilities(vision=False))
    spec = attrs.evolve(ANTHROPIC, models=(*ANTHROPIC.models, blind))
    provider = Provider(spec=spec, base_url=spec.default_base_url)
    image = Image(url="https://example.com/a.png")
    with pytest.raises(InvalidRequestError, match="'claude-text-only' does not accept images"):
        wire.build_messages_body(provider, ChatRequest(
            model="claude-text-only", messages=[Message.user("a", images=[image])]), False)
    # The same model without images, and a vision model with them, are fine.
    wire.build_messages_body(provider, ChatRequest(
        model="claude-text-only", messages=[Message.user("a")]), False)
    assert all(m.capabilities and m.capabilities.vision for m in ANTHROPIC.models)
    assert _body(_req([Message.user("a", images=[image])]))["messages"][0]["content"][0][
        "type"] == "image"


def test_bad_thinking_blocks_in_extra_are_refused() -> None:
    _refused([Message.user("a"), Message(role="assistant", content="b",
                                         extra={"thinking_blocks": [{"type": "text"}]}),
              Message.user("c")], "thinking_blocks")


def test_redacted_thinking_is_sent_back_first() -> None:
    blocks = [{"type": "redacted_thinking", "data": "EncryptedBlob"}]
    body = _body(_req([Message.user("a"),
                       Message(role="assistant", content="b", extra={"thinking_blocks": blocks}),
                       Message.user("c")]))
    assert body["messages"][1]["content"] == [*blocks, {"type": "text", "text": "b"}]


# -- authentication --------------------------------------------------------------------------


def _signed(credential: Credential, request: ChatRequest | None = None, **options: Any) -> (
        HttpRequest):
    signed, _ = _engine(credential, **options).build(request or _req(), stream=False)
    return signed


def test_api_key_goes_in_x_api_key_only() -> None:
    signed = _signed(API_KEY)
    assert signed.headers["x-api-key"] == "sk-ant-api03-test"
    assert "authorization" not in signed.headers
    assert "anthropic-beta" not in signed.headers
    assert signed.headers["anthropic-version"] == "2023-06-01"
    assert "sk-ant-api03-test" not in repr(signed)


def test_api_key_never_gets_the_claude_code_prompt() -> None:
    request = _req([Message.system("mine"), Message.user("hi")])
    signed = _signed(API_KEY, request, claude_code=True)
    assert signed.json["system"] == "mine"
    assert "system" not in _signed(API_KEY, claude_code=True).json


def test_oauth_is_a_bearer_token_with_the_beta_flag() -> None:
    signed = _signed(OAUTH)
    assert signed.headers["authorization"] == "Bearer sk-ant-oat01-test"
    assert signed.headers["anthropic-beta"] == "oauth-2025-04-20"
    assert "x-api-key" not in signed.headers
    assert "system" not in signed.json  # claude_code not set: no prompt injected
    # Other beta flags are kept, and the OAuth flag is never doubled.
    assert _signed(OAUTH, beta="x-1").headers["anthropic-beta"] == "x-1,oauth-2025-04-20"
    assert _signed(OAUTH, beta=["oauth-2025-04-20", "x-1"]).headers["anthropic-beta"] == (
        "oauth-2025-04-20,x-1")


def test_oauth_claude_code_prompt_is_prepended_once() -> None:
    identity = {"type": "text", "text": CLAUDE_CODE_SYSTEM_PROMPT}
    assert _signed(OAUTH, claude_code=True).json["system"] == [identity]
    mine = _signed(OAUTH, _req([Message.system("mine"), Message.user("hi")]), claude_code=True)
    assert mine.json["system"] == [identity, {"type": "text", "text": "mine"}]
    # Already there (as the system message, or as a block): never duplicated.
    already = _signed(OAUTH, _req([Message.system(CLAUDE_CODE_SYSTEM_PROMPT + "\n\nmore"),
                                   Message.user("hi")]), claude_code=True)
    assert already.json["system"] == CLAUDE_CODE_SYSTEM_PROMPT + "\n\nmore"
    blocks = [identity, {"type": "text", "text": "mine", "cache_control": {"type": "ephemeral"}}]
    as_blocks = _signed(OAUTH, _req(extra={"system": blocks}), claude_code=True)
    assert as_blocks.json["system"] == blocks
    custom = [{"type": "text", "text": "custom"}]
    assert _signed(OAUTH, _req(extra={"system": custom}), claude_code=True).json["system"] == [
        identity, *custom]


def test_claude_code_option_from_the_environment_is_a_string() -> None:
    identity = {"type": "text", "text": CLAUDE_CODE_SYSTEM_PROMPT}
    assert _signed(OAUTH, claude_code="true").json["system"] == [identity]
    assert "system" not in _signed(OAUTH, claude_code="0").json


def test_credential_application_does_not_mutate_the_built_request() -> None:
    provider = _provider(claude_code=True)
    built = wire.build_messages_request(provider, _req([Message.system("s"), Message.user("x")]),
                                        stream=False)
    signed = wire.apply_credential(provider, built, OAUTH)
    assert built.json["system"] == "s"
    assert "authorization" not in built.headers
    assert signed.json["system"][0]["text"] == CLAUDE_CODE_SYSTEM_PROMPT


def test_oauth_models_request_has_no_body_to_edit() -> None:
    engine = _engine(OAUTH, claude_code=True)
    built = engine.models_request()
    assert built is not None
    signed, body = built
    assert body is None and signed.json is None
    assert signed.headers["authorization"] == "Bearer sk-ant-oat01-test"


def test_no_credential_adds_nothing() -> None:
    signed = _signed(Credential(kind="none"))
    assert "x-api-key" not in signed.headers and "authorization" not in signed.headers

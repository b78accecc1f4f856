"""Every Cerebras capture in ``tests/fixtures/cerebras/`` parsed through the real hooks (the
aipk-openai plugin plus this one), with expected values written out by hand from the fixture.

A meta-test fails when a fixture file is added without an expectation here.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

import aipk_cerebras.plugin
import aipk_openai.plugin
from aipk import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Tool,
    Usage,
)
from aipk._core import Engine
from aipk_cerebras import CEREBRAS
from aipk_testkit.fixtures import (
    Captures,
    find_fixtures,
    flatten_headers,
    make_engine,
    manifest_names,
)

FIXTURES = find_fixtures(__file__)
CEREBRAS_DIR = FIXTURES / "cerebras"
CAPTURES = Captures(CEREBRAS_DIR)
NOW = 1_700_000_000.0


def _engine() -> Engine:
    return make_engine(CEREBRAS, {"openai": aipk_openai.plugin, "cerebras": aipk_cerebras.plugin},
                       clock=lambda: NOW)


@attrs.frozen
class Expect:
    id: str
    model: str
    text: str | None
    usage: tuple[int, int, int]
    reasoning_tokens: int | None
    cached_tokens: int | None
    total_time: float
    reasoning: str | None = None
    finish: FinishReason = FinishReason.STOP
    raw_finish: str = "stop"
    calls: tuple[tuple[str, str, str], ...] = ()


LONG_REASONING_START = 'The user wants me to solve the multiplication problem: "25 * 4".\n\n1.  '
LONG_REASONING_END = '*   "25 multiplied by 4 is 100."'

EXPECT: dict[str, Expect] = {
    "pai-chat-reasoning-field.json": Expect(
        "chatcmpl-82d1c33a-3015-4a2e-a4e4-210e901e89f9", "gpt-oss-120b", "4.", (79, 37, 116),
        25, 0, 0.03152036666870117,
        reasoning='User asks simple: "What is 2 + 2? Think briefly first." Answer: 4. '
                  'Probably straightforward.'),
    "pai-chat-reasoning-gpt-oss.json": Expect(
        "chatcmpl-bc3bbd04-e8df-4ab6-bd82-9fb33726cb93", "gpt-oss-120b",
        "The capital of France is **Paris**.", (74, 36, 110), None, 0, 0.03260970115661621,
        reasoning="User asks simple question: capital of France. Answer: Paris. Provide "
                  "concise answer."),
    "pai-chat-reasoning-long.json": Expect(
        "chatcmpl-7a8879bf-5eca-4694-8673-441d7b669f8c", "zai-glm-4.7", "25 * 4 = 100.",
        (17, 415, 432), 406, 0, 0.8083178997039795, reasoning=LONG_REASONING_START),
    "pai-chat-reasoning-wire-gpt-oss.json": Expect(
        "chatcmpl-38aef496-e471-49d5-a302-935a4387c86b", "gpt-oss-120b", "4", (80, 45, 125),
        34, 0, 0.026249408721923828,
        reasoning='The user asks: "What is 2+2? Reply with just the number." So answer: "4". '
                  'Should be just the number, no extra text.'),
    "pai-chat-reasoning-wire-zai.json": Expect(
        "chatcmpl-2b6530f0-104d-4cc7-8f2c-5ca936432c28", "zai-glm-4.7", "4", (18, 2, 20), 0, 0,
        0.01939249038696289),
    "pai-chat-text-llama.json": Expect(
        "chatcmpl-5af19e85-b8e3-4836-8486-5f2b0b250c8d", "llama-3.3-70b", "2 + 2 = 4.",
        (43, 9, 52), None, None, 0.051694631576538086),
    "pai-chat-text-reasoning-disabled.json": Expect(
        "chatcmpl-a1af5a3c-1d9d-49ed-9a71-d1e159177a98", "zai-glm-4.7", "The answer is 4.",
        (13, 7, 20), 0, 0, 0.08368825912475586),
    "pai-chat-text-via-openai-provider.json": Expect(
        "chatcmpl-175bff47-ce89-4fad-bead-62a14f787c49", "llama-3.3-70b",
        "The capital of France is Paris.", (42, 8, 50), None, 0, 0.007346153259277344),
    "pai-chat-tool-call-qwen.json": Expect(
        "chatcmpl-6659125c-6d06-402c-be3b-4640aa64ffa2", "qwen-3-coder-480b", None,
        (364, 33, 397), None, 0, 0.6736249923706055, finish=FinishReason.TOOL_CALLS,
        raw_finish="tool_calls",
        calls=(("b8847f144", "final_result", '{"city": "Paris", "country": "France"}'),)),
}


def test_every_cerebras_fixture_has_an_expectation() -> None:
    assert CAPTURES.names() == set(EXPECT)


def test_manifest_lists_exactly_the_cerebras_fixtures() -> None:
    listed = manifest_names(FIXTURES, "cerebras")
    assert listed == set(EXPECT)


def _request_of(data: dict[str, Any]) -> ChatRequest:
    body = data["request"]["body"]
    known = {"model", "messages", "stream", "tools", "tool_choice"}
    tools = [Tool(name=t["function"]["name"], description=t["function"]["description"],
                  parameters=t["function"]["parameters"]) for t in body.get("tools", ())]
    return ChatRequest(model=body["model"], messages=body["messages"], tools=tools,
                       tool_choice=body.get("tool_choice"),
                       extra={k: v for k, v in body.items() if k not in known})


def _check(response: ChatResponse, expect: Expect) -> None:
    assert response.provider == "cerebras"
    assert response.id == expect.id
    assert response.model == expect.model
    assert response.message.content == expect.text
    assert response.finish_reason is expect.finish
    assert response.raw_finish_reason == expect.raw_finish
    if expect.reasoning is None:
        assert response.reasoning is None
    else:
        assert response.reasoning is not None
        assert response.reasoning.startswith(expect.reasoning)
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == list(expect.calls)
    prompt, completion, total = expect.usage
    assert response.usage == Usage(input_tokens=prompt, output_tokens=completion,
                                   total_tokens=total, reasoning_tokens=expect.reasoning_tokens,
                                   cache_read_tokens=expect.cached_tokens)
    assert response.extra["time_info"]["total_time"] == expect.total_time


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_fixture_through_the_hooks(name: str) -> None:
    data = CAPTURES.interaction(name)
    headers = flatten_headers(data["response"]["headers"])
    assert data["response"]["status"] == 200
    engine = _engine()
    state = engine.observe(200, headers, data["request"]["body"]["model"])
    assert state is None  # pydantic-ai cassettes strip x-ratelimit-* headers
    response = engine.chat_response(_request_of(data), data["response"]["body"].encode(),
                                    headers, state)
    _check(response, EXPECT[name])
    assert response.request_id == headers["inference-id"]  # Cerebras's name for it
    assert headers["inference-id"] == EXPECT[name].id


def test_long_reasoning_is_kept_whole() -> None:
    data = CAPTURES.interaction("pai-chat-reasoning-long.json")
    response = _engine().chat_response(_request_of(data), data["response"]["body"].encode(),
                                       {}, None)
    assert response.reasoning is not None
    assert response.reasoning.endswith(LONG_REASONING_END)
    assert len(response.reasoning) == 1388
    assert response.text == "25 * 4 = 100."


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_request_we_build_matches_the_capture(name: str) -> None:
    """Same URL and body as the captured request (we leave ``stream: false`` out)."""
    data = CAPTURES.interaction(name)
    captured = data["request"]
    built, body = _engine().build(_request_of(data), stream=False)
    assert built.url == captured["url"] == "https://api.cerebras.ai/v1/chat/completions"
    assert built.method == captured["method"] == "POST"
    expected = {k: v for k, v in captured["body"].items() if k != "stream"}
    assert body is not None
    assert json.loads(body) == expected


def test_tool_call_capture_has_no_content_key() -> None:
    data = CAPTURES.interaction("pai-chat-tool-call-qwen.json")
    assert "content" not in json.loads(data["response"]["body"])["choices"][0]["message"]
    response = _engine().chat_response(_request_of(data), data["response"]["body"].encode(),
                                       {}, None)
    assert response.text == ""
    assert response.tool_calls[0].parsed_arguments() == {"city": "Paris", "country": "France"}

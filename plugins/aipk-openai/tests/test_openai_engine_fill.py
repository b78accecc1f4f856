"""What the engine fills in an OpenAI answer: the request id is `request_id_of()`'s and the
cost `Telemetry.cost()`'s, whatever the headers, the usage and the models."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import aipk
from aipk._core import request_id_of

_client = aipk.Client("openai", base_url="http://127.0.0.1:1/v1", api_key="sk-fill")
_engine = _client._engine
_ids = st.sampled_from(["x-request-id", "request-id", "x-goog-request-id", "inference-id",
                        "other"])
_counts = st.none() | st.integers(min_value=0, max_value=10**6)
_models = st.sampled_from(["gpt-4o-mini", "gpt-4o", "unpriced", ""])


@settings(max_examples=300, deadline=None)
@given(headers=st.dictionaries(_ids, st.sampled_from(["", "r1", "r2"]), max_size=4),
       model=_models, answered=st.none() | _models, prompt=_counts, completion=_counts,
       usage=st.booleans())
def test_request_id_and_cost_are_those_of_the_plain_helpers(
        headers: dict[str, str], model: str, answered: str | None, prompt: int | None,
        completion: int | None, usage: bool) -> None:
    data: dict[str, Any] = {"choices": [{"message": {"role": "assistant", "content": "hi"},
                                         "finish_reason": "stop"}]}
    if answered is not None:
        data["model"] = answered
    if usage:
        data["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion}
    request = aipk.ChatRequest(model=model or "m", messages=[aipk.Message.user("q")])
    response = _engine.chat_response(request, json.dumps(data).encode(), headers, None)
    assert response.request_id == request_id_of(headers)
    expected = _engine.telemetry.cost(request.model, response.usage, response.model)
    assert response.cost == expected
    assert response.rate_limit is None


def test_the_parse_hook_answers_as_the_wire_parser() -> None:
    from aipk_openai import wire

    data = {"choices": [{"message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}]}
    request = aipk.ChatRequest(model="m", messages=[aipk.Message.user("q")])
    provider = _engine.provider
    assert _engine._hooks.aipk_parse_response.call(provider, request, data, {}) == (
        wire.parse_chat_response(provider, request, data))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                  max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(body=_json_values)
def test_the_signed_body_is_encode_json_of_the_request_body(body: Any) -> None:
    from aipk._http import encode_json

    prepared = aipk.HttpRequest(url="http://h/v1/x", json=body)
    signed, content = _engine.sign(prepared)
    assert content == (None if body is None else encode_json(body))
    assert signed.headers["authorization"] == "Bearer sk-fill"
    assert aipk.HttpRequest(url="http://h/v1/x", content=b"raw").body() == (
        _engine.sign(aipk.HttpRequest(url="http://h/v1/x", content=b"raw"))[1])

"""Model discovery: ``GET /models`` entries (hand-written in OpenRouter's documented shape) as
ModelInfo with prices per million tokens, context windows and free markers."""

from __future__ import annotations

import json
from typing import Any

import pytest

import aipk_openai.plugin
import aipk_openrouter.plugin
from aipk import Provider
from aipk_openrouter import OPENROUTER, order_models, parse_models
from aipk_openrouter.models import per_million
from aipk_testkit.fixtures import make_engine

PROVIDER = Provider(spec=OPENROUTER, base_url=OPENROUTER.default_base_url)

LISTING: dict[str, Any] = {"data": [
    {"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "created": 1715367049,
     "context_length": 128000,
     "architecture": {"modality": "text+image->text", "input_modalities": ["text", "image"],
                      "output_modalities": ["text"]},
     "pricing": {"prompt": "0.0000025", "completion": "0.00001", "request": "0"},
     "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
     "supported_parameters": ["tools", "tool_choice", "max_tokens", "response_format"]},
    {"id": "qwen/qwen3-coder:free", "name": "Qwen: Qwen3 Coder (free)", "context_length": 262144,
     "architecture": {"modality": "text->text"},
     "pricing": {"prompt": "0", "completion": "0"},
     "supported_parameters": ["tools", "temperature"]},
    {"id": "openrouter/auto", "name": "Auto Router", "context_length": 2000000,
     "pricing": {"prompt": "-1", "completion": "-1"}},
    {"id": "deepseek/deepseek-r1", "context_length": None,
     "top_provider": {"context_length": 163840, "max_completion_tokens": None},
     "pricing": {"prompt": 0.0000004, "completion": "garbage"},
     "supported_parameters": ["reasoning", "include_reasoning", "structured_outputs"]},
    {"name": "no id"}, "not an object", {"id": ""},
]}


def test_entries_become_model_info() -> None:
    models = {m.id: m for m in parse_models(PROVIDER, LISTING)}
    assert list(models) == ["openai/gpt-4o", "qwen/qwen3-coder:free", "openrouter/auto",
                            "deepseek/deepseek-r1"]
    gpt = models["openai/gpt-4o"]
    assert (gpt.input_price, gpt.output_price) == (2.5, 10.0)  # exact, not 2.4999999999999996
    assert gpt.display_name == "OpenAI: GPT-4o" and gpt.created == 1715367049
    assert gpt.capabilities is not None
    assert (gpt.context_window, gpt.capabilities.max_output_tokens) == (128_000, 16_384)
    assert gpt.capabilities.vision and gpt.capabilities.tools and gpt.capabilities.json_mode
    assert not gpt.capabilities.reasoning
    assert gpt.extra == {"free": False} and gpt.provider == "openrouter"

    free = models["qwen/qwen3-coder:free"]
    assert (free.input_price, free.output_price, free.extra["free"]) == (0.0, 0.0, True)
    assert free.capabilities is not None and not free.capabilities.vision
    assert free.context_window == 262_144

    auto = models["openrouter/auto"]
    assert (auto.input_price, auto.output_price) == (None, None)  # variable price
    assert auto.extra["free"] is False

    r1 = models["deepseek/deepseek-r1"]
    assert r1.context_window == 163_840  # from top_provider
    assert (r1.input_price, r1.output_price) == (0.4, None)
    assert r1.capabilities is not None
    assert r1.capabilities.reasoning and r1.capabilities.json_mode
    assert not r1.capabilities.tools


def test_discovered_prices_drive_cheapest_first_and_free_only() -> None:
    models = parse_models(PROVIDER, LISTING)
    assert [m.id for m in order_models(models, "cheapest_first")][:2] == [
        "qwen/qwen3-coder:free", "openai/gpt-4o"]
    assert [m.id for m in order_models(models, "failover", free_only=True)] == [
        "qwen/qwen3-coder:free"]


def test_entries_without_metadata_fall_back_to_the_static_list() -> None:
    models = parse_models(PROVIDER, {"data": [{"id": "openai/gpt-4o-mini", "object": "model"},
                                              {"id": "unknown/model"}]})
    assert models[0].context_window == 128_000  # from the static list
    assert models[1].capabilities is None


@pytest.mark.parametrize("data", [None, [], {}, {"data": None}, {"data": {"id": "x"}}, "text"])
def test_unusable_listings_give_nothing(data: Any) -> None:
    assert parse_models(PROVIDER, data) == []


@pytest.mark.parametrize(("value", "expected"), [
    ("0.0000025", 2.5), ("0.00000015", 0.15), ("0", 0.0), (0, 0.0), ("1e-6", 1.0),
    ("-1", None), ("nan", None), ("inf", None), ("", None), (None, None), (True, None),
    ("1e400", None), ([], None),
])
def test_per_million(value: Any, expected: float | None) -> None:
    assert per_million(value) == expected


def test_listing_through_the_hooks() -> None:
    engine = make_engine(PROVIDER, {"openai": aipk_openai.plugin,
                                    "openrouter": aipk_openrouter.plugin})
    built = engine.models_request()
    assert built is not None and built[0].url == "https://openrouter.ai/api/v1/models"
    models = engine.models(json.dumps(LISTING).encode(), {})
    assert models[0].input_price == 2.5

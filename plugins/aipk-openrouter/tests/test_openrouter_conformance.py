"""The OpenRouter plugin passes the provider conformance suite against the emulator's OpenAI
protocol (whose OpenAI-style rate-limit headers the parser reads when OpenRouter's own are
absent)."""

from __future__ import annotations

from aipk_testkit.conformance import ProviderConformance


class TestOpenRouterConformance(ProviderConformance):
    provider = "openrouter"
    protocol = "openai"
    model = "openai/gpt-4o-mini"

"""The Cerebras plugin passes the provider conformance suite against the emulator's OpenAI
protocol (whose OpenAI-style rate-limit headers the Cerebras parser accepts as a fallback)."""

from __future__ import annotations

from aipk_testkit.conformance import ProviderConformance


class TestCerebrasConformance(ProviderConformance):
    provider = "cerebras"
    protocol = "openai"
    model = "gpt-oss-120b"

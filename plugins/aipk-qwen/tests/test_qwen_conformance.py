"""Both Qwen providers pass the provider conformance suite against the emulator's OpenAI
protocol (OpenAI-style rate-limit headers, which the Qwen parser reads first)."""

from __future__ import annotations

from aipk_testkit.conformance import ProviderConformance


class TestQwenPortalConformance(ProviderConformance):
    provider = "qwen"
    protocol = "openai"
    model = "qwen3-coder-plus"


class TestDashScopeConformance(ProviderConformance):
    provider = "dashscope"
    protocol = "openai"
    model = "qwen3-coder-plus"

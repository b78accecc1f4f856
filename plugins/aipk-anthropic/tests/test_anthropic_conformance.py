"""The Anthropic plugin passes the provider conformance suite against the emulator's
Anthropic Messages protocol."""

from __future__ import annotations

from aipk_testkit.conformance import ProviderConformance


class TestAnthropicConformance(ProviderConformance):
    provider = "anthropic"
    protocol = "anthropic"
    model = "claude-sonnet-4-5"
    api_key = "sk-ant-conformance-0123456789"

"""The OpenAI plugin, and its compatible presets, pass the provider conformance suite."""

from __future__ import annotations

from aipk_testkit.conformance import ProviderConformance


class TestOpenAIConformance(ProviderConformance):
    provider = "openai"
    model = "gpt-4o-mini"


class TestGroqPresetConformance(ProviderConformance):
    provider = "groq"
    model = "llama-3.3-70b-versatile"


class TestOllamaPresetConformance(ProviderConformance):
    provider = "ollama"
    model = "llama3.2"

"""OpenAI-compatible services: each is just a [`ProviderSpec`][aipk.ProviderSpec] with
``protocol="openai"``. A third party adds one the same way, from its own package::

    @aipk.hookimpl
    def aipk_providers():
        return [aipk.ProviderSpec(name="acme", protocol="openai",
                                  default_base_url="https://api.acme.example/v1",
                                  env_vars=("ACME_API_KEY",))]
"""

from __future__ import annotations

from aipk import Capabilities, ProviderSpec

__all__ = ["GROQ", "LMSTUDIO", "OLLAMA", "PRESETS"]

GROQ = ProviderSpec(
    name="groq", protocol="openai", display_name="Groq",
    default_base_url="https://api.groq.com/openai/v1", env_vars=("GROQ_API_KEY",),
    default_model="llama-3.3-70b-versatile",
    # json_schema only on some Groq models: JSON mode plus validation works on all of them.
    options={"structured_output": "json_object"},
)
LMSTUDIO = ProviderSpec(
    name="lmstudio", protocol="openai", display_name="LM Studio",
    default_base_url="http://localhost:1234/v1", env_vars=("LMSTUDIO_API_KEY",),
    base_url_env="LMSTUDIO_BASE_URL", key_optional=True, auth_kinds=("none", "api_key"),
    capabilities=Capabilities(vision=False),
)
OLLAMA = ProviderSpec(
    name="ollama", protocol="openai", display_name="Ollama",
    default_base_url="http://localhost:11434/v1", env_vars=("OLLAMA_API_KEY",),
    base_url_env="OLLAMA_BASE_URL", key_optional=True, auth_kinds=("none", "api_key"),
    capabilities=Capabilities(vision=False),
)
PRESETS = (GROQ, LMSTUDIO, OLLAMA)

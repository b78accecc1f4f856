"""The conformance suite adapts to a third-party provider: it reads the declared capabilities
(tool tests skip for ``tools=False``), and checks a provider's own wait header, which the
plugin turns into the wait with ``aipk_retry_after``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest

import aipk
from aipk.registry import default_registry
from aipk_testkit.conformance import ProviderConformance

ACME = aipk.ProviderSpec(
    name="acme", protocol="openai", display_name="Acme", default_base_url="http://acme.test/v1",
    env_vars=("ACME_API_KEY",), capabilities=aipk.Capabilities(tools=False),
)


class AcmePlugin:
    """An OpenAI-compatible provider whose 429s say how long to wait in ``acme-wait-ms``."""

    @aipk.hookimpl
    def aipk_providers(self) -> Sequence[aipk.ProviderSpec]:
        return (ACME,)

    @aipk.hookimpl_for(provider="acme")
    def aipk_retry_after(self, provider: aipk.Provider, status: int,
                         headers: Mapping[str, str], now: float) -> float | None:
        raw = headers.get("acme-wait-ms")
        return float(raw) / 1000 if raw else None


@pytest.fixture(autouse=True)
def acme_registered() -> Iterator[None]:
    registry = default_registry()
    registry.register(AcmePlugin(), name="acme-test")
    try:
        yield
    finally:
        registry.unregister("acme-test")


class TestAcmeConformance(ProviderConformance):
    provider = "acme"
    protocol = "openai"
    wait_header = ("acme-wait-ms", 1000.0)


def test_tool_tests_skip_for_a_provider_without_tools() -> None:
    suite = TestAcmeConformance()
    assert suite.capabilities().tools is False
    with pytest.raises(pytest.skip.Exception, match="acme declares tools=False"):
        suite.test_chat_tool_calls(None, None)  # type: ignore[arg-type]


def test_sent_parameter_follows_the_declared_path() -> None:
    suite = TestAcmeConformance()
    assert suite.sent_parameter({"temperature": 0}, "temperature") == 0
    assert suite.sent_parameter({"temperature": 0}, "top_p") is None
    nested = type("Nested", (TestAcmeConformance,), {
        "parameter_paths": {"temperature": ("options", "temperature")}})()
    assert nested.sent_parameter({"options": {"temperature": 0.5}}, "temperature") == 0.5
    assert nested.sent_parameter({"temperature": 0.5}, "temperature") is None

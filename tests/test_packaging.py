"""The package as users meet it: ``python -m aipk``, ``aipk.__version__``, provider ids listed
before any plugin loads, install hints naming the right distribution, and clients that close
only what they opened."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import aipk
from aipk import Message
from aipk.errors import UnknownProviderError
from aipk.registry import Registry, provider_distributions
from aipk.transports import AsyncHttpxTransport, HttpxTransport
from aipk_testkit.emulator import Emulator, Reply

KEY = "sk-test-0123456789abcdef"


def test_python_dash_m_aipk_runs_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "aipk", "providers"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "aipk-openai" in result.stdout
    assert "groq" in result.stdout


def test_version_is_the_installed_distributions() -> None:
    assert aipk.__version__ == metadata.version("aipk-core")


def test_every_provider_id_is_listed_before_any_plugin_loads() -> None:
    code = textwrap.dedent("""
        import sys, aipk
        served = {p: i.distribution for i in aipk.registry.available() for p in i.providers}
        print(sorted(served.items()))
        assert not any(m.startswith("aipk_") for m in sys.modules), "a plugin was imported"
        assert "httpx" not in sys.modules
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env={**os.environ, "AIPK_TRACE_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    for provider, dist in [("groq", "aipk-openai"), ("ollama", "aipk-openai"),
                           ("lmstudio", "aipk-openai"), ("dashscope", "aipk-qwen"),
                           ("qwen", "aipk-qwen"), ("openai", "aipk-openai")]:
        assert f"('{provider}', '{dist}')" in result.stdout


def test_the_declared_providers_match_what_the_plugins_serve() -> None:
    registry = Registry()
    registry.load()
    # in-process plugins other tests registered with the default registry declare nothing
    declared = {p: i.distribution for i in aipk.registry.available()
                if i.distribution is not None for p in i.providers}
    served = {p: i.distribution for i in registry.available() for p in i.providers}
    assert declared == served


def test_every_first_party_provider_maps_to_its_distribution() -> None:
    known = provider_distributions()
    assert known["groq"] == known["lmstudio"] == "aipk-openai"
    assert known["dashscope"] == "aipk-qwen"
    assert set(aipk.registry.FIRST_PARTY_PROVIDERS) <= set(known)


@pytest.mark.parametrize(("name", "distribution"), [("groq", "aipk-openai"),
                                                     ("dashscope", "aipk-qwen")])
def test_a_provider_from_a_package_that_is_not_installed_names_the_package(
        name: str, distribution: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aipk.registry, "_entry_points", lambda group="": [])  # nothing installed
    monkeypatch.setattr(aipk.registry, "_listing", lambda: ([], {}))
    monkeypatch.setattr(aipk.registry, "_plugin_declarations", lambda: ([], {}))
    with pytest.raises(UnknownProviderError) as info:
        Registry().spec(name)
    message = str(info.value)
    assert f"pip install {distribution}" in message
    assert f"aipk-{name}" not in message
    assert info.value.distribution == distribution


def test_an_installed_package_that_did_not_load_is_pointed_at(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPK_LOAD_PLUGINS", "anthropic")
    with pytest.raises(UnknownProviderError) as info:
        Registry().spec("groq")
    message = str(info.value)
    assert "aipk-openai, which is installed but did not load" in message
    assert "AIPK_LOAD_PLUGINS" in message
    assert "pip install" not in message


@pytest.mark.parametrize(("typo", "meant"), [("opnai", "openai"), ("antropic", "anthropic"),
                                             ("gemnii", "gemini")])
def test_a_typo_gets_did_you_mean_not_an_install_line(typo: str, meant: str) -> None:
    with pytest.raises(UnknownProviderError) as info:
        Registry().spec(typo)
    message = str(info.value)
    assert f"Did you mean '{meant}'" in message
    assert "pip install" not in message
    assert meant in info.value.suggestions


def test_a_shared_transport_outlives_the_client_that_closes_first() -> None:
    with Emulator() as emu:
        emu.set_default(Reply(text="shared"))
        transport = HttpxTransport()
        first = aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY,
                            transport=transport)
        second = aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY,
                             transport=transport)
        ask = {"model": "gpt-4o-mini", "messages": [Message.user("hi")]}
        assert first.chat(**ask).text == "shared"
        first.close()
        assert second.chat(**ask).text == "shared"
        second.close()
        with pytest.raises(aipk.ClientClosedError):  # the client is closed...
            second.chat(**ask)
        with aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY,
                         transport=transport) as third:  # ...its transport is the caller's
            assert third.chat(**ask).text == "shared"
        transport.close()


def test_a_shared_async_transport_outlives_the_client_that_closes_first() -> None:
    async def main() -> list[str]:
        with Emulator() as emu:
            emu.set_default(Reply(text="shared"))
            transport = AsyncHttpxTransport()
            ask = {"model": "gpt-4o-mini", "messages": [Message.user("hi")]}
            texts = []
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key=KEY,
                                        transport=transport) as first:
                texts.append((await first.chat(**ask)).text)
            async with aipk.AsyncClient("openai", base_url=emu.url("openai"), api_key=KEY,
                                        transport=transport) as second:
                texts.append((await second.chat(**ask)).text)
            await transport.close()
            return texts

    assert asyncio.run(main()) == ["shared", "shared"]


def test_a_router_sharing_a_transport_leaves_it_open() -> None:
    with Emulator() as emu:
        emu.set_default(Reply(text="routed"))
        transport = HttpxTransport()
        targets = [aipk.Target(provider="openai", model="gpt-4o-mini", api_key=KEY,
                               base_url=emu.url("openai"))]
        with aipk.Router(targets, client_options={"transport": transport}) as router:
            assert router.chat(messages=[Message.user("hi")]).text == "routed"
        with aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY,
                         transport=transport) as client:
            assert client.chat(model="gpt-4o-mini", messages=[Message.user("hi")]).text == "routed"
        transport.close()

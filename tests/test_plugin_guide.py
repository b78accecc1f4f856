"""The OpenAI-compatible plugin of docs/plugins.md and README.md works as shown: its spec,
registered next to aipk-openai, serves chat, streams and errors against the loopback emulator,
and its pyproject declares both entry-point groups."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import aipk
import aipk_openai.plugin
from aipk_testkit.emulator import Emulator, Fault, Reply

from .docs_blocks import Block, blocks, tomllib

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "docs" / "plugins.md", ROOT / "README.md"]


def spec_block(page: Path) -> Block:
    return next(block for block in blocks(page)
                if block.lang == "python" and "def aipk_providers" in block.body)


def plugin_module(page: Path) -> types.ModuleType:
    module = types.ModuleType("aipk_acme")
    exec(compile(spec_block(page).body, str(page), "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_the_pages_pyproject_declares_both_entry_point_groups(page: Path) -> None:
    toml = next(block.body for block in blocks(page)
                if block.lang == "toml" and "aipk.plugins" in block.body)
    groups = tomllib.loads(toml)
    groups = groups.get("project", groups)["entry-points"]
    assert groups["aipk.plugins"] == {"acme": "aipk_acme"}
    assert set(groups["aipk.providers"]) == {"acme"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_the_pages_openai_compatible_spec_serves_acme(page: Path,
                                                     aipk_emulator: Emulator) -> None:
    module = plugin_module(page)
    aipk_emulator.enqueue(Reply(text="hello from acme", chunk_size=3),
                          Reply(text="streamed"), Fault.status(401))
    with aipk.registry.isolated_registry([aipk_openai.plugin, module]) as registry:
        assert registry.spec("acme").protocol == "openai"
        with aipk.Client("acme", base_url=aipk_emulator.url("openai"),
                         api_key="sk-acme-guide") as client:
            reply = client.chat(model="acme-large", messages=[aipk.Message.user("hi")])
            with client.stream(model="acme-large",
                               messages=[aipk.Message.user("hi")]) as stream:
                streamed = "".join(stream.text())
            with pytest.raises(aipk.errors.AuthenticationError) as failed:
                client.chat(model="acme-large", messages=[aipk.Message.user("hi")])
    assert (reply.text, reply.provider, reply.model) == ("hello from acme", "acme", "acme-large")
    assert streamed == "streamed"
    assert failed.value.provider == "acme" and "sk-acme-guide" not in str(failed.value)
    assert aipk_emulator.requests[0].headers["authorization"] == "Bearer sk-acme-guide"

"""A process's first call, as a CLI or serverless function makes it: a fresh interpreter builds
an `AsyncClient` for ``openai`` on the aiohttp transport and asks the emulator once. It loads
the OpenAI plugin and not the plugin of another provider (an installed distribution whose
entry points declare another provider), nor importlib.metadata, cattrs, the OAuth code, the key
pools (one key is a SingleCredential), the sync client, the stream decoding machinery (loaded
by the first stream) or the routers' metrics (loaded by the first router)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aipk_testkit.emulator import Emulator

OTHER = """
import aipk

@aipk.hookimpl
def aipk_providers():
    return [aipk.ProviderSpec(name="elsewhere", protocol="elsewhere",
                              default_base_url="http://127.0.0.1:9/v1")]
"""

FIRST_CALL = """
import asyncio, sys
import aipk
from aipk.transports import AiohttpTransport

async def main():
    transport = AiohttpTransport()
    client = aipk.AsyncClient("openai", base_url=sys.argv[1], api_key="sk-first",
                              transport=transport)
    reply = await client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("Hello")])
    await client.close()
    await transport.close()
    return reply.text

text = asyncio.run(main())
assert text, text
heavy = sorted(m for m in ("aipk_elsewhere", "importlib.metadata", "cattrs",
                           "aipk.credentials._flows", "aipk.credentials._login",
                           "aipk.credentials._pool", "aipk.credentials._health", "aipk._client",
                           "aipk._session", "aipk._sniff", "aipk._decoding",
                           "aipk.observability._routers", "aipk.observability._targets")
               if m in sys.modules)
assert heavy == [], heavy
assert "aipk_openai.plugin" in sys.modules
installed = {info.name: info for info in aipk.registry.available()}
assert installed["elsewhere"].loaded is False, installed
assert installed["openai"].loaded is True, installed
print("ok", text)
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="before Python 3.11 plugins are "
                    "found through importlib.metadata")
def test_a_first_call_loads_only_the_plugins_it_calls(aipk_emulator: Emulator,
                                                      tmp_path: Path) -> None:
    (tmp_path / "aipk_elsewhere.py").write_text(OTHER)
    info = tmp_path / "aipk_elsewhere-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aipk-elsewhere\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[aipk.plugins]\nelsewhere = aipk_elsewhere\n\n"
        "[aipk.providers]\nelsewhere = aipk_elsewhere\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {k: v for k, v in os.environ.items() if k != "AIPK_LOAD_PLUGINS"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FIRST_CALL), aipk_emulator.url("openai")],
        capture_output=True, text=True, check=False, env={**env, "PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok "), result.stdout

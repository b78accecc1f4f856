"""`import aipk` plus `aipk.registry.available()` stays cheap: records, clients and the HTTP
client load on first use; listing plugins imports none of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import aipk
from aipk import registry


def test_import_and_listing_load_no_records_and_no_http_client() -> None:
    code = textwrap.dedent("""
        import sys, aipk
        infos = aipk.registry.available()
        assert infos, "the installed plugins are listed"
        loaded = sorted(m for m in sys.modules if m.startswith("aipk"))
        assert loaded == ["aipk", "aipk.errors", "aipk.hookspecs", "aipk.registry"], loaded
        assert "httpx" not in sys.modules
        for name in aipk.__all__:
            getattr(aipk, name)
        from aipk import Client, Message, TextDelta, parse_count  # noqa: F401
        assert aipk.state.MemoryStore is aipk.MemoryStore
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env={**os.environ, "AIPK_TRACE_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_available_before_and_after_the_default_registry_exists_agree() -> None:
    saved = registry._default
    try:
        registry._default = None
        before = registry.available()
        registry._default = registry.Registry()
        assert registry.available() == before
    finally:
        registry._default = saved
    assert {info.name for info in before} >= {"openai"}
    assert all(not info.loaded for info in before)
    assert aipk.registry is registry

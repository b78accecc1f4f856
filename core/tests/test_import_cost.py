"""`import aipk` plus `aipk.registry.available()` stays cheap: records, clients and the HTTP
client load on first use; listing plugins imports none of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import aipk
from aipk import registry


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plugin distribution on the path (dist-info with entry points, and its module), so
    these tests need no other aipk package installed."""
    (tmp_path / "aipk_cost_probe.py").write_text(
        "import aipk\n\n@aipk.hookimpl\ndef aipk_providers():\n    return []\n")
    info = tmp_path / "aipk_cost_probe-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aipk-cost-probe\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[aipk.plugins]\ncostprobe = aipk_cost_probe\n\n"
        "[aipk.providers]\ncostprobe = aipk_cost_probe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_import_and_listing_load_no_records_and_no_http_client(installed_plugin: Path) -> None:
    code = textwrap.dedent("""
        import sys, aipk
        infos = {info.name: info for info in aipk.registry.available()}
        assert infos["costprobe"].providers == ("costprobe",), infos
        loaded = sorted(m for m in sys.modules if m.startswith("aipk"))
        assert loaded == ["aipk", "aipk.errors", "aipk.hookspecs", "aipk.registry"], loaded
        assert "httpx" not in sys.modules
        for name in aipk.__all__:
            getattr(aipk, name)
        from aipk import Client, Message, TextDelta, parse_count  # noqa: F401
        assert aipk.state.MemoryStore is aipk.MemoryStore
        print("ok")
    """)
    path = os.pathsep.join([str(installed_plugin), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env={**os.environ, "AIPK_TRACE_PLUGINS": "",
                                              "PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_available_before_and_after_the_default_registry_exists_agree(
        installed_plugin: Path) -> None:
    saved = registry._default
    try:
        registry._default = None
        before = registry.available()
        registry._default = registry.Registry()
        assert registry.available() == before
    finally:
        registry._default = saved
    assert {info.name for info in before} >= {"costprobe"}
    assert all(not info.loaded for info in before)
    assert aipk.registry is registry

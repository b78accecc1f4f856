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
        assert loaded == ["aipk", "aipk._records", "aipk.errors", "aipk.hookspecs",
                          "aipk.registry"], loaded
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


@pytest.mark.skipif(sys.version_info < (3, 11), reason="before Python 3.11 plugins are "
                    "found through importlib.metadata")
def test_loading_plugins_reads_entry_points_without_importlib_metadata(
        installed_plugin: Path) -> None:
    """A first call loads its plugins from the dist-info directories directly; importing
    importlib.metadata (and the e-mail parser under it) is left to listing plugins."""
    code = textwrap.dedent("""
        import sys, aipk
        from aipk.registry import Registry
        registry = Registry()
        registry.load()
        assert registry.pm.get_plugin("costprobe") is not None, registry.pm.list_name_plugin()
        assert "importlib.metadata" not in sys.modules
        infos = {info.name: info for info in registry.available()}
        assert infos["costprobe"].loaded and infos["costprobe"].distribution == "aipk-cost-probe"
        print("ok")
    """)
    path = os.pathsep.join([str(installed_plugin), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env={**os.environ, "AIPK_TRACE_PLUGINS": "",
                                              "AIPK_LOAD_PLUGINS": "costprobe",
                                              "PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_client_with_an_api_key_loads_no_oauth_or_cattrs_modules() -> None:
    code = textwrap.dedent("""
        import sys, aipk
        aipk.registry.register(sys.modules["__main__"], name="probe")
        client = aipk.Client("probe", api_key="sk-probe")
        heavy = sorted(m for m in sys.modules if m in {
            "cattrs", "difflib", "aipk._schema", "aipk._jsonschema", "aipk.credentials._flows",
            "aipk.credentials._oauth", "aipk.credentials._oauthtoken",
            "aipk.credentials._login", "aipk.credentials._loopback", "aipk.credentials._store"})
        assert heavy == [], heavy
        from aipk.credentials import OAuthClient, KeyPool  # still there, loaded on first use
        assert OAuthClient.__module__ == "aipk.credentials._flows"
        assert KeyPool.__module__ == "aipk.credentials._pool"
        print("ok")
    """)
    code = textwrap.dedent("""
        import aipk

        @aipk.hookimpl
        def aipk_providers():
            return [aipk.ProviderSpec(name="probe", protocol="openai",
                                      default_base_url="http://127.0.0.1:9/v1")]
    """) + code
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env={**os.environ, "AIPK_LOAD_PLUGINS": "",
                                              "AIPK_TRACE_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_public_credentials_name_resolves() -> None:
    from aipk import credentials

    for name in credentials.__all__:
        assert getattr(credentials, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        credentials.no_such_name  # noqa: B018


def test_every_public_registry_name_resolves_and_loading_waits_for_a_registry() -> None:
    code = textwrap.dedent("""
        import sys, aipk
        from aipk import registry
        assert "aipk._loading" not in sys.modules and "aipk._dispatch" not in sys.modules
        for name in registry.__all__:
            assert getattr(registry, name) is not None, name
        from aipk.registry import FastHook, HookCallers, PluginWarning
        assert issubclass(PluginWarning, UserWarning)
        assert HookCallers.__module__ == FastHook.__module__ == "aipk._dispatch"
        try:
            registry.no_such_name
        except AttributeError as exc:
            assert "no_such_name" in str(exc), exc
        else:
            raise AssertionError("no AttributeError")
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env={**os.environ, "AIPK_TRACE_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

"""Plugin discovery and loading, with real entry points written to a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import aipk
from aipk.errors import PluginError, UnknownProviderError
from aipk.registry import PluginWarning, Registry, isolated_registry


def _install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str,
                  dist: str = "aipk-fake") -> None:
    """Write a module and a dist-info with an aipk.plugins entry point onto sys.path."""
    module = f"aipk_fake_{name}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / f"{dist.replace('-', '_')}_{name}-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}-{name}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[aipk.plugins]\n{name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(module, None)


GOOD = """
    import aipk

    @aipk.hookimpl
    def aipk_providers():
        return [aipk.ProviderSpec(name="goodprov", protocol="openai",
                                  default_base_url="http://127.0.0.1:9/v1")]
"""


def test_available_lists_installed_plugins_without_importing_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(tmp_path, monkeypatch, "good", GOOD)
    code = textwrap.dedent("""
        import sys, aipk
        infos = aipk.registry.available()
        names = {i.name: i for i in infos}
        assert "good" in names, names
        info = names["good"]
        assert info.distribution == "aipk-fake-good" and info.version == "0.3.1", info
        assert not info.loaded
        assert "aipk_fake_good" not in sys.modules, "available() must not import plugins"
        assert "httpx" not in sys.modules, "import aipk must not import httpx"
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_loading_reports_provider_names_per_plugin(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(tmp_path, monkeypatch, "good", GOOD)
    registry = Registry()
    registry.load()
    info = {i.name: i for i in registry.available()}["good"]
    assert info.loaded
    assert info.providers == ("goodprov",)


def test_broken_plugin_is_isolated_and_reported(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPK_STRICT_PLUGINS", raising=False)
    _install_fake(tmp_path, monkeypatch, "broken", "raise RuntimeError('boom at import')\n")
    _install_fake(tmp_path, monkeypatch, "good", GOOD)
    registry = Registry()
    with pytest.warns(PluginWarning, match="broken.*boom at import"):
        registry.load()
    info = {i.name: i for i in registry.available()}
    assert info["broken"].loaded is False
    assert info["broken"].error == "RuntimeError: boom at import"
    assert info["broken"].distribution == "aipk-fake-broken"
    assert registry.spec("goodprov").name == "goodprov"  # the others still work


def test_strict_mode_makes_a_broken_plugin_fatal(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(tmp_path, monkeypatch, "broken2", "raise ImportError('missing dep')\n")
    monkeypatch.setenv("AIPK_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken2.*missing dep") as info:
        Registry().load()
    assert info.value.plugin == "broken2"


def test_misspelled_hook_disables_only_that_plugin(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPK_STRICT_PLUGINS", raising=False)
    _install_fake(tmp_path, monkeypatch, "typo", """
        import aipk

        @aipk.hookimpl
        def aipk_build_requets(provider, request, stream):
            return None
    """)
    _install_fake(tmp_path, monkeypatch, "good", GOOD)
    registry = Registry()
    with pytest.warns(PluginWarning, match="unknown hook.*aipk_build_requets"):
        registry.load()
    info = {i.name: i for i in registry.available()}
    assert not info["typo"].loaded
    assert "aipk_build_requets" in (info["typo"].error or "")
    assert registry.spec("goodprov").protocol == "openai"


def test_good_third_party_plugin_adds_a_provider(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(tmp_path, monkeypatch, "good", GOOD)
    registry = Registry()
    spec = registry.spec("goodprov")
    assert spec.default_base_url == "http://127.0.0.1:9/v1"
    info = {i.name: i for i in registry.available()}["good"]
    assert info.loaded and info.providers == ("goodprov",) and info.version == "0.3.1"


@pytest.mark.parametrize(("selection", "expected"), [("", set()), ("good", {"good"})])
def test_load_plugins_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                selection: str, expected: set[str]) -> None:
    _install_fake(tmp_path, monkeypatch, "good", GOOD)
    _install_fake(tmp_path, monkeypatch, "other", GOOD.replace("goodprov", "otherprov"))
    monkeypatch.setenv("AIPK_LOAD_PLUGINS", selection)
    registry = Registry()
    registry.load()
    loaded = {i.name for i in registry.available() if i.loaded}
    assert loaded == expected


def test_unknown_provider_lists_installed_and_install_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(tmp_path, monkeypatch, "good", GOOD)
    with pytest.raises(UnknownProviderError) as info:
        Registry().spec("nosuch")
    message = str(info.value)
    assert "pip install aipk-nosuch" in message
    assert "goodprov" in message


def test_in_process_registration_and_isolation() -> None:
    class Plugin:
        @aipk.hookimpl
        def aipk_providers(self) -> list[aipk.ProviderSpec]:
            return [aipk.ProviderSpec(name="inproc", protocol="openai",
                                      default_base_url="http://localhost:1/v1")]

    with isolated_registry([Plugin()]) as registry:
        assert aipk.registry.default_registry() is registry
        assert registry.spec("inproc").name == "inproc"
        assert "openai" not in registry.specs()  # entry points not loaded in isolation
    assert aipk.registry.default_registry() is not registry


def test_in_process_plugin_with_unknown_hook_is_refused() -> None:
    class Bad:
        @aipk.hookimpl
        def aipk_no_such_hook(self) -> None:
            return None

    registry = Registry(entry_points=False)
    with pytest.raises(PluginError, match="aipk_no_such_hook"):
        registry.register(Bad(), name="bad")
    assert registry.pm.get_plugin("bad") is None


def test_duplicate_provider_names_warn_and_first_wins() -> None:
    def make(url: str) -> object:
        class P:
            @aipk.hookimpl
            def aipk_providers(self) -> list[aipk.ProviderSpec]:
                return [aipk.ProviderSpec(name="dup", protocol="openai", default_base_url=url)]
        return P()

    registry = Registry(entry_points=False)
    registry.register(make("http://first/v1"), name="first")
    registry.register(make("http://second/v1"), name="second")
    with pytest.warns(PluginWarning, match="declared by both"):
        spec = registry.spec("dup")
    assert spec.default_base_url == "http://first/v1"


def test_plugin_returning_wrong_type_is_a_plugin_error() -> None:
    class P:
        @aipk.hookimpl
        def aipk_providers(self) -> list[object]:
            return [{"name": "dict-not-spec"}]

    registry = Registry(entry_points=False)
    registry.register(P(), name="wrongtype")
    with pytest.raises(PluginError, match="wrongtype.*ProviderSpec"):
        registry.specs()

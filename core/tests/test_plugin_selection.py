"""A client loads only the plugins its provider's hooks call (its provider's plugin, its
protocol's home plugin, plugins declaring no providers), registered in the order loading every
plugin gives; loading the rest later changes nothing for it. Real entry points, written as
dist-info directories, one per ``sys.path`` entry so their order is fixed."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import aipk
from aipk.registry import Registry

PLUGIN = """
    import aipk

    NAMES = {names!r}

    @aipk.hookimpl
    def aipk_providers():
        return [aipk.ProviderSpec(name=name, protocol=protocol,
                                  default_base_url="http://127.0.0.1:9/v1")
                for name, protocol in NAMES]

    @aipk.hookimpl
    def aipk_build_request(provider, request):
        return None
"""
WATCHER = """
    import aipk

    @aipk.hookimpl
    def aipk_build_request(provider, request):
        return None

    @aipk.hookimpl
    def aipk_providers():
        return [aipk.ProviderSpec(name="sel-undeclared", protocol="sel-undeclared",
                                  default_base_url="http://127.0.0.1:9/v1")]
"""
#: entry-point name -> (providers its hook declares, providers its dist-info declares);
#: in sys.path order: the protocol's home comes before the provider's own plugin
PLUGINS = {
    "home": ([("sel-home", "sel-home")], ["sel-home"]),
    "other": ([("sel-other", "sel-other")], ["sel-other"]),
    "child": ([("sel-child", "sel-home")], ["sel-child"]),
    "watch": ([], []),
}


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    entries = []
    for name, (names, declared) in PLUGINS.items():
        entry = tmp_path / name
        entry.mkdir()
        module = f"aipk_sel_{name}"
        source = WATCHER if name == "watch" else PLUGIN.format(names=names)
        (entry / f"{module}.py").write_text(textwrap.dedent(source))
        info = entry / f"aipk_sel_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: aipk-sel-{name}\n"
                                       "Version: 1.0\n")
        lines = [f"[aipk.plugins]\n{name} = {module}\n"]
        if declared:
            lines.append("[aipk.providers]\n" + "".join(f"{p} = {module}\n" for p in declared))
        (info / "entry_points.txt").write_text("\n".join(lines))
        entries.append(str(entry))
        sys.modules.pop(module, None)
    monkeypatch.setattr(sys, "path", [*entries, *sys.path])
    monkeypatch.setenv("AIPK_LOAD_PLUGINS", ",".join(PLUGINS))
    return entries


def _loaded(registry: Registry) -> set[str]:
    return {name for name in PLUGINS if registry.pm.get_plugin(name) is not None}


def _order(callers: aipk.registry.HookCallers) -> list[str]:
    return [impl.plugin_name for impl in callers.aipk_build_request._caller.get_hookimpls()]


def _provider(registry: Registry, name: str) -> aipk.Provider:
    spec = registry.spec(name)
    return aipk.Provider(spec=spec, base_url=spec.default_base_url)


@pytest.mark.usefixtures("installed")
def test_a_provider_loads_its_plugin_its_protocols_home_and_undeclared_plugins() -> None:
    everything = Registry()
    everything.load()
    registry = Registry()
    child = _provider(registry, "sel-child")
    assert _loaded(registry) == {"home", "child", "watch"}
    hooks = registry.hooks_for(child)
    assert _loaded(registry) == {"home", "child", "watch"}
    assert _order(hooks) == _order(everything.hooks_for(_provider(everything, "sel-child")))
    assert [n for n, _ in registry.pm.list_name_plugin()] == [
        n for n, _ in everything.pm.list_name_plugin() if n != "other"]
    infos = {info.name: info for info in registry.available()}
    assert infos["other"].loaded is False and infos["other"].providers == ("sel-other",)
    assert infos["child"].loaded and infos["child"].providers == ("sel-child",)

    registry.load()  # the rest, as a client of another provider or specs() would
    assert _loaded(registry) == set(PLUGINS)
    assert [n for n, _ in registry.pm.list_name_plugin()] == [
        n for n, _ in everything.pm.list_name_plugin()]
    assert hooks.stale
    hooks.replan()
    assert "other" not in _order(hooks)
    assert _order(hooks) == _order(everything.hooks_for(_provider(everything, "sel-child")))
    assert registry.specs().keys() == everything.specs().keys()


@pytest.mark.usefixtures("installed")
def test_whatever_entry_points_cannot_answer_loads_every_plugin() -> None:
    registry = Registry()
    registry.spec("sel-undeclared")  # declared only by a hook: every plugin is loaded
    assert _loaded(registry) == set(PLUGINS)
    registry = Registry()
    with pytest.raises(aipk.UnknownProviderError, match="sel-home"):
        registry.spec("sel-nowhere")  # the error lists every installed provider
    assert _loaded(registry) == set(PLUGINS)


@pytest.mark.usefixtures("installed")
def test_a_client_of_one_provider_and_then_of_another(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    home = aipk.Client("sel-home", registry=registry, api_key="sk-test")
    assert _loaded(registry) == {"home", "watch"}
    other = aipk.Client("sel-other", registry=registry, api_key="sk-test")
    assert _loaded(registry) == {"home", "other", "watch"}
    for client in (home, other):
        client.close()
    monkeypatch.setenv("AIPK_LOAD_PLUGINS", "home,child")
    registry = Registry()
    registry.spec("sel-child")
    assert _loaded(registry) == {"home", "child"}

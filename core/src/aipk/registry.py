"""Plugin discovery and loading.

Provider plugins register under the ``aipk.plugins`` entry-point group; the entry-point name is
the plugin's name (what ``AIPK_LOAD_PLUGINS`` lists), and the provider ids a plugin serves are
declared under ``aipk.providers`` (name = provider id, value = the plugin's ``aipk.plugins``
value). [`available()`][aipk.registry.available] lists them *without importing them*.
Loading happens on first use (creating a client loads only the plugins its provider's hooks
call, picked by the ``aipk.providers`` entry points; see `Registry.hooks_for`) and isolates
failures: a plugin that raises on import, or that implements a hook name aipk does not know, is
reported by [`available()`][aipk.registry.available] and by a
[`PluginWarning`][aipk.registry.PluginWarning], and every other plugin still works.

Environment variables, read when plugins load (not at import):

* ``AIPK_LOAD_PLUGINS``: unset allows all; empty loads none; ``a,b`` loads only those entry
  points.
* ``AIPK_STRICT_PLUGINS=1``: a plugin that fails to load raises
  [`PluginError`][aipk.errors.PluginError] instead of warning (for CI).
* ``AIPK_TRACE_PLUGINS=1``: log every hook call at debug level on the ``aipk.plugins`` logger.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from ._records import record
from .errors import UnknownProviderError

if TYPE_CHECKING:  # _dispatch and _loading load with the first Registry (see `__getattr__`)
    from importlib.metadata import EntryPoint

    from ._dispatch import FastHook as FastHook  # not in __all__, still importable from here
    from ._dispatch import HookCallers
    from ._loading import Declarations, PluginLoader, PluginWarning
    from ._providers import Provider, ProviderSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY_PROVIDERS",
    "PROVIDERS_GROUP",
    "HookCallers",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "available",
    "default_registry",
    "isolated_registry",
    "provider_distributions",
    "register",
]

ENTRY_POINT_GROUP = "aipk.plugins"
#: Entry-point group naming every provider id a plugin serves, so they can be listed without
#: importing the plugin: name = provider id, value = the plugin's ``aipk.plugins`` value.
PROVIDERS_GROUP = "aipk.providers"

#: The first-party provider ids and the distribution serving each: the install hint for a
#: provider whose plugin is not installed.
FIRST_PARTY_PROVIDERS: Mapping[str, str] = MappingProxyType({
    "openai": "aipk-openai",
    "groq": "aipk-openai",
    "lmstudio": "aipk-openai",
    "ollama": "aipk-openai",
    "ollama-native": "aipk-ollama",
    "anthropic": "aipk-anthropic",
    "gemini": "aipk-gemini",
    "cerebras": "aipk-cerebras",
    "openrouter": "aipk-openrouter",
    "qwen": "aipk-qwen",
    "dashscope": "aipk-qwen",
})


def _entry_points(group: str = ENTRY_POINT_GROUP) -> list[EntryPoint]:
    # importlib.metadata costs ~30 ms to import; only listing plugins needs it.
    from importlib import metadata

    return list(metadata.entry_points(group=group))


def _plugin_declarations() -> Declarations:
    """The ``aipk.plugins`` entry points (in order) and the provider ids each plugin value
    declares (``aipk.providers``): read from the ``*.dist-info`` directories directly
    (`aipk._entrypoints`), or through importlib.metadata when only it can tell."""
    from ._entrypoints import find_groups

    found = find_groups((ENTRY_POINT_GROUP, PROVIDERS_GROUP))
    if found is None:
        plugins, listed = _listing()
        return list(plugins), listed
    declared: dict[str, list[str]] = {}
    for ep in found[PROVIDERS_GROUP]:
        declared.setdefault(ep.value, []).append(ep.name)
    return list(found[ENTRY_POINT_GROUP]), declared


def _listing() -> tuple[list[EntryPoint], dict[str, list[str]]]:
    """The plugins' entry points and the provider ids each declares, from one scan of the
    installed distributions (each scan costs milliseconds)."""
    from importlib import metadata

    found = metadata.entry_points()
    declared: dict[str, list[str]] = {}
    for ep in found.select(group=PROVIDERS_GROUP):
        declared.setdefault(ep.value, []).append(ep.name)
    return list(found.select(group=ENTRY_POINT_GROUP)), declared


def _distribution_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def provider_distributions() -> dict[str, str]:
    """Every known provider id -> the distribution that serves it: the installed plugins'
    declarations (``aipk.providers`` entry points) over the first-party table. Imports no
    plugin."""
    known = dict(FIRST_PARTY_PROVIDERS)
    for ep in _entry_points(PROVIDERS_GROUP):
        name, _ = _distribution_of(ep)
        if name is not None:
            known[ep.name] = name
    return known


def _plugin_info(ep: EntryPoint, declared: Mapping[str, list[str]], **state: Any) -> PluginInfo:
    distribution, version = _distribution_of(ep)
    providers = state.pop("providers", None)
    if providers is None:
        providers = tuple(sorted(set(declared.get(ep.value, ()))))
    return PluginInfo(name=ep.name, value=ep.value, distribution=distribution, version=version,
                      providers=providers, **state)


log = logging.getLogger("aipk.plugins")


@record(kw_only=True)
class PluginInfo:
    """One plugin: where it comes from and whether it loaded.

    Attributes:
        name: The entry-point name (or the in-process registration name).
        value: The entry-point value: the module (or object) the plugin is.
        distribution: The distribution that installed it; None for in-process plugins.
        version: That distribution's version.
        loaded: True once the plugin is imported and registered.
        error: Why it failed to load, or None.
        providers: The provider ids it serves: from its ``aipk_providers`` hook once loaded,
            before that from its distribution's ``aipk.providers`` entry points.
    """

    name: str
    value: str
    distribution: str | None = None
    version: str | None = None
    loaded: bool = False
    error: str | None = None
    providers: tuple[str, ...] = ()


class Registry:
    """A plugin manager with aipk's hookspecs, its built-in plugin, and failure isolation."""

    def __init__(self, *, entry_points: bool = True) -> None:
        from . import _builtin
        from ._dispatch import CountingPluginManager
        from ._loading import PluginLoader

        self.pm: pluggy.PluginManager = CountingPluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        #: loads the entry-point plugins (see `aipk._loading`) and keeps what they declare
        self._plugins: PluginLoader = PluginLoader(
            self.pm, _plugin_declarations if entry_points else None)
        self.pm.register(_builtin, name="aipk.builtin")
        if os.environ.get("AIPK_TRACE_PLUGINS"):
            self.pm.add_hookcall_monitoring(
                lambda name, impls, kwargs: log.debug("hook %s -> %d impls", name, len(impls)),
                lambda outcome, name, impls, kwargs: None,
            )

    @property
    def hook(self) -> Any:
        """The hook relay; call hooks through the client, not directly."""
        self.load()
        return self.pm.hook

    def load(self) -> None:
        """Load every entry-point plugin once (idempotent, thread-safe)."""
        self._plugins.load()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (a module or object with ``@aipk.hookimpl`` methods)."""
        self.load()
        with self._plugins.lock:
            label = name or str(getattr(plugin, "__name__", None) or repr(plugin))
            self._plugins.register(plugin, label)

    def unregister(self, name: str) -> None:
        """Remove a registered plugin by name."""
        self._plugins.unregister(name)

    # -- queries -------------------------------------------------------------------------

    def available(self) -> list[PluginInfo]:
        """Installed and registered plugins; entry points are listed without being imported."""
        infos: dict[str, PluginInfo] = {}
        plugins, declared = _listing()
        errors = self._plugins.errors
        for ep in plugins:
            name = ep.name
            plugin = self.pm.get_plugin(name)
            infos[name] = _plugin_info(
                ep, declared, loaded=plugin is not None, error=errors.get(name),
                providers=self._providers_of(name) if plugin is not None else None)
        for name, plugin in self.pm.list_name_plugin():
            if name in infos or name == "aipk.builtin" or plugin is None:
                continue
            infos[name] = PluginInfo(
                name=name,
                value=getattr(plugin, "__name__", type(plugin).__name__),
                loaded=True,
                providers=self._providers_of(name),
            )
        return sorted(infos.values(), key=lambda info: info.name)

    def _providers_of(self, plugin_name: str) -> tuple[str, ...]:
        self._plugins.specs()
        owners = self._plugins.owners
        return tuple(sorted(p for p, owner in owners.items() if owner == plugin_name))

    def specs(self) -> dict[str, ProviderSpec]:
        """Every provider declared by a loaded plugin, by name (every plugin is loaded)."""
        self.load()
        return self._plugins.specs()

    def hooks_for(self, provider: Provider) -> HookCallers:
        """The hook callers for ``provider``: the relay's callers minus the plugins that
        declare providers but own neither this provider nor its protocol.

        A plugin is kept when it declares a provider named ``provider.name`` or
        ``provider.protocol`` (the protocol's home plugin, e.g. aipk-openai declares
        ``openai``), or when it declares no providers at all (cross-cutting adjusters and
        wrappers, like aipk's built-in plugin). If no plugin declares a provider named after
        the protocol, every plugin declaring a provider of that protocol is kept. Only those
        plugins need loading (see `aipk._loading`). The callers are live: plugins registered
        later are called too when this rule keeps them.
        """
        from ._dispatch import HookCallers

        self._plugins.load_for(provider.name)
        return HookCallers(self.pm.hook, self._left_out(provider), self.pm, provider,
                           left_out=lambda: self._left_out(provider))

    def _left_out(self, provider: Provider) -> list[object]:
        try:
            self._plugins.specs()
        except Exception:  # noqa: BLE001 - a broken aipk_providers: call every plugin, as before
            return []
        declared, specs = self._plugins.snapshot()
        wanted = {provider.name, provider.protocol}
        if not any(provider.protocol in names for names in declared.values()):
            wanted |= {name for name, spec in specs.items() if spec.protocol == provider.protocol}
        remove = []
        for plugin_name, names in declared.items():
            if names and not names & wanted:
                plugin = self.pm.get_plugin(plugin_name)
                if plugin is not None:
                    remove.append(plugin)
        return remove

    def spec(self, name: str) -> ProviderSpec:
        """The spec for provider ``name``; raises UnknownProviderError listing what is installed.
        Loads only the plugins a client of ``name`` calls (see `hooks_for`)."""
        self._plugins.load_for(name)
        found = self._plugins.specs().get(name)
        if found is not None:
            return found
        specs = self.specs()
        try:
            return specs[name]
        except KeyError:
            raise self._unknown(name, specs) from None

    def _unknown(self, name: str, specs: Mapping[str, ProviderSpec]) -> UnknownProviderError:
        import difflib

        known = provider_distributions()
        distribution = known.get(name)
        installed = False
        if distribution is not None:
            installed = any(info.distribution == distribution for info in self.available())
        suggestions = difflib.get_close_matches(name, sorted({*specs, *known}), n=3, cutoff=0.6)
        return UnknownProviderError(name, list(specs), distribution=distribution,
                                    suggestions=suggestions, distribution_installed=installed)


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry that clients use unless given another."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default


def available() -> list[PluginInfo]:
    """List installed provider plugins (name, distribution, version, loaded, load error)."""
    if _default is None:  # nothing loaded or registered yet: no registry needed to list them
        plugins, declared = _listing()
        infos = {ep.name: _plugin_info(ep, declared) for ep in plugins}
        return sorted(infos.values(), key=lambda info: info.name)
    return default_registry().available()


def register(plugin: object, name: str | None = None) -> None:
    """Register an in-process plugin with the default registry."""
    default_registry().register(plugin, name)


@contextmanager
def isolated_registry(
    plugins: Sequence[object] = (), *, entry_points: bool = False
) -> Iterator[Registry]:
    """A fresh default registry for the duration of a ``with`` block (for tests)."""
    global _default
    saved = _default
    registry = Registry(entry_points=entry_points)
    for plugin in plugins:
        registry.register(plugin)
    _default = registry
    try:
        yield registry
    finally:
        _default = saved


#: The names defined by the modules a registry loads (`aipk._loading`, `aipk._dispatch`),
#: imported on first use: ``import aipk`` and listing plugins need neither.
_LAZY = {
    "PluginWarning": "._loading",
    "FastHook": "._dispatch",
    "HookCallers": "._dispatch",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aipk.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __package__), name)
    globals()[name] = value
    return value

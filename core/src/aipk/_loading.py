"""Plugin selection and loading: which entry-point plugins a registry imports, when, in which
order, and what the registered plugins declare.

A `PluginLoader` serves one [`Registry`][aipk.registry.Registry]. It reads the ``aipk.plugins``
entry points once (through the function the registry gives it), keeps those
``AIPK_LOAD_PLUGINS`` selects, and imports them on demand: all of them (`PluginLoader.load`),
or only those a client of one provider calls (`PluginLoader.load_for`, picked by the
``aipk.providers`` declarations), always registered in entry-point order. A plugin that fails
to import, or that implements a hook name aipk does not know, is disabled with a
[`PluginWarning`][aipk.registry.PluginWarning] (a [`PluginError`][aipk.errors.PluginError]
under ``AIPK_STRICT_PLUGINS=1``) and every other plugin still loads. It also keeps the
providers the registered plugins' ``aipk_providers`` hooks declare, read again after every
change.

`aipk.registry` re-exports `PluginWarning`; this module loads with the first registry, not
with ``import aipk``.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias, cast

from .errors import PluginError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    import pluggy

    from ._entrypoints import FoundEntryPoint
    from ._providers import ProviderSpec

__all__ = ["Declarations", "PluginLoader", "PluginWarning"]

#: The ``aipk.plugins`` entry points in order, and the provider ids each entry-point value
#: declares (``aipk.providers``).
Declarations: TypeAlias = "tuple[list[EntryPoint | FoundEntryPoint], dict[str, list[str]]]"


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others keep working."""


def _env_selection() -> set[str] | None:
    raw = os.environ.get("AIPK_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _strict() -> bool:
    return os.environ.get("AIPK_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


class PluginLoader:
    """Loads a plugin manager's entry-point plugins on demand, isolating failures, and keeps
    what the registered plugins declare.

    Attributes:
        pm: The plugin manager plugins are registered with.
        lock: Guards loading, registering and the declarations (re-entrant).
        errors: Entry-point name -> why that plugin failed to load.
        owners: Provider name -> the plugin whose ``aipk_providers`` declared it first.
        declared: Plugin name -> the provider names its ``aipk_providers`` declared.
    """

    def __init__(self, pm: pluggy.PluginManager,
                 read: Callable[[], Declarations] | None) -> None:
        """``read`` returns the installed plugins' declarations (read once, on first need);
        None loads no entry-point plugin."""
        self.pm = pm
        self._read = read
        self._loaded = False
        self.lock = threading.RLock()
        self.errors: dict[str, str] = {}
        self._specs: dict[str, ProviderSpec] | None = None
        self.owners: dict[str, str] = {}
        self.declared: dict[str, frozenset[str]] = {}
        #: the selected entry points and their declared providers, read once
        self._found: Declarations | None = None
        #: entry-point plugins loaded (or failed), in entry-point order; their objects by name
        self._attempted: list[str] = []
        self._objects: dict[str, object] = {}
        #: providers whose plugins are loaded (see `load_for`)
        self._ready: set[str] = set()

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        """Load every entry-point plugin once (idempotent, thread-safe)."""
        if self._loaded:
            return
        with self.lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if not self._loaded:
            if self._read is not None:
                plugins, _ = self._plugin_entry_points()
                self._ensure([ep.name for ep in plugins])
            self.pm.check_pending()
            self._loaded = True

    def _plugin_entry_points(self) -> Declarations:
        if self._found is None:
            plugins, declared = self._read() if self._read is not None else ([], {})
            selection = _env_selection()
            if selection is not None:
                plugins = [ep for ep in plugins if ep.name in selection]
            self._found = plugins, declared
        return self._found

    def load_for(self, provider: str) -> None:
        """Load the plugins a client of ``provider`` calls, as `Registry.hooks_for` picks them:
        the plugins whose ``aipk.providers`` entry points declare ``provider`` or its protocol,
        and those declaring none (they may serve any provider). Whenever that is not certain
        (the provider or its protocol declared by no entry point, the loaded plugins not
        declaring them), every plugin is loaded."""
        if self._loaded or provider in self._ready:
            return
        with self.lock:
            if self._loaded or provider in self._ready:
                return
            if self._read is None:
                self._load_locked()
                return
            plugins, declared = self._plugin_entry_points()
            owners: dict[str, list[str]] = {}
            undeclared: list[str] = []
            for ep in plugins:
                ids = declared.get(ep.value)
                if not ids:
                    undeclared.append(ep.name)
                for provider_id in ids or ():
                    owners.setdefault(provider_id, []).append(ep.name)
            if provider not in owners:
                self._load_locked()
                return
            self._ensure([*undeclared, *owners[provider]])
            spec = self.specs().get(provider)
            if spec is None or spec.protocol not in owners:
                self._load_locked()
                return
            self._ensure(owners[spec.protocol])
            self.specs()
            if not any(spec.protocol in names for names in self.declared.values()):
                self._load_locked()
                return
            self.pm.check_pending()
            self._ready.add(provider)

    def _ensure(self, names: Sequence[str]) -> None:
        """Load the entry-point plugins ``names`` as well, every loaded one registered in
        entry-point order (the order loading them all at once gives, which decides which
        implementation answers first): a plugin that must go before ones already registered
        has those registered again after it."""
        plugins, _ = self._plugin_entry_points()
        wanted = set(names).union(self._attempted)
        order: list[EntryPoint | FoundEntryPoint] = []
        seen: set[str] = set()
        for ep in plugins:
            if ep.name in wanted and ep.name not in seen:
                seen.add(ep.name)
                order.append(ep)
        again: set[str] = set()
        if [ep.name for ep in order[:len(self._attempted)]] != self._attempted:
            for name in reversed(self._attempted):
                plugin = self._objects.get(name)
                if plugin is not None and self.pm.get_plugin(name) is plugin:
                    self.pm.unregister(name=name)
                    again.add(name)
            self._attempted = []
            self._specs = None
        for ep in order[len(self._attempted):]:
            self._attempted.append(ep.name)
            if ep.name in again:
                self.register(self._objects[ep.name], ep.name)
            elif not (ep.name in self._objects or ep.name in self.errors
                      or self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name)):
                self._load_one(ep)

    def _load_one(self, ep: EntryPoint | FoundEntryPoint) -> None:
        try:
            plugin = ep.load()
            self.register(plugin, ep.name)
            self._objects[ep.name] = plugin
        except Exception as exc:  # noqa: BLE001 - isolate a broken plugin; recorded and reported
            self._fail(ep.name, f"{type(exc).__name__}: {exc}", ep.value)

    def _fail(self, name: str, error: str, value: str) -> None:
        self.errors[name] = error
        message = (
            f"aipk plugin {name!r} ({value}) failed to load and is disabled: {error}. "
            f"Reinstall or upgrade it, or exclude it with AIPK_LOAD_PLUGINS"
        )
        if _strict():
            raise PluginError(message, plugin=name)
        warnings.warn(message, PluginWarning, stacklevel=4)

    def register(self, plugin: object, name: str) -> None:
        """Register ``plugin`` as ``name``; a plugin implementing a hook aipk does not know is
        unregistered again and raises [`PluginError`][aipk.errors.PluginError]."""
        self.pm.register(plugin, name=name)
        unknown = [
            caller.name
            for caller in self.pm.get_hookcallers(plugin) or ()
            if caller.spec is None
            and any(
                impl.plugin is plugin and not impl.opts.get("optionalhook")
                for impl in caller.get_hookimpls()
            )
        ]
        if unknown:
            self.pm.unregister(plugin)
            raise PluginError(
                f"plugin {name!r} implements unknown hook(s) {', '.join(sorted(unknown))}; "
                f"check the spelling against aipk.hookspecs",
                plugin=name,
            )
        self._specs = None

    def unregister(self, name: str) -> None:
        """Remove a registered plugin by name."""
        with self.lock:
            self.pm.unregister(name=name)
            self._specs = None

    # -- what the registered plugins declare ---------------------------------------------

    def specs(self) -> dict[str, ProviderSpec]:
        """The providers the plugins registered so far declare."""
        cached = self._specs
        if cached is not None:
            return cached
        from ._providers import ProviderSpec

        with self.lock:
            specs: dict[str, ProviderSpec] = {}
            owners: dict[str, str] = {}
            declared_by: dict[str, frozenset[str]] = {}
            for impl in self.pm.hook.aipk_providers.get_hookimpls():  # registration order
                declared = cast("Sequence[object]", impl.function() or ())
                declared_by[impl.plugin_name] = frozenset(
                    spec.name for spec in declared if isinstance(spec, ProviderSpec))
                for spec in declared:
                    if not isinstance(spec, ProviderSpec):
                        raise PluginError(
                            f"plugin {impl.plugin_name!r} returned {type(spec).__name__} from "
                            f"aipk_providers; it must return ProviderSpec records",
                            plugin=impl.plugin_name,
                        )
                    if spec.name in specs:
                        warnings.warn(
                            f"provider {spec.name!r} is declared by both {owners[spec.name]!r} "
                            f"and {impl.plugin_name!r}; using {owners[spec.name]!r}",
                            PluginWarning,
                            stacklevel=3,
                        )
                        continue
                    specs[spec.name] = spec
                    owners[spec.name] = impl.plugin_name
            self._specs, self.owners, self.declared = specs, owners, declared_by
            return specs

    def snapshot(self) -> tuple[dict[str, frozenset[str]], dict[str, ProviderSpec]]:
        """Copies of `declared` and of the declared specs, as last read by `specs()`."""
        with self.lock:
            return dict(self.declared), dict(self._specs or {})

"""Plugin discovery and loading.

Provider plugins register under the ``aipk.plugins`` entry-point group; the entry-point name is
the provider id. :func:`available` lists them *without importing them*. Loading happens on
first use (creating a client) and isolates failures: a plugin that raises on import, or that
implements a hook name aipk does not know, is reported by :func:`available` and by a
:class:`PluginWarning`, and every other plugin still works.

Environment variables, read when plugins load (not at import):

* ``AIPK_LOAD_PLUGINS``: unset loads all; empty loads none; ``a,b`` loads only those entry points.
* ``AIPK_STRICT_PLUGINS=1``: a plugin that fails to load raises :class:`~aipk.errors.PluginError`
  instead of warning (for CI).
* ``AIPK_TRACE_PLUGINS=1``: log every hook call at debug level on the ``aipk.plugins`` logger.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import attrs
import pluggy

from . import hookspecs
from ._providers import ProviderSpec
from .errors import PluginError, UnknownProviderError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "available",
    "default_registry",
    "isolated_registry",
    "register",
]

ENTRY_POINT_GROUP = "aipk.plugins"


def _entry_points() -> list[EntryPoint]:
    # importlib.metadata costs ~30 ms to import; only listing or loading plugins needs it.
    from importlib import metadata

    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
log = logging.getLogger("aipk.plugins")


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others keep working."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One plugin: where it comes from and whether it loaded."""

    name: str
    value: str
    distribution: str | None = None
    version: str | None = None
    loaded: bool = False
    error: str | None = None
    providers: tuple[str, ...] = ()


def _env_selection() -> set[str] | None:
    raw = os.environ.get("AIPK_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _strict() -> bool:
    return os.environ.get("AIPK_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


class Registry:
    """A plugin manager with aipk's hookspecs, its built-in plugin, and failure isolation."""

    def __init__(self, *, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._entry_points = entry_points
        self._loaded = False
        self._lock = threading.RLock()
        self._errors: dict[str, str] = {}
        self._specs: dict[str, ProviderSpec] | None = None
        self._owners: dict[str, str] = {}
        from . import _builtin

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

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        """Load entry-point plugins once (idempotent, thread-safe)."""
        if self._loaded:
            return
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if not self._loaded:
            if self._entry_points:
                selection = _env_selection()
                for ep in _entry_points():
                    if selection is not None and ep.name not in selection:
                        continue
                    if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                        continue
                    self._load_one(ep)
            self.pm.check_pending()
            self._loaded = True

    def _load_one(self, ep: EntryPoint) -> None:
        try:
            plugin = ep.load()
            self._register_checked(plugin, ep.name)
        except Exception as exc:  # noqa: BLE001 - isolate a broken plugin; recorded and reported
            self._fail(ep.name, f"{type(exc).__name__}: {exc}", ep.value)

    def _fail(self, name: str, error: str, value: str) -> None:
        self._errors[name] = error
        message = (
            f"aipk plugin {name!r} ({value}) failed to load and is disabled: {error}. "
            f"Reinstall or upgrade it, or exclude it with AIPK_LOAD_PLUGINS"
        )
        if _strict():
            raise PluginError(message, plugin=name)
        warnings.warn(message, PluginWarning, stacklevel=4)

    def _register_checked(self, plugin: object, name: str) -> None:
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

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (a module or object with ``@aipk.hookimpl`` methods)."""
        self.load()
        with self._lock:
            label = name or str(getattr(plugin, "__name__", None) or repr(plugin))
            self._register_checked(plugin, label)

    def unregister(self, name: str) -> None:
        """Remove a registered plugin by name."""
        with self._lock:
            self.pm.unregister(name=name)
            self._specs = None

    # -- queries -------------------------------------------------------------------------

    def available(self) -> list[PluginInfo]:
        """Installed and registered plugins; entry points are listed without being imported."""
        infos: dict[str, PluginInfo] = {}
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            plugin = self.pm.get_plugin(ep.name)
            infos[ep.name] = PluginInfo(
                name=ep.name,
                value=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
                loaded=plugin is not None,
                error=self._errors.get(ep.name),
                providers=self._providers_of(ep.name) if plugin is not None else (),
            )
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
        self.specs()
        return tuple(sorted(p for p, owner in self._owners.items() if owner == plugin_name))

    def specs(self) -> dict[str, ProviderSpec]:
        """Every provider declared by a loaded plugin, by name."""
        self.load()
        cached = self._specs
        if cached is not None:
            return cached
        with self._lock:
            specs: dict[str, ProviderSpec] = {}
            owners: dict[str, str] = {}
            for impl in self.pm.hook.aipk_providers.get_hookimpls():  # registration order
                declared = cast("Sequence[object]", impl.function() or ())
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
            self._specs, self._owners = specs, owners
            return specs

    def spec(self, name: str) -> ProviderSpec:
        """The spec for provider ``name``; raises UnknownProviderError listing what is installed."""
        specs = self.specs()
        try:
            return specs[name]
        except KeyError:
            raise UnknownProviderError(name, list(specs)) from None


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

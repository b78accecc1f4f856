"""Plugin discovery and loading.

Provider plugins register under the ``aipk.plugins`` entry-point group; the entry-point name is
the provider id. [`available()`][aipk.registry.available] lists them *without importing them*.
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
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import pluggy

from . import hookspecs
from ._records import record
from .errors import PluginError, UnknownProviderError
from .hookspecs import serves_of, unguarded

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ._entrypoints import FoundEntryPoint
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


def _plugin_declarations() -> tuple[list[EntryPoint | FoundEntryPoint], dict[str, list[str]]]:
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

class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others keep working."""


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
        self.pm: pluggy.PluginManager = _PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._entry_points = entry_points
        self._loaded = False
        self._lock = threading.RLock()
        self._errors: dict[str, str] = {}
        self._specs: dict[str, ProviderSpec] | None = None
        self._owners: dict[str, str] = {}
        #: plugin name -> the provider names its aipk_providers declared (duplicates included)
        self._declared: dict[str, frozenset[str]] = {}
        #: the selected entry points and their declared providers, read once
        self._found: tuple[list[EntryPoint | FoundEntryPoint], dict[str, list[str]]] | None = None
        #: entry-point plugins loaded (or failed), in entry-point order; their objects by name
        self._attempted: list[str] = []
        self._objects: dict[str, object] = {}
        #: providers whose plugins are loaded (see `_load_for`)
        self._ready: set[str] = set()
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
        """Load every entry-point plugin once (idempotent, thread-safe)."""
        if self._loaded:
            return
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if not self._loaded:
            if self._entry_points:
                plugins, _ = self._plugin_entry_points()
                self._ensure([ep.name for ep in plugins])
            self.pm.check_pending()
            self._loaded = True

    def _plugin_entry_points(
            self) -> tuple[list[EntryPoint | FoundEntryPoint], dict[str, list[str]]]:
        if self._found is None:
            plugins, declared = _plugin_declarations()
            selection = _env_selection()
            if selection is not None:
                plugins = [ep for ep in plugins if ep.name in selection]
            self._found = plugins, declared
        return self._found

    def _load_for(self, provider: str) -> None:
        """Load the plugins a client of ``provider`` calls, as `hooks_for` picks them: the
        plugins whose ``aipk.providers`` entry points declare ``provider`` or its protocol,
        and those declaring none (they may serve any provider). Whenever that is not certain
        (the provider or its protocol declared by no entry point, the loaded plugins not
        declaring them), every plugin is loaded."""
        if self._loaded or provider in self._ready:
            return
        with self._lock:
            if self._loaded or provider in self._ready:
                return
            if not self._entry_points:
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
            spec = self._current_specs().get(provider)
            if spec is None or spec.protocol not in owners:
                self._load_locked()
                return
            self._ensure(owners[spec.protocol])
            self._current_specs()
            if not any(spec.protocol in names for names in self._declared.values()):
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
                self._register_checked(self._objects[ep.name], ep.name)
            elif not (ep.name in self._objects or ep.name in self._errors
                      or self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name)):
                self._load_one(ep)

    def _load_one(self, ep: EntryPoint | FoundEntryPoint) -> None:
        try:
            plugin = ep.load()
            self._register_checked(plugin, ep.name)
            self._objects[ep.name] = plugin
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
        plugins, declared = _listing()
        for ep in plugins:
            name = ep.name
            plugin = self.pm.get_plugin(name)
            infos[name] = _plugin_info(
                ep, declared, loaded=plugin is not None, error=self._errors.get(name),
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
        self._current_specs()
        return tuple(sorted(p for p, owner in self._owners.items() if owner == plugin_name))

    def specs(self) -> dict[str, ProviderSpec]:
        """Every provider declared by a loaded plugin, by name (every plugin is loaded)."""
        self.load()
        return self._current_specs()

    def _current_specs(self) -> dict[str, ProviderSpec]:
        """The providers the plugins registered so far declare."""
        cached = self._specs
        if cached is not None:
            return cached
        from ._providers import ProviderSpec

        with self._lock:
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
            self._specs, self._owners, self._declared = specs, owners, declared_by
            return specs

    def hooks_for(self, provider: Provider) -> HookCallers:
        """The hook callers for ``provider``: the relay's callers minus the plugins that
        declare providers but own neither this provider nor its protocol.

        A plugin is kept when it declares a provider named ``provider.name`` or
        ``provider.protocol`` (the protocol's home plugin, e.g. aipk-openai declares
        ``openai``), or when it declares no providers at all (cross-cutting adjusters and
        wrappers, like aipk's built-in plugin). If no plugin declares a provider named after
        the protocol, every plugin declaring a provider of that protocol is kept. Only those
        plugins need loading (see `_load_for`). The callers are live: plugins registered later
        are called too when this rule keeps them.
        """
        self._load_for(provider.name)
        return HookCallers(self.pm.hook, self._left_out(provider), self.pm, provider,
                           left_out=lambda: self._left_out(provider))

    def _left_out(self, provider: Provider) -> list[object]:
        try:
            self._current_specs()
        except Exception:  # noqa: BLE001 - a broken aipk_providers: call every plugin, as before
            return []
        with self._lock:
            declared = dict(self._declared)
            specs = dict(self._specs or {})
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
        self._load_for(name)
        found = self._current_specs().get(name)
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


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, counting changes to what a hook call runs (see `FastHook`)."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        #: bumped by every register, unregister and monitoring change
        self.generation = 0
        self.monitored = False

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        try:
            return super().register(plugin, name)
        finally:
            self.generation += 1

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        try:
            return super().unregister(plugin, name)
        finally:
            self.generation += 1

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        self.monitored = True  # stays set: calls keep going through pluggy from then on
        self.generation += 1
        return super().add_hookcall_monitoring(before, after)


class FastHook:
    """A firstresult hook caller for the per-request path, called positionally in the
    hookspec's argument order.

    When the hook has only plain implementations (no wrappers of either style, no
    keyword-only arguments, no call monitoring), it calls them itself, last registered first,
    and returns the first non-None answer, as pluggy does, without pluggy's per-call argument
    checks and copies. Anything else (wrappers, ``AIPK_TRACE_PLUGINS``) goes through pluggy.
    The plan is rebuilt whenever a plugin is registered or removed. Given the ``provider``, the
    plan leaves out [`hookimpl_for()`][aipk.hookimpl_for] implementations that do not serve it and
    calls the others without their guard.

    `call` is the plan as one callable: the implementation itself when there is exactly
    one (so the engine's call costs no frame of ours), else a loop over the plan, else pluggy.
    It is only as fresh as the last `replan()`; calling the FastHook itself checks first.
    """

    __slots__ = ("_caller", "_names", "_plan", "_pm", "_provider", "call")

    def __init__(self, caller: Any, pm: _PluginManager | None,
                 provider: Provider | None = None) -> None:
        self._caller = caller
        self._pm = pm
        self._provider = provider
        self._names: tuple[str, ...] = tuple(caller.spec.argnames) if caller.spec else ()
        #: (generation, plan); plan None: call through pluggy
        self._plan: tuple[int, Any] = (-1, None)
        self.call: Callable[..., Any] = self._via_pluggy
        self.replan()

    def retarget(self, caller: Any) -> None:
        """Call through ``caller`` (the same hook, another subset of plugins) from now on."""
        self._caller = caller
        self._plan = (-1, None)
        self.replan()

    def replan(self) -> None:
        """Rebuild the plan and `call` if a plugin was registered or removed since."""
        pm = self._pm
        generation = pm.generation if pm is not None else 0
        if generation != self._plan[0]:
            self._replan(generation)

    def _replan(self, generation: int) -> Any:
        impls = list(self._caller.get_hookimpls())
        pm = self._pm
        spec = self._caller.spec
        plan: Any = None
        if (pm is not None and not pm.monitored and spec is not None
                and spec.opts.get("firstresult")
                and not any(impl.hookwrapper or impl.wrapper or impl.kwargnames
                            for impl in impls)):
            index = {name: i for i, name in enumerate(self._names)}
            provider = self._provider
            steps = []
            for impl in reversed(impls):
                function = impl.function
                serves = serves_of(function)
                if serves is not None and provider is not None:
                    if not serves(provider):
                        continue  # a hookimpl_for implementation for other providers
                    function = unguarded(function)
                steps.append((function, None if tuple(impl.argnames) == self._names
                              else tuple(index[name] for name in impl.argnames)))
            plan = tuple(steps)
        self._plan = (generation, plan)
        if plan is None:
            self.call = self._via_pluggy
        elif len(plan) == 1 and plan[0][1] is None:
            self.call = plan[0][0]
        else:
            self.call = self._first
        return plan

    def _first(self, *args: Any) -> Any:
        for function, picks in self._plan[1]:
            result = (function(*args) if picks is None
                      else function(*[args[i] for i in picks]))
            if result is not None:
                return result
        return None

    def _via_pluggy(self, *args: Any) -> Any:
        return self._caller(**dict(zip(self._names, args, strict=True)))

    def __call__(self, *args: Any) -> Any:
        self.replan()
        return self.call(*args)


class HookCallers:
    """The per-request hook callers one provider's engine uses (see `Registry.hooks_for()`),
    each a [`FastHook`][aipk.registry.FastHook] called positionally in hookspec order.

    The engine calls each hook's `FastHook.call` and asks `stale` once per request
    (then `replan()`), so a plugin registered or removed applies from the next request.
    """

    __slots__ = ("_all", "_generation", "_hook", "_left_out", "_pm", "_relay_pm",
                 "aipk_apply_credential", "aipk_build_request",
                 "aipk_count_tokens_request", "aipk_login_flow", "aipk_map_error",
                 "aipk_models_request",
                 "aipk_parse_models", "aipk_parse_rate_limits", "aipk_parse_response",
                 "aipk_retry_after", "aipk_stream_decoder", "removed")

    _NAMES = ("aipk_build_request", "aipk_apply_credential", "aipk_parse_rate_limits",
              "aipk_parse_response", "aipk_stream_decoder", "aipk_map_error", "aipk_retry_after",
              "aipk_models_request", "aipk_parse_models", "aipk_login_flow",
              "aipk_count_tokens_request")
    aipk_build_request: FastHook
    aipk_apply_credential: FastHook
    aipk_parse_rate_limits: FastHook
    aipk_parse_response: FastHook
    aipk_stream_decoder: FastHook
    aipk_map_error: FastHook
    aipk_retry_after: FastHook
    aipk_models_request: FastHook
    aipk_parse_models: FastHook
    aipk_login_flow: FastHook
    aipk_count_tokens_request: FastHook

    def __init__(self, hook: Any, remove: Sequence[object],
                 pm: pluggy.PluginManager | None = None,
                 provider: Provider | None = None, *,
                 left_out: Callable[[], Sequence[object]] | None = None) -> None:
        #: the plugins left out for this provider
        self.removed = tuple(remove)
        fast_pm = pm if isinstance(pm, _PluginManager) else None
        self._pm = fast_pm
        self._relay_pm = pm
        self._hook = hook
        #: recomputes `removed` when plugins change (`Registry.hooks_for`'s rule)
        self._left_out = left_out
        self._generation = fast_pm.generation if fast_pm is not None else 0
        made: list[FastHook] = []
        for name in self._NAMES:
            made.append(FastHook(self._caller(name), fast_pm, provider))
            setattr(self, name, made[-1])
        self._all = tuple(made)

    def _caller(self, name: str) -> Any:
        if self.removed and self._relay_pm is not None:
            return self._relay_pm.subset_hook_caller(name, self.removed)
        return getattr(self._hook, name)

    @property
    def stale(self) -> bool:
        """True when a plugin was registered or removed since the last `replan()`."""
        pm = self._pm
        return pm is not None and pm.generation != self._generation

    def replan(self) -> None:
        """Bring every hook's `FastHook.call` up to date (and, with ``left_out``, which
        plugins are left out)."""
        if self._left_out is not None and self.stale:
            removed = tuple(self._left_out())
            if removed != self.removed:
                self.removed = removed
                for name, fast in zip(self._NAMES, self._all, strict=True):
                    fast.retarget(self._caller(name))
        for fast in self._all:
            fast.replan()
        if self._pm is not None:
            self._generation = self._pm.generation


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

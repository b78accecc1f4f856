"""Per-request hook dispatch: the hook callers one provider's engine calls.

`Registry.hooks_for()` hands an engine a [`HookCallers`][aipk.registry.HookCallers], one
`FastHook` per per-request hook, over a `CountingPluginManager` (pluggy's manager, counting
every change to what a hook call runs so the callers can tell when to rebuild their plans).
`aipk.registry` re-exports both callers; this module loads with the first registry, not with
``import aipk``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from .hookspecs import serves_of, unguarded

if TYPE_CHECKING:
    from ._providers import Provider

__all__ = ["CountingPluginManager", "FastHook", "HookCallers"]


class CountingPluginManager(pluggy.PluginManager):
    """pluggy's manager, counting changes to what a hook call runs (see `FastHook`)."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        #: bumped by every register, unregister and monitoring change
        self.generation = 0
        self.monitored = False
        self._marker = f"{project_name}_impl"  # the attribute a hookimpl marker sets

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

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        """pluggy's, answering at once for the names of a plugin module that cannot be hook
        implementations (a class or module it imports, a function with no marker), which are
        most of them: pluggy looks each up statically, a few microseconds a name."""
        if type(plugin) is ModuleType:
            value = plugin.__dict__.get(name)
            if isinstance(value, (type, ModuleType)) or (
                    type(value) is FunctionType and self._marker not in value.__dict__):
                return None
        return super().parse_hookimpl_opts(plugin, name)

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

    def __init__(self, caller: Any, pm: CountingPluginManager | None,
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


class _NoChanges:
    """The change count of a plugin manager that does not count changes: never any."""

    __slots__ = ()
    generation = 0


_NO_CHANGES = _NoChanges()


class HookCallers:
    """The per-request hook callers one provider's engine uses (see `Registry.hooks_for()`),
    each a [`FastHook`][aipk.registry.FastHook] called positionally in hookspec order.

    The engine calls each hook's `FastHook.call` and asks `stale` once per request
    (then `replan()`), so a plugin registered or removed applies from the next request.
    """

    __slots__ = ("_all", "_hook", "_left_out", "_pm", "_relay_pm",
                 "aipk_apply_credential", "aipk_build_request",
                 "aipk_count_tokens_request", "aipk_login_flow", "aipk_map_error",
                 "aipk_models_request",
                 "aipk_parse_models", "aipk_parse_rate_limits", "aipk_parse_response",
                 "aipk_retry_after", "aipk_stream_decoder", "changes", "generation", "removed")

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
        fast_pm = pm if isinstance(pm, CountingPluginManager) else None
        self._pm = fast_pm
        self._relay_pm = pm
        self._hook = hook
        #: recomputes `removed` when plugins change (`Registry.hooks_for`'s rule)
        self._left_out = left_out
        #: what counts plugin changes (its ``generation``), and its count at the last
        #: `replan()`: a caller may compare the two itself, as `stale` does, for less than a
        #: property call (once per request)
        self.changes: CountingPluginManager | _NoChanges = (
            fast_pm if fast_pm is not None else _NO_CHANGES)
        self.generation = self.changes.generation
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
        return self.changes.generation != self.generation

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
        self.generation = self.changes.generation


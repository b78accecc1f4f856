"""The hooks a provider plugin implements.

Mark implementations with `aipk.hookimpl` (or `hookimpl_for`), and register the module
holding them under the ``aipk.plugins`` entry-point group (the entry-point name is the plugin's
name, the one ``AIPK_LOAD_PLUGINS`` lists). List every provider id the plugin serves under
``aipk.providers``, so that clients and ``aipk providers`` find it without importing it:

```toml
[project.entry-points."aipk.plugins"]
myprovider = "aipk_myprovider.plugin"

[project.entry-points."aipk.providers"]
myprovider = "aipk_myprovider.plugin"
```

Every hook is synchronous and does no I/O: it builds, parses or decodes, and the client does the
sending, so one plugin serves both [`aipk.Client`][aipk.Client] and
[`aipk.AsyncClient`][aipk.AsyncClient].

Routing: the per-request hooks are ``firstresult``. Each receives the resolved
[`Provider`][aipk.Provider] and answers only for the providers it serves: mark it
``@aipk.hookimpl_for(protocol="acme")`` (or ``provider="acme"``) and it is called only for
them, or mark it ``@aipk.hookimpl`` and return ``None`` for the others. To adjust an existing
provider, implement the hook with ``tryfirst=True`` for that provider name and return your
answer, or wrap it (``wrapper=True``) to change what the owning plugin returns; cross-cutting
plugins (logging, redaction, header injection) use wrappers and serve every provider.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    from ._decoding import StreamDecoder
    from ._http import HttpRequest
    from ._messages import ChatRequest
    from ._providers import Credential, ModelInfo, Provider, ProviderSpec
    from ._ratelimit import RateLimitState
    from ._responses import ChatResponse
    from ._tokens import TokenCountCall
    from .credentials._loginflow import LoginFlow
    from .errors import ProviderError
    from .observability import ObservedEvent

__all__ = ["Serves", "hookimpl", "hookimpl_for", "hookspec", "serves_of", "unguarded"]

PROJECT = "aipk"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementation: ``@aipk.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)

F = TypeVar("F", bound=Callable[..., Any])


def _names(value: str | Iterable[str] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    return frozenset((value,)) if isinstance(value, str) else frozenset(value)


class Serves:
    """Which providers a `hookimpl_for()` implementation answers for: those whose
    ``protocol`` is in ``protocols`` or whose ``name`` is in ``providers``."""

    __slots__ = ("protocols", "providers")

    def __init__(self, protocols: frozenset[str], providers: frozenset[str]) -> None:
        #: protocol names served (``Provider.protocol``)
        self.protocols = protocols
        #: provider names served (``Provider.name``)
        self.providers = providers

    def __call__(self, provider: Provider) -> bool:
        return provider.protocol in self.protocols or provider.name in self.providers

    def __repr__(self) -> str:
        return f"Serves(protocols={sorted(self.protocols)}, providers={sorted(self.providers)})"


def hookimpl_for(*, protocol: str | Iterable[str] | None = None,
                 provider: str | Iterable[str] | None = None,
                 **opts: Any) -> Callable[[F], F]:
    """``@aipk.hookimpl`` for a hook that serves only some providers: those of ``protocol``
    and those named ``provider`` (a name or several). Other providers never reach it.

    ``opts`` are `hookimpl`'s (``tryfirst``, ``trylast``, ``wrapper``, ``hookwrapper``…)
    and keep their meaning. A client's per-request dispatch leaves the implementation out of
    the plan for every other provider (no call, no check); a call through pluggy (wrappers
    present, ``AIPK_TRACE_PLUGINS``, calling ``registry.hook`` directly) goes through a guard
    that returns ``None`` (or, for a wrapper, passes the result through) for them. The hook
    must take the ``provider`` argument.
    """
    serves = Serves(_names(protocol), _names(provider))
    if not serves.protocols and not serves.providers:
        raise TypeError("hookimpl_for needs protocol= or provider= (a name or several)")
    mark = hookimpl(**opts)
    wrapper = bool(opts.get("wrapper") or opts.get("hookwrapper"))

    def decorate(function: F) -> F:
        names = list(inspect.signature(function).parameters)
        if "provider" not in names:
            raise TypeError(f"{function.__qualname__} does not take 'provider', so "
                            f"hookimpl_for cannot route it; use @aipk.hookimpl")
        at = names.index("provider")  # pluggy passes the arguments positionally, in this order
        guarded: Callable[..., Any]
        if wrapper:
            def guarded(*args: Any) -> Any:
                if serves(args[at]):
                    return (yield from function(*args))
                return (yield)
        else:
            def guarded(*args: Any) -> Any:
                return function(*args) if serves(args[at]) else None
        functools.update_wrapper(guarded, function)
        guarded.aipk_serves = serves  # type: ignore[attr-defined]
        return mark(guarded)  # type: ignore[no-any-return]

    return decorate


def serves_of(function: Any) -> Serves | None:
    """The `Serves` of a `hookimpl_for()` implementation (bound or not), else None."""
    return getattr(function, "aipk_serves", None)


def unguarded(function: Any) -> Any:
    """The implementation under a `hookimpl_for()` guard (bound to the same object)."""
    if isinstance(function, types.MethodType):
        return types.MethodType(function.__func__.__wrapped__,  # type: ignore[attr-defined]
                                function.__self__)
    return function.__wrapped__


@hookspec
def aipk_providers() -> Sequence[ProviderSpec]:  # type: ignore[empty-body]
    """Declare the providers this plugin serves (name, protocol, base URL, auth, models…)."""


@hookspec(firstresult=True)
def aipk_build_request(
    provider: Provider, request: ChatRequest, stream: bool
) -> HttpRequest | None:
    """Build the HTTP request for a chat call, streaming or not; pure, no I/O, no credential."""


@hookspec(firstresult=True)
def aipk_apply_credential(
    provider: Provider, http_request: HttpRequest, credential: Credential
) -> HttpRequest | None:
    """Return ``http_request`` carrying ``credential`` the way the provider expects it."""


@hookspec(firstresult=True)
def aipk_parse_rate_limits(
    provider: Provider, status: int, headers: Mapping[str, str], now: float
) -> RateLimitState | None:
    """Read rate-limit state from a response's status and headers (resets as absolute times)."""


@hookspec(firstresult=True)
def aipk_parse_response(
    provider: Provider, request: ChatRequest, data: Any, headers: Mapping[str, str]
) -> ChatResponse | None:
    """Turn a decoded successful non-streaming JSON body into a new `ChatResponse`."""


@hookspec(firstresult=True)
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> StreamDecoder | None:
    """Return a fresh `StreamDecoder` that turns one stream's frames into stream events."""


@hookspec(firstresult=True)
def aipk_map_error(
    provider: Provider,
    status: int,
    headers: Mapping[str, str],
    data: Any,
    request_id: str | None,
) -> ProviderError | None:
    """Map an error response (``data`` is the decoded JSON body or raw text) to a typed error."""


@hookspec(firstresult=True)
def aipk_retry_after(
    provider: Provider, status: int, headers: Mapping[str, str], now: float
) -> float | None:
    """Seconds to wait before retrying, from the provider's own error signal (``acme-wait-ms``)."""


@hookspec(firstresult=True)
def aipk_models_request(provider: Provider) -> HttpRequest | None:
    """Build the request that lists the provider's models, or None if it has no such endpoint."""


@hookspec(firstresult=True)
def aipk_parse_models(provider: Provider, data: Any) -> Sequence[ModelInfo] | None:
    """Turn the decoded model-listing body into [`ModelInfo`][aipk.ModelInfo] records."""


@hookspec(firstresult=True)
def aipk_count_tokens_request(provider: Provider, request: ChatRequest) -> TokenCountCall | None:
    """Return how to count ``request``'s input tokens with the provider's endpoint, or None."""


@hookspec(firstresult=True)
def aipk_login_flow(provider: Provider) -> LoginFlow | None:
    """Describe how a user logs in to ``provider`` (a LoginFlow), or None if it has no login."""


@hookspec
def aipk_config_options(provider: ProviderSpec) -> Mapping[str, Any] | type | None:
    """Declare the options a config file may set for ``provider``: {name: type} or attrs class."""


@hookspec(historic=False)
def aipk_observe(event: ObservedEvent) -> None:
    """Receive one `aipk.observability` call record; be quick, it runs in the call."""

"""The hooks a provider plugin implements.

Mark implementations with :data:`aipk.hookimpl` and register the module under the ``aipk.plugins``
entry-point group (the entry-point name is the provider id)::

    [project.entry-points."aipk.plugins"]
    myprovider = "aipk_myprovider"

Every hook is synchronous and does no I/O: it builds, parses or decodes, and the client does the
sending, so one plugin serves both :class:`aipk.Client` and :class:`aipk.AsyncClient`.

Routing: the per-request hooks are ``firstresult``. Each receives the resolved
:class:`~aipk.Provider` and returns ``None`` for providers it does not serve (check
``provider.protocol`` or ``provider.name``). To adjust an existing provider, implement the hook
with ``tryfirst=True`` for that provider name and return your answer, or wrap it
(``wrapper=True``) to change what the owning plugin returns; cross-cutting plugins (logging,
redaction, header injection) use wrappers and serve every provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._decoding import StreamDecoder
    from ._http import HttpRequest
    from ._messages import ChatRequest
    from ._providers import Credential, ModelInfo, Provider, ProviderSpec
    from ._ratelimit import RateLimitState
    from ._responses import ChatResponse
    from .credentials import LoginFlow
    from .errors import ProviderError
    from .observability import ObservedEvent

__all__ = ["hookimpl", "hookspec"]

PROJECT = "aipk"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementation: ``@aipk.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


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
    """Turn a decoded successful non-streaming JSON body into a new :class:`~aipk.ChatResponse`."""


@hookspec(firstresult=True)
def aipk_stream_decoder(provider: Provider, request: ChatRequest) -> StreamDecoder | None:
    """Return a fresh :class:`~aipk.StreamDecoder` that turns SSE events into stream events."""


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
def aipk_models_request(provider: Provider) -> HttpRequest | None:
    """Build the request that lists the provider's models, or None if it has no such endpoint."""


@hookspec(firstresult=True)
def aipk_parse_models(provider: Provider, data: Any) -> Sequence[ModelInfo] | None:
    """Turn the decoded model-listing body into :class:`~aipk.ModelInfo` records."""


@hookspec(firstresult=True)
def aipk_login_flow(provider: Provider) -> LoginFlow | None:
    """Describe how a user logs in to ``provider`` (a LoginFlow), or None if it has no login."""


@hookspec(historic=False)
def aipk_observe(event: ObservedEvent) -> None:
    """Receive one :mod:`aipk.observability` call record; be quick, it runs in the call."""

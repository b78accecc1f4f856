"""Narrow interfaces, so code can depend on only the part of a client it uses.

Both [`Client`][aipk.Client] and [`AsyncClient`][aipk.AsyncClient] satisfy the matching protocols
here (checked by the tests with ``isinstance`` and by mypy structurally, signatures included)::

    def summarise(chat: aipk.protocols.ChatCapable, text: str) -> str: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._async_client import AsyncChatStream, AsyncClient
    from ._client import ChatStream, Client, HealthStatus
    from ._http import Timeout
    from ._messages import ChatRequest
    from ._providers import Capabilities, ModelInfo, Provider
    from ._ratelimit import RateLimitState
    from ._responses import ChatResponse
    from ._retry import RetryPolicy
    from .observability import MetricsSnapshot

__all__ = [
    "AsyncChatCapable",
    "AsyncHealthCapable",
    "AsyncModelsCapable",
    "CapabilitiesInfo",
    "ChatCapable",
    "CoreInfo",
    "HealthCapable",
    "ModelsCapable",
    "RateLimitInfo",
]


@runtime_checkable
class CoreInfo(Protocol):
    """Which provider a client talks to."""

    @property
    def provider(self) -> Provider: ...
    @property
    def provider_name(self) -> str: ...


@runtime_checkable
class CapabilitiesInfo(Protocol):
    """What the provider and its models can do, known before sending anything."""

    def capabilities(self, model: str | None = None) -> Capabilities: ...


@runtime_checkable
class RateLimitInfo(Protocol):
    """The provider's latest word on its rate limits."""

    def rate_limits(self, model: str) -> RateLimitState | None: ...


@runtime_checkable
class ChatCapable(Protocol):
    """Synchronous chat and streaming."""

    def chat(self, request: ChatRequest | None = None, /, **fields: Any) -> ChatResponse: ...
    def stream(self, request: ChatRequest | None = None, /, **fields: Any) -> ChatStream: ...


@runtime_checkable
class AsyncChatCapable(Protocol):
    """Asynchronous chat and streaming."""

    async def chat(self, request: ChatRequest | None = None, /, **fields: Any) -> ChatResponse: ...
    def stream(self, request: ChatRequest | None = None, /, **fields: Any) -> AsyncChatStream: ...


@runtime_checkable
class ModelsCapable(Protocol):
    """Synchronous model discovery (``timeout`` and ``retry`` replace the client's for this
    call)."""

    def models(self, *, static: bool = False, timeout: Timeout | float | None = None,
               retry: RetryPolicy | None = None) -> list[ModelInfo]: ...


@runtime_checkable
class AsyncModelsCapable(Protocol):
    """Asynchronous model discovery (``timeout`` and ``retry`` replace the client's for this
    call)."""

    async def models(self, *, static: bool = False, timeout: Timeout | float | None = None,
                     retry: RetryPolicy | None = None) -> list[ModelInfo]: ...


@runtime_checkable
class HealthCapable(Protocol):
    """Synchronous health checks (``timeout`` and ``retry`` replace the client's for the
    probe) and metrics."""

    def health(self, *, timeout: Timeout | float | None = None,
               retry: RetryPolicy | None = None) -> HealthStatus: ...
    def metrics(self) -> MetricsSnapshot: ...


@runtime_checkable
class AsyncHealthCapable(Protocol):
    """Asynchronous health checks (``timeout`` and ``retry`` replace the client's for the
    probe), and metrics."""

    async def health(self, *, timeout: Timeout | float | None = None,
                     retry: RetryPolicy | None = None) -> HealthStatus: ...
    def metrics(self) -> MetricsSnapshot: ...


if TYPE_CHECKING:
    def _clients_conform(client: Client, async_client: AsyncClient) -> None:
        """Never called: mypy checks here that the clients satisfy every protocol."""
        sync: tuple[CoreInfo, CapabilitiesInfo, RateLimitInfo, ChatCapable, ModelsCapable,
                    HealthCapable] = (client, client, client, client, client, client)
        async_: tuple[CoreInfo, CapabilitiesInfo, RateLimitInfo, AsyncChatCapable,
                      AsyncModelsCapable, AsyncHealthCapable] = (
            async_client, async_client, async_client, async_client, async_client, async_client)
        del sync, async_

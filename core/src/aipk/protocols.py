"""Narrow interfaces, so code can depend on only the part of a client it uses.

Both [`Client`][aipk.Client] and [`AsyncClient`][aipk.AsyncClient] satisfy the matching protocols
here (checked by the tests with ``isinstance`` and by mypy structurally)::

    def summarise(chat: aipk.protocols.ChatCapable, text: str) -> str: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._async_client import AsyncChatStream
    from ._client import ChatStream, HealthStatus
    from ._messages import ChatRequest
    from ._providers import Capabilities, ModelInfo, Provider
    from ._ratelimit import RateLimitState
    from ._responses import ChatResponse

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
    """Synchronous model discovery."""

    def models(self, *, static: bool = False) -> list[ModelInfo]: ...


@runtime_checkable
class AsyncModelsCapable(Protocol):
    """Asynchronous model discovery."""

    async def models(self, *, static: bool = False) -> list[ModelInfo]: ...


@runtime_checkable
class HealthCapable(Protocol):
    """Synchronous health checks and metrics."""

    def health(self) -> HealthStatus: ...
    def metrics(self) -> dict[str, Any]: ...


@runtime_checkable
class AsyncHealthCapable(Protocol):
    """Asynchronous health checks, and metrics."""

    async def health(self) -> HealthStatus: ...
    def metrics(self) -> dict[str, Any]: ...

"""aipk: one clean client over every AI model provider.

Providers are plugins (``pip install aipk-openai``); the core holds the records, the hooks, the
SSE decoder, retries, rate-limit tracking and the two clients::

    import aipk

    with aipk.Client("openai") as client:
        reply = client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("Hello")])
        print(reply.text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors, registry
from ._errormap import error_for_status
from ._http import HttpRequest, Timeout
from ._messages import ChatRequest, Image, Message, Role, Tool, ToolCall, ToolChoice
from ._providers import (
    AuthKind,
    Capabilities,
    Credential,
    ModelInfo,
    Provider,
    ProviderSpec,
    Secret,
)
from ._ratelimit import (
    RateLimitState,
    RateLimitWindow,
    parse_count,
    parse_duration,
    parse_reset,
    parse_retry_after,
)
from ._responses import (
    ChatResponse,
    FinishEvent,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    StreamAccumulator,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from ._retry import RetryPolicy
from .errors import (
    AipkError,
    AllTargetsFailedError,
    AuthenticationError,
    AuthErrorCode,
    BadRequestError,
    ConfigurationError,
    InvalidRequestError,
    MissingCredentialError,
    NetworkError,
    OverloadedError,
    PluginError,
    ProviderError,
    RateLimitError,
    RequestTimeout,
    ResponseError,
    ServerError,
    StatusError,
    StreamError,
    TransportError,
    UnknownProviderError,
)
from .hookspecs import hookimpl
from .state import MemoryStore, StateStore

if TYPE_CHECKING:
    from ._async_client import AsyncChatStream, AsyncClient
    from ._client import ChatStream, Client, HealthStatus
    from ._decoding import StreamDecoder
    from .router import AsyncRouter, Router, Target

__all__ = [
    "AipkError",
    "AllTargetsFailedError",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncRouter",
    "AuthErrorCode",
    "AuthKind",
    "AuthenticationError",
    "BadRequestError",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "Client",
    "ConfigurationError",
    "Credential",
    "FinishEvent",
    "FinishReason",
    "HealthStatus",
    "HttpRequest",
    "Image",
    "InvalidRequestError",
    "MemoryStore",
    "Message",
    "MissingCredentialError",
    "ModelInfo",
    "NetworkError",
    "OverloadedError",
    "PluginError",
    "Provider",
    "ProviderError",
    "ProviderSpec",
    "RateLimitError",
    "RateLimitState",
    "RateLimitWindow",
    "ReasoningDelta",
    "RefusalDelta",
    "RequestTimeout",
    "ResponseError",
    "RetryPolicy",
    "Role",
    "Router",
    "Secret",
    "ServerError",
    "StateStore",
    "StatusError",
    "StreamAccumulator",
    "StreamDecoder",
    "StreamError",
    "StreamEvent",
    "Target",
    "TextDelta",
    "Timeout",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "TransportError",
    "UnknownProviderError",
    "Usage",
    "UsageEvent",
    "error_for_status",
    "errors",
    "hookimpl",
    "parse_count",
    "parse_duration",
    "parse_reset",
    "parse_retry_after",
    "registry",
]

# The clients pull in httpx; load them on first use so `import aipk` stays cheap.
_LAZY = {
    "AsyncChatStream": "._async_client",
    "AsyncClient": "._async_client",
    "ChatStream": "._client",
    "Client": "._client",
    "HealthStatus": "._client",
    "StreamDecoder": "._decoding",
    "AsyncRouter": ".router",
    "Router": ".router",
    "Target": ".router",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aipk' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

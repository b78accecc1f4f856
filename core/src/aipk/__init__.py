"""aipk: one clean client over every AI model provider.

Providers are plugins (``pip install aipk-openai``); the core holds the records, the hooks, the
SSE decoder, retries, rate-limit tracking and the two clients::

    import aipk

    with aipk.Client("openai") as client:
        reply = client.chat(model="gpt-4o-mini", messages=[aipk.Message.user("Hello")])
        print(reply.text)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import errors, registry
from .errors import (
    AipkError,
    AllTargetsFailedError,
    AuthenticationError,
    AuthErrorCode,
    BadRequestError,
    ClientClosedError,
    ConfigFileError,
    ConfigurationError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    MetricsMergeError,
    MissingCredentialError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    PluginError,
    ProviderError,
    RateLimitError,
    RequestTimeout,
    ResponseError,
    ServerError,
    StatusError,
    StreamError,
    StructuredOutputError,
    ToolArgumentsError,
    TransportError,
    UnknownProviderError,
)
from .hookspecs import hookimpl, hookimpl_for

# A library prints nothing unless the application configures logging (the `aipk` hierarchy).
logging.getLogger("aipk").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from . import catalog as catalog  # attributes of the package, loaded on first use
    from . import config as config
    from . import state as state
    from ._async_client import AsyncChatStream, AsyncClient
    from ._base import HealthStatus
    from ._client import ChatStream, Client
    from ._decoding import IncompleteStreamError, StreamDecoder
    from ._errormap import error_for_status
    from ._format import ResponseFormat
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
    from ._records import record_maker
    from ._responses import (
        ChatResponse,
        Choice,
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
        json_count,
    )
    from ._retry import RetryPolicy
    from ._tokens import TokenCount, TokenCountCall
    from ._toolloop import ToolLoopResult, arun_tools, run_tools
    from ._tools import as_tool
    from .framing import Framer
    from .router import AsyncRouter, Router, Target
    from .state import MemoryStore, StateStore

    __version__: str  # read from the installed metadata on first use (see _version)

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
    "Choice",
    "Client",
    "ClientClosedError",
    "ConfigFileError",
    "ConfigurationError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "Credential",
    "FinishEvent",
    "FinishReason",
    "Framer",
    "HealthStatus",
    "HttpRequest",
    "Image",
    "IncompleteStreamError",
    "InvalidRequestError",
    "MemoryStore",
    "Message",
    "MetricsMergeError",
    "MissingCredentialError",
    "ModelInfo",
    "NetworkError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
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
    "ResponseFormat",
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
    "StructuredOutputError",
    "Target",
    "TextDelta",
    "Timeout",
    "TokenCount",
    "TokenCountCall",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolLoopResult",
    "TransportError",
    "UnknownProviderError",
    "Usage",
    "UsageEvent",
    "arun_tools",
    "as_tool",
    "catalog",
    "config",
    "error_for_status",
    "errors",
    "hookimpl",
    "hookimpl_for",
    "json_count",
    "parse_count",
    "parse_duration",
    "parse_reset",
    "parse_retry_after",
    "record_maker",
    "registry",
    "run_tools",
]

# Loaded on first use, so that `import aipk` (and listing plugins) stays cheap: the clients
# pull in httpx, and the records' attrs classes take milliseconds each to create.
_LAZY = {
    **dict.fromkeys(("AsyncChatStream", "AsyncClient"), "._async_client"),
    **dict.fromkeys(("ChatStream", "Client"), "._client"),
    **dict.fromkeys(("HealthStatus",), "._base"),
    **dict.fromkeys(("IncompleteStreamError", "StreamDecoder"), "._decoding"),
    "error_for_status": "._errormap",
    "ResponseFormat": "._format",
    **dict.fromkeys(("HttpRequest", "Timeout"), "._http"),
    **dict.fromkeys(("ChatRequest", "Image", "Message", "Role", "Tool", "ToolCall", "ToolChoice"),
                    "._messages"),
    **dict.fromkeys(("AuthKind", "Capabilities", "Credential", "ModelInfo", "Provider",
                     "ProviderSpec", "Secret"), "._providers"),
    **dict.fromkeys(("RateLimitState", "RateLimitWindow", "parse_count", "parse_duration",
                     "parse_reset", "parse_retry_after"), "._ratelimit"),
    **dict.fromkeys(("ChatResponse", "Choice", "FinishEvent", "FinishReason", "ReasoningDelta",
                     "RefusalDelta", "StreamAccumulator", "StreamEvent", "TextDelta",
                     "ToolCallDelta", "Usage", "UsageEvent", "json_count"), "._responses"),
    "record_maker": "._records",
    "RetryPolicy": "._retry",
    **dict.fromkeys(("ToolLoopResult", "arun_tools", "run_tools"), "._toolloop"),
    "as_tool": "._tools",
    "Framer": ".framing",
    **dict.fromkeys(("TokenCount", "TokenCountCall"), "._tokens"),
    **dict.fromkeys(("AsyncRouter", "Router", "Target"), ".router"),
    **dict.fromkeys(("MemoryStore", "StateStore"), ".state"),
}
#: Submodules `import aipk` used to load (so they were attributes at once): still attributes.
_SUBMODULES = frozenset({"catalog", "config", "state", "_errormap", "_http", "_messages",
                         "_providers", "_ratelimit",
                         "_responses", "_retry"})


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        if name == "__version__":
            return _version()
        if name in _SUBMODULES:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'aipk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


#: The distribution that installs this package (``pip install aipk-core``; import ``aipk``).
_DISTRIBUTION = "aipk-core"


def _version() -> str:
    """The installed ``aipk-core`` version, read from its metadata on first use (the metadata
    machinery costs milliseconds to import, so ``import aipk`` does not pay for it)."""
    from importlib import metadata

    try:
        version = metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        version = "0+unknown"
    globals()["__version__"] = version
    return version

"""Every error aipk raises, rooted at [`AipkError`][aipk.errors.AipkError].

The hierarchy:

    AipkError
    ├── ConfigurationError              bad settings; fix the code or environment, never retried
    │   ├── UnknownProviderError        no installed plugin serves that provider name
    │   ├── MissingCredentialError      no API key or token could be found
    │   ├── ConfigFileError             a config file is invalid; lists every problem found
    │   ├── InvalidRequestError         the request cannot be sent as built (caught before sending)
    │   ├── ClientClosedError           a call on a client after close() (or its with block)
    │   └── MetricsMergeError           metrics snapshots that cannot be read as one
    │                                   (latency histograms with different buckets)
    ├── PluginError                     a plugin failed to load or broke the hook contract
    └── ProviderError                   anything that went wrong talking to a provider
        ├── TransportError              no usable HTTP response
        │   ├── RequestTimeout          connecting, or waiting for the next byte, took too long,
        │   │                           or the answer missed the call's Timeout(total=...)
        │   └── NetworkError            connection refused, reset, closed mid-response
        ├── StatusError                 the provider answered with an HTTP error status
        │   ├── BadRequestError         400, 409, 413, 422 …: the request itself is wrong
        │   │   ├── NotFoundError       404: no such model or endpoint (check model= and base_url)
        │   │   ├── ContextWindowExceededError  the prompt does not fit the model's context
        │   │   │                       window (from the provider, or check_context=True)
        │   │   └── ContentFilteredError  the provider's safety filter blocked the prompt
        │   ├── AuthenticationError     401, 403, and credential failures (see AuthErrorCode)
        │   │   ├── PermissionDeniedError  403: the credential may not use this model/endpoint
        │   │   └── CredentialError     aipk.credentials: a key or token could not be used,
        │   │       │                   refreshed, stored or obtained
        │   │       └── KeysExhaustedError  every key in a pool is unavailable; retry_after
        │   ├── RateLimitError          429 or a client-side limit; carries retry_after
        │   └── ServerError             5xx; carries retry_after when the provider sent one
        │       └── OverloadedError     529 / "overloaded"
        ├── StreamError                 an error reported in-band, after HTTP 200
        ├── ResponseError               a response aipk cannot decode: malformed JSON, invalid
        │   │                           UTF-8, a stream that ended before its terminator, a
        │   │                           body that does not match its Content-Encoding
        │   ├── StructuredOutputError   the answer is not JSON, or breaks the response_format
        │   │                           schema; carries text, path and the response
        │   ├── ToolArgumentsError      a tool call's arguments are not JSON or break the
        │   │                           tool's schema; carries tool, path and problems
        │   └── IncompleteStreamError   the stream ended before its terminator; ``partial``
        │                               holds the answer received so far
        └── AllTargetsFailedError       aipk.router: every target failed or was unavailable;
                                        carries failures, skipped and retry_after

Every [`ProviderError`][aipk.errors.ProviderError] carries ``provider``, ``request_id`` (when the
provider sent one) and ``retryable``. Status errors also carry ``status``, the decoded ``body`` and
the response ``headers``. Messages say what to do about the error and never contain a secret:
credentials are redacted before they reach any message, repr or log line.

``AuthenticationError`` is *not* raised for a 401 that a credential refresh and one retry
recovered from; only the final failure reaches the caller. The credential errors live in
[`aipk.credentials`][aipk.credentials]; ``AllTargetsFailedError`` is defined here and re-exported by
[`aipk.router`][aipk.router] and `aipk`; ``IncompleteStreamError`` is exported by `aipk`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "AipkError",
    "AllTargetsFailedError",
    "AuthErrorCode",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigFileError",
    "ConfigurationError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "InvalidRequestError",
    "MetricsMergeError",
    "MissingCredentialError",
    "NetworkError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "PluginError",
    "ProviderError",
    "RateLimitError",
    "RequestTimeout",
    "ResponseError",
    "ServerError",
    "StatusError",
    "StreamError",
    "StructuredOutputError",
    "ToolArgumentsError",
    "TransportError",
    "UnknownProviderError",
]


class AipkError(Exception):
    """Base class of every error aipk raises."""

    retryable: bool = False


class ConfigurationError(AipkError, ValueError):
    """The configuration is wrong; the message names the setting to change."""


class UnknownProviderError(ConfigurationError):
    """No loaded plugin serves the requested provider name.

    The message names the fix: the distribution to install when a known plugin serves the
    name (``distribution``), the close names when it looks like a typo (``suggestions``), else
    the usual package name to look for.
    """

    def __init__(self, name: str, installed: list[str], *, distribution: str | None = None,
                 suggestions: Sequence[str] = (), distribution_installed: bool = False) -> None:
        self.name = name
        self.installed = sorted(installed)
        self.distribution = distribution
        self.suggestions = tuple(suggestions)
        listing = ", ".join(self.installed) if self.installed else "none"
        message = f"unknown provider {name!r}; installed providers: {listing}. "
        if distribution is not None and distribution_installed:
            message += (f"It is served by {distribution}, which is installed but did not load: "
                        f"check AIPK_LOAD_PLUGINS and the errors `aipk providers` shows")
        elif distribution is not None:
            message += f"It is served by the plugin {distribution}: pip install {distribution}"
        elif self.suggestions:
            message += f"Did you mean {' or '.join(map(repr, self.suggestions))}?"
        else:
            message += f"If a plugin exists for it, install it, e.g.: pip install aipk-{name}"
        super().__init__(message)


class MissingCredentialError(ConfigurationError):
    """No credential could be found for a provider that needs one."""

    def __init__(self, provider: str, env_vars: tuple[str, ...], *,
                 login: bool = False) -> None:
        self.provider = provider
        self.env_vars = env_vars
        fixes = [f"set {' or '.join(env_vars)} in the environment"] if env_vars else []
        if login:
            fixes.append(f"run: aipk login {provider}")
        fixes.append("pass api_key=... to the client")
        super().__init__(f"no API key for provider {provider!r}: {', or '.join(fixes)}")


class ConfigFileError(ConfigurationError):
    """A config file (or the settings built from it) is invalid. ``problems`` lists every
    problem found, each naming its key path, the fix and where the value came from; ``path``
    is the file (None for settings not read from a file)."""

    def __init__(self, path: object, problems: Sequence[object]) -> None:
        self.path = path
        self.problems = tuple(problems)
        where = f"config {path}" if path is not None else "config"
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{where}: {count} problem{'s' if count != 1 else ''}:\n{lines}")


class InvalidRequestError(ConfigurationError):
    """The request was rejected before sending; the message names the field to correct."""

    def __init__(self, message: str, *, provider: str | None = None, field: str | None = None):
        self.provider = provider
        self.field = field
        super().__init__(message)


class ClientClosedError(ConfigurationError):
    """A call on a client that was closed: create a new client, or make the calls inside its
    ``with`` / ``async with`` block."""

    def __init__(self, client: str, message: str | None = None) -> None:
        self.client = client
        super().__init__(message or (
            f"this {client} was closed (close() or the end of its with block); create a new "
            f"{client}, or make the calls inside its `with` block"))


class MetricsMergeError(ConfigurationError):
    """Metrics snapshots that cannot be merged into one
    ([`merge_snapshots`][aipk.observability.merge_snapshots]): two latency histograms of the
    same series with different buckets. The message names the series and the fix."""


class PluginError(AipkError):
    """A plugin failed to load, or returned something its hook does not allow."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(message)


class AuthErrorCode(str, enum.Enum):
    """Why authentication failed. ``retryable`` says whether trying again can help."""

    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_EXPIRED = "token_expired"
    REFRESH_FAILED = "refresh_failed"
    OAUTH_FLOW_FAILED = "oauth_flow_failed"
    INVALID_CONFIG = "invalid_config"
    NETWORK_ERROR = "network_error"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    SCOPE_INSUFFICIENT = "scope_insufficient"
    KEY_ROTATION_FAILED = "key_rotation_failed"
    ALL_KEYS_EXHAUSTED = "all_keys_exhausted"
    STORAGE_ERROR = "storage_error"
    ENCRYPTION_ERROR = "encryption_error"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE_AUTH_CODES


_RETRYABLE_AUTH_CODES = frozenset(
    {
        AuthErrorCode.TOKEN_EXPIRED,
        AuthErrorCode.REFRESH_FAILED,
        AuthErrorCode.NETWORK_ERROR,
        AuthErrorCode.PROVIDER_UNAVAILABLE,
        AuthErrorCode.KEY_ROTATION_FAILED,
        AuthErrorCode.ALL_KEYS_EXHAUSTED,
        AuthErrorCode.STORAGE_ERROR,
    }
)


class ProviderError(AipkError):
    """Something went wrong talking to a provider."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        self.provider = provider
        self.request_id = request_id
        self.retryable = retryable
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        rid = f", request id {self.request_id}" if self.request_id else ""
        return f"[{self.provider}{rid}] {self.message}"


class TransportError(ProviderError):
    """No usable HTTP response arrived."""

    def __init__(self, message: str, *, provider: str, request_id: str | None = None,
                 retryable: bool = True, before_first_byte: bool = True) -> None:
        super().__init__(message, provider=provider, request_id=request_id, retryable=retryable)
        self.before_first_byte = before_first_byte


class RequestTimeout(TransportError):
    """Connecting took longer than the connect timeout, or no byte came within the read timeout."""


class NetworkError(TransportError):
    """The connection failed or broke: refused, reset, or closed mid-response."""


def _lower_names(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as a plain dict with lower-case names (repeated names joined by ", "), so
    one lookup finds a header whatever case the server wrote and however often."""
    out: dict[str, str] = {}
    for key, value in pairs:
        name = key.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class StatusError(ProviderError):
    """The provider answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, request_id=request_id, retryable=retryable)
        self.status = status
        self.body = body
        self.headers = _lower_names(headers.items()) if headers is not None else {}
        self.code = code

    def __str__(self) -> str:
        rid = f", request id {self.request_id}" if self.request_id else ""
        status = f" HTTP {self.status}" if self.status else ""
        return f"[{self.provider}{status}{rid}] {self.message}"


class BadRequestError(StatusError):
    """The provider rejected the request itself (400, 404, 422 …); retrying will not help."""


class NotFoundError(BadRequestError):
    """404: the model or endpoint does not exist, or the credential cannot see it; check
    ``model=`` (``client.models()`` lists them) and ``base_url``."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus the answer's ``max_tokens``) does not fit the model's context window.

    Raised from the provider's error, or before sending by ``check_context=True``, in which
    case ``status`` is 0 and ``tokens`` / ``context_window`` hold the estimate and the limit.
    """

    def __init__(self, message: str, *, tokens: int | None = None,
                 context_window: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.tokens = tokens
        self.context_window = context_window


class ContentFilteredError(BadRequestError):
    """The provider's safety filter blocked the prompt (no answer was produced): an OpenAI or
    Azure ``content_filter`` error, or a Gemini ``promptFeedback.blockReason`` (then ``status``
    is 200 and ``code`` is the block reason). Rephrase the prompt; retrying as is will not help.
    """


class AuthenticationError(StatusError):
    """The credential was refused, expired or could not be obtained.

    ``status`` is 0 when the failure did not come from an HTTP response (a refresh that failed
    on the network, a token file that could not be read).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        auth_code: AuthErrorCode = AuthErrorCode.INVALID_CREDENTIALS,
        status: int = 0,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            status=status,
            body=body,
            headers=headers,
            request_id=request_id,
            retryable=auth_code.retryable,
            code=auth_code.value,
        )
        self.auth_code = auth_code
        self.details = dict(details or {})


class PermissionDeniedError(AuthenticationError):
    """403: the credential is valid but may not use this model, endpoint or project; check the
    key's permissions (or that a key was sent at all)."""


class RateLimitError(StatusError):
    """The provider (or a client-side limit) says: not now. ``retry_after`` is in seconds."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retry_after: float | None = None,
        status: int = 429,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            status=status,
            body=body,
            headers=headers,
            request_id=request_id,
            retryable=True,
            code=code,
        )
        self.retry_after: float | None = retry_after


class ServerError(StatusError):
    """The provider failed (5xx); usually worth retrying. ``retry_after`` is the wait in
    seconds the provider asked for with a ``retry-after`` header (a 503 or 529 often has
    one), else None; retries wait at least that long."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status, body=body, headers=headers,
                         request_id=request_id, retryable=retryable, code=code)
        self.retry_after: float | None = retry_after


class OverloadedError(ServerError):
    """The provider is overloaded (529, or an in-band "overloaded" error)."""


class StreamError(ProviderError):
    """An error the provider reported inside a stream, after HTTP 200."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        request_id: str | None = None,
        retryable: bool = False,
        code: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, provider=provider, request_id=request_id, retryable=retryable)
        self.code = code
        self.body = body


class ResponseError(ProviderError):
    """The response could not be decoded: malformed JSON, invalid UTF-8, or a truncated stream."""


class AllTargetsFailedError(ProviderError):
    """A router found no target that would answer: each failed, or was skipped as unavailable.

    ``failures`` pairs each tried [`Target`][aipk.router.Target] with its error, in order (over
    every pass, when the router waited); ``skipped`` pairs each target not tried in the last
    pass with the reason. ``retry_after`` is the number of seconds until the earliest target is
    available again (0: one is available now), ``available_at`` the same moment on the router's
    clock, and ``waited`` the seconds the router already slept for this call (its ``max_wait``).
    """

    def __init__(self, message: str, *, failures: Sequence[tuple[Any, ProviderError]],
                 skipped: Sequence[tuple[Any, str]], available_at: float,
                 retry_after: float, waited: float = 0.0) -> None:
        super().__init__(message, provider="router", retryable=True)
        self.failures = tuple(failures)
        self.skipped = tuple(skipped)
        self.available_at = available_at
        self.retry_after = retry_after
        self.waited = waited


class StructuredOutputError(ResponseError):
    """The answer to a ``response_format=`` request is not JSON or breaks its schema.

    Nothing is lost: ``text`` is the raw answer text, ``path`` the JSON path of the first
    problem (``$`` for the whole answer), ``problems`` every ``(path, message)`` found, and
    ``response`` the [`ChatResponse`][aipk.ChatResponse] as received (with ``parsed`` left None).
    """

    def __init__(self, message: str, *, provider: str, text: str, path: str = "$",
                 problems: Sequence[tuple[str, str]] = (), response: Any = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, provider=provider, request_id=request_id)
        self.text = text
        self.path = path
        self.problems = tuple(problems)
        self.response = response


class ToolArgumentsError(ResponseError):
    """A tool call's arguments are not JSON or break the tool's parameter schema.

    ``tool`` names the tool, ``path`` the first offending argument (``$.city``), ``problems``
    every ``(path, message)`` found and ``arguments`` the raw JSON text the model produced.
    """

    def __init__(self, message: str, *, tool: str, arguments: str, path: str = "$",
                 problems: Sequence[tuple[str, str]] = (), provider: str = "") -> None:
        super().__init__(message, provider=provider)
        self.tool = tool
        self.arguments = arguments
        self.path = path
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return super().__str__() if self.provider else self.message

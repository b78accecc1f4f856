"""The sans-IO HTTP request a plugin builds, timeouts, and redaction of secrets for display.

Plugins never send anything: they return an :class:`HttpRequest`, and the client's transport
sends it. ``json`` is encoded once, by the core, just before sending, so wrappers can still
adjust the body.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = ["AUTH_HEADERS", "HttpRequest", "Timeout", "encode_json", "redact_headers",
           "redact_url"]

#: Headers that carry a provider credential: only the client's credential may set them.
AUTH_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})
SENSITIVE_HEADERS = AUTH_HEADERS | {"cookie", "proxy-authorization", "openai-organization"}
#: Any other header whose name looks like it carries a secret is redacted too.
_SECRET_NAME = re.compile(r"auth|key|token|secret|password|cookie|session", re.IGNORECASE)


def looks_secret(name: str) -> bool:
    """True for a header name that carries, or looks like it carries, a credential."""
    return name.lower() in SENSITIVE_HEADERS or _SECRET_NAME.search(name) is not None
_KEY_PARAM = re.compile(r"([?&](?:key|api_key|apikey|access_token|token)=)[^&#]*", re.IGNORECASE)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced by ``'****'``."""
    return {k: ("****" if looks_secret(k) else v) for k, v in headers.items()}


def redact_url(url: str) -> str:
    """``url`` with key-like query parameters replaced by ``'****'``."""
    return _KEY_PARAM.sub(r"\1****", url)


_encoder = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, as sent on the wire."""
    return _encoder.encode(data).encode("utf-8")


@attrs.frozen(kw_only=True, repr=False)
class HttpRequest:
    """An HTTP request to send: method, URL, headers, and a JSON body or raw content.

    Attributes:
        method: The HTTP method.
        url: The absolute URL, query string included.
        headers: Request headers (shown redacted in the repr).
        json: A body to encode as compact JSON, or None.
        content: A raw body, sent as is; takes precedence over ``json``.
        timeout: Timeouts for this request only (``chat(timeout=...)``); None uses the
            transport's.
    """

    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH"] = "POST"
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    json: Any = None
    content: bytes | None = None
    timeout: Timeout | None = None

    def body(self) -> bytes | None:
        """The bytes to send: ``content`` if set, else ``json`` encoded, else nothing."""
        if self.content is not None:
            return self.content
        if self.json is not None:
            return encode_json(self.json)
        return None

    def with_headers(self, **headers: str) -> HttpRequest:
        """A copy with these headers added or replaced."""
        return self.merge_headers(headers)

    def merge_headers(self, headers: Mapping[str, str]) -> HttpRequest:
        """A copy with ``headers`` added or replaced."""
        merged = {**self.headers, **headers}
        if type(self) is not HttpRequest:  # a subclass may have more fields
            return attrs.evolve(self, headers=merged)
        return HttpRequest(method=self.method, url=self.url, headers=merged, json=self.json,
                           content=self.content, timeout=self.timeout)

    def __repr__(self) -> str:
        return (
            f"HttpRequest(method={self.method!r}, url={redact_url(self.url)!r}, "
            f"headers={redact_headers(self.headers)!r})"
        )


@attrs.frozen(kw_only=True)
class Timeout:
    """Separate timeouts, in seconds. ``read`` bounds the wait for *each* chunk, not the whole
    stream, so a long stream is never cut by a total deadline.

    Attributes:
        connect: Seconds to establish a connection.
        read: Seconds to wait for each chunk of the response.
        write: Seconds to send each chunk of the request.
        pool: Seconds to wait for a free connection from the pool.
    """

    connect: float = 10.0
    read: float = 600.0
    write: float = 60.0
    pool: float = 60.0

"""The sans-IO HTTP request a plugin builds, timeouts, and redaction of secrets for display.

Plugins never send anything: they return an [`HttpRequest`][aipk._http.HttpRequest], and the
client's transport sends it. ``json`` is encoded once, by the core, just before sending, so wrappers
can still adjust the body.
"""

from __future__ import annotations

import json as _json
import json.encoder as _json_encoder
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ._records import fast_record, record, record_builder
from ._secrets import held_values, redact
from .errors import ConfigurationError

__all__ = ["AUTH_HEADERS", "HttpRequest", "Timeout", "declare_secret_headers", "encode_json",
           "redact_headers", "redact_url"]

#: Headers that carry a provider credential: only the client's credential may set them.
AUTH_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})
SENSITIVE_HEADERS = AUTH_HEADERS | {"cookie", "proxy-authorization", "openai-organization"}
#: Header names plugins declared secret (ProviderSpec.secret_headers), lower-case.
_declared: set[str] = set()
#: Words that mark a header name as carrying a credential, whatever plugin sent it.
_SECRET_WORDS = ("auth", "token", "key", "secret", "password", "signature", "session",
                 "cookie", "credential")
#: a key-like query parameter (compiled by ``re`` on first use: few processes ever need it)
_KEY_PARAM = r"([?&](?:key|api_key|apikey|access_token|token)=)[^&#]*"


def declare_secret_headers(names: Iterable[str]) -> None:
    """Hide these headers' values in every request repr (what ProviderSpec.secret_headers
    declares; the engine calls this for its provider)."""
    _declared.update(name.lower() for name in names)


def _secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    lower = name.lower()
    return (lower in SENSITIVE_HEADERS or lower in _declared
            or any(word in lower for word in _SECRET_WORDS)
            or any(lower == other.lower() for other in extra))


def redact_headers(headers: Mapping[str, str], secret_names: Iterable[str] = ()) -> (
        dict[str, str]):
    """A copy of ``headers`` with credentials replaced by ``'****'``: the common credential
    headers, those a plugin declared (``ProviderSpec.secret_headers``, ``secret_names``), any
    whose name looks like one (``…token…``, ``…key…``, ``…auth…``), and any whose value holds
    the value of a live [`Secret`][aipk.Secret], whatever its name."""
    values = held_values()
    names = tuple(secret_names)
    return {k: ("****" if _secret_name(k, names) or _holds(str(v), values) else v)
            for k, v in headers.items()}


def _holds(value: str, secrets: list[str]) -> bool:
    return any(secret in value for secret in secrets)


def redact_url(url: str) -> str:
    """``url`` with key-like query parameters replaced by ``'****'``."""
    return re.sub(_KEY_PARAM, r"\1****", url, flags=re.IGNORECASE)


_encoder = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
#: The C encoder ``_encoder.encode`` builds on every call (with ``json.encoder``'s own
#: arguments for these options), built once: the same text without the Python layers.
_c_make_encoder = getattr(_json_encoder, "c_make_encoder", None)  # None without the C module
_c_encode: Any = None
if _c_make_encoder is not None:
    _c_encode = _c_make_encoder(
        None, _encoder.default, _json_encoder.encode_basestring, None,
        _encoder.key_separator, _encoder.item_separator, False, False, True)


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, as sent on the wire."""
    if _c_encode is None:
        return _encoder.encode(data).encode()
    return "".join(_c_encode(data, 0)).encode()  # (UTF-8, the default)


_new = object.__new__


@fast_record(kw_only=True, repr=False)
class HttpRequest:
    """An HTTP request to send: method, URL, headers, and a JSON body or raw content.

    Its repr hides the common credential headers, those the provider declared
    (``ProviderSpec.secret_headers``), any whose name looks like one (``…token…``,
    ``…key…``, ``…auth…``) and any whose value holds a live [`Secret`][aipk.Secret]'s value.

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
        # Every field but the headers comes from this (already built) record: stored directly
        # on its builder, which then becomes the HttpRequest, rather than through the
        # generated keyword __init__ (once per request, when signing).
        copy = _new(_HttpRequestBuilder)
        copy.method = self.method
        copy.url = self.url
        copy.headers = merged
        copy.json = self.json
        copy.content = self.content
        copy.timeout = self.timeout
        copy.__class__ = HttpRequest
        return copy  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (
            f"HttpRequest(method={self.method!r}, url={redact(redact_url(self.url))!r}, "
            f"headers={redact_headers(self.headers)!r})"
        )


#: HttpRequest's builder: a copy is filled in with plain stores (see `record_builder`)
_HttpRequestBuilder = record_builder(HttpRequest)


def _positive_seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    check_seconds(value, f"Timeout({attribute.name}=)")


def _positive_seconds_or_none(_: object, attribute: attrs.Attribute[float | None],
                              value: float | None) -> None:
    if value is not None:
        check_seconds(value, f"Timeout({attribute.name}=)")


@record(kw_only=True)
class Timeout:
    """Separate timeouts, in seconds. ``read`` bounds the wait for *each* chunk, not the whole
    stream, so a long stream is never cut by a total deadline. ``total``, when set, bounds the
    whole call until its answer has arrived: every attempt, retry and wait of a ``chat()`` up
    to its whole body, of a ``stream()`` up to its first event (never the rest of the stream).
    Each must be a positive number (ConfigurationError otherwise).

    Attributes:
        connect: Seconds to establish a connection.
        read: Seconds to wait for each chunk of the response.
        write: Seconds to send each chunk of the request.
        pool: Seconds to wait for a free connection from the pool.
        total: Seconds a call may take, in all, until its answer arrived (a ``chat()``'s
            whole body, a stream's first event): connecting, sending, reading, and every
            retry and wait between attempts; past it the call raises ``RequestTimeout``.
            None (the default): no such bound, each wait is bounded by the others.
    """

    connect: float = attrs.field(default=10.0, validator=_positive_seconds)
    read: float = attrs.field(default=600.0, validator=_positive_seconds)
    write: float = attrs.field(default=60.0, validator=_positive_seconds)
    pool: float = attrs.field(default=60.0, validator=_positive_seconds)
    total: float | None = attrs.field(default=None, validator=_positive_seconds_or_none)


def check_seconds(value: object, name: str) -> float:
    """``value`` as a float if it is a positive, finite number of seconds, else
    ConfigurationError naming ``name``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        if 0 < seconds < math.inf:
            return seconds
        problem = f"is {value!r}, not a positive number of seconds"
    else:
        problem = f"is a {type(value).__name__}, not a number of seconds"
    raise ConfigurationError(
        f"{name} {problem}; pass seconds, e.g. timeout=30 or "
        f"aipk.Timeout(connect=5, read=120, total=300)")

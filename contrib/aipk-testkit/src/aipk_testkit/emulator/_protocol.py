"""The contract between the protocol-neutral server and one wire protocol, and their registry.

Each protocol lives in its own module (``_openai.py``, ``_anthropic.py``, ``_gemini.py``,
``_ollama.py``), subclasses `ProtocolHandler`, sets its ``name`` (what
``Emulator.url(name)`` takes) and ``mount`` (the path prefix it serves), and decorates the class
with `register()`. A third party's protocol does the same from its own module: every
`Emulator` created after ``register`` speaks it. The server routes
a request to the handler whose ``mount`` is the longest prefix of its path, then:

1. ``check_auth`` (only when a key is required) may answer 401 in the protocol's shape.
2. ``route`` names the endpoint for the path below the mount: ``"chat"`` endpoints are answered
   from the emulator's reply queue; any other name is answered by ``answer`` (e.g. models).
3. For chat, ``parse_chat`` extracts a `ChatCall` (model, stream flag, last user text,
   rendering options) or raises `RequestError` (400 in the protocol's shape).
4. ``render_reply`` turns a `Reply` into a `Rendered`:
   a JSON body, or a list of complete stream events (SSE events, NDJSON lines, JSON-array
   elements: whatever the protocol's framing is) plus the protocol's ``terminator``.
   The server sends each event as one HTTP chunk, caches the bytes, and applies faults
   generically by slicing events (reset, truncate) or splicing in ``error_event`` /
   ``malformed_event``.
5. ``render_error`` gives an error response for any status, ``rate_limit_headers`` the
   protocol's rate-limit header family, ``new_request_id`` its request id.
"""

from __future__ import annotations

import itertools
import math
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from ._ratelimit import RateLimitSnapshot
from ._types import RecordedRequest, Reply

P = TypeVar("P", bound="ProtocolHandler")

_REGISTRY: dict[str, type[ProtocolHandler]] = {}


def register(cls: type[P]) -> type[P]:
    """Class decorator: make a protocol handler available to every new emulator."""
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[ProtocolHandler]]:
    """The registered protocol handler classes by protocol name."""
    return dict(_REGISTRY)


@dataclass(frozen=True)
class ChatCall:
    """What the server needs to know about one chat request, extracted by the handler.

    ``options`` holds protocol rendering switches (e.g. OpenAI's ``include_usage``); together
    with the model, stream flag and prompt size it keys the cache of precomputed responses.
    ``structured`` makes an unscripted request answer with JSON following its schema.

    Attributes:
        model: The model the request names (a reply's ``model`` defaults to it).
        stream: True when the request asked for a stream: ``render_reply`` then returns
            ``events``.
        user_text: The last user message's text (unscripted requests answer ``echo: <it>``).
        prompt_tokens: The prompt's size in tokens, as the handler estimates it (the usage
            ``render_reply`` receives unless the reply sets its own).
        options: Protocol rendering switches, hashable.
        structured: What the request asked for as structured output, if anything (None for a
            third-party protocol that has none).
    """

    model: str
    stream: bool
    user_text: str
    prompt_tokens: int
    options: tuple[object, ...] = ()
    #: what the request asked for as structured output (a ``_structured.Structured``), if any
    structured: object = None


def emulated_token_count(text: str, messages: int, tools_json: str = "") -> int:
    """The emulator's count endpoints' answer: one token per three characters of text and
    tool JSON (rounded up) plus three per message, deliberately unlike aipk's local estimate so
    a test can tell which was used."""
    return -(-(len(text) + len(tools_json)) // 3) + 3 * messages


@dataclass
class Rendered:
    """A response before framing: a body, or (when ``events`` is not ``None``) a stream.

    Each event is one complete unit of the protocol's stream framing (an SSE event
    ``data: …\\n\\n``, an NDJSON line ending in ``\\n``, a JSON-array element);
    ``terminator`` is the protocol's end-of-stream event (``b""`` when it has none). Faults cut
    the stream before it. The server adds the request id, rate-limit and ``retry-after``
    headers itself.

    Attributes:
        status: The HTTP status.
        headers: Response headers as (name, value) pairs, e.g. the content type.
        body: The whole body of a non-streaming response.
        events: The stream's events, each sent as one HTTP chunk; None for a plain body.
        terminator: The event only a complete stream ends with (``data: [DONE]``, Ollama's
            ``"done": true`` line); faults that cut the stream leave it out.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    events: list[bytes] | None = None
    terminator: bytes = b""


class RequestError(Exception):
    """A request the protocol rejects; rendered with `ProtocolHandler.render_error()`."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


class ProtocolHandler(ABC):
    """One wire protocol: routing below its mount, parsing, rendering and error shapes.

    ``name`` is the protocol's name (``Emulator.url(name)``, the registry key); ``mount`` is
    the path prefix it serves (``"/v1"``, ``"/gemini"``), so its base URL is
    ``<emulator>/<mount>``. Subclass it, implement the abstract methods, and decorate the
    class with [`register`][aipk_testkit.emulator.register] before creating the emulator
    (import the module from ``conftest.py``). ``self.models`` holds the model ids the
    emulator lists (``Emulator(models=...)``, else `default_models()`).

    For each request the server picks the handler whose ``mount`` is the longest prefix of
    the path, then calls ``check_auth`` (only when a key is required), ``route``, and for a
    ``"chat"`` endpoint ``parse_chat`` and ``render_reply`` (other endpoints: ``answer``).
    ``render_error``, ``error_event``, ``malformed_body`` and ``malformed_event`` build the
    faults; ``rate_limit_headers`` the headers ``Emulator.set_rate_limit`` asks for.
    """

    #: the protocol's name: ``Emulator.url(name)`` and the `register()` key
    name: ClassVar[str]
    #: the path prefix this protocol serves, e.g. ``"/ollama"``
    mount: ClassVar[str]
    request_id_header: ClassVar[str] = "x-request-id"

    def __init__(self, models: Sequence[str] | None = None) -> None:
        self.models: list[str] = list(models) if models is not None else self.default_models()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(12)

    def default_models(self) -> list[str]:
        """Model ids listed when the emulator is not given any."""
        return []

    def new_request_id(self) -> str:
        """A fresh request id for the response header (cheap: a random prefix and a counter)."""
        return f"req_{self._id_prefix}{next(self._ids):08x}"

    def retry_after_headers(self, seconds: float) -> list[tuple[str, str]]:
        """Headers telling the client to wait ``seconds`` (``retry-after``, rounded up)."""
        return [("retry-after", str(max(0, math.ceil(seconds))))]

    @abstractmethod
    def route(self, method: str, path: str) -> str | None:
        """The endpoint name for ``path`` (below the mount); ``"chat"`` or another, or ``None``."""

    @abstractmethod
    def check_auth(self, request: RecordedRequest, accepts: Callable[[str], bool]) -> (
            Rendered | None):
        """``None`` when the request carries a key that ``accepts``, as this protocol expects
        it; else the protocol's 401 (or 403)."""

    def credential_of(self, request: RecordedRequest) -> str | None:
        """The key or token the request presents, as this protocol carries it (or None)."""
        bearer = request.headers.get("authorization", "")
        return bearer[7:] if bearer.startswith("Bearer ") else None

    @abstractmethod
    def parse_chat(self, request: RecordedRequest, path: str) -> ChatCall:
        """Extract the `ChatCall`; raise `RequestError` when malformed."""

    @abstractmethod
    def answer(self, endpoint: str, path: str, request: RecordedRequest) -> Rendered:
        """The response of a non-chat endpoint (e.g. the model listing)."""

    @abstractmethod
    def render_reply(self, reply: Reply, call: ChatCall, usage: tuple[int, int]) -> Rendered:
        """``reply`` as this protocol's JSON body or SSE events, with ``usage`` reported."""

    @abstractmethod
    def render_error(self, status: int, message: str | None = None, *, code: str | None = None,
                     param: str | None = None, error_type: str | None = None,
                     retry_after: float | None = None) -> Rendered:
        """An error response for ``status`` in this protocol's shape (defaults per status).
        ``retry_after`` is for protocols that also say it in the body (Gemini's RetryInfo)."""

    def render_blocked(self, call: ChatCall, reason: str) -> Rendered:
        """The answer to a prompt the safety filter blocks (default: a 400 ``content_filter``
        error, as OpenAI and Azure send)."""
        return self.render_error(
            400, f"The prompt was blocked by the content filter ({reason}).",
            code="content_filter")

    @abstractmethod
    def error_event(self, message: str, code: str | None) -> bytes:
        """An in-band error event (in the protocol's stream framing), sent after a 200."""

    @abstractmethod
    def malformed_body(self, invalid_utf8: bool) -> bytes:
        """A 200 body that is not JSON (or not UTF-8)."""

    @abstractmethod
    def malformed_event(self, invalid_utf8: bool) -> bytes:
        """A stream event whose data is not JSON (or not UTF-8)."""

    @abstractmethod
    def rate_limit_headers(self, snapshot: RateLimitSnapshot) -> list[tuple[str, str]]:
        """This protocol's rate-limit headers for ``snapshot``."""

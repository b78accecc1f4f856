"""Captured provider responses in tests: find the fixtures folder, read captures, and replay
them through a sans-IO `aipk._core.Engine` built from your plugin alone.

A capture is one file in a provider's folder (``tests/fixtures/<provider>/``), in one of three
formats (``tests/fixtures/SOURCES.md``):

* ``*.sse``: a response body exactly as streamed;
* ``*.json`` "interaction-json": ``{"request": {method, url, headers, body},
  "response": {status, headers, body}}``, header values are lists, ``response.body`` a string;
* ``*.json`` "json-body": a response body alone.

    from aipk_testkit.fixtures import Captures, find_fixtures, make_engine

    FIXTURES = find_fixtures(__file__)          # the nearest tests/fixtures above this file
    CAPTURES = Captures(FIXTURES / "acme")

    def test_text() -> None:
        engine = make_engine(ACME, {"acme": acme_plugin}, clock=lambda: 1_700_000_000.0)
        status, headers, body = CAPTURES.response("chat-text.json")
        reply = engine.chat_response(REQUEST, body.encode(), headers, None)

The folder is found from the test file (``__file__``), not from this package, so it works the
same whether the testkit is installed editable or as a wheel (as in an isolated nox session),
and a package with its own ``tests/fixtures`` copy finds that one first.

Reading captures needs only the standard library; `make_provider()`, `make_engine()`,
`decode_sse()` and `replay_stream()` import ``aipk`` (``aipk-core``) when called.
``aipk._core.Engine`` is aipk's internal sans-IO engine: good for unit tests of a plugin's
hooks, not a stable API.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from aipk import (
        ChatRequest,
        ChatResponse,
        Credential,
        Provider,
        ProviderSpec,
        RetryPolicy,
        StreamDecoder,
        StreamEvent,
    )
    from aipk._core import Engine

__all__ = [
    "CapturedResponse",
    "Captures",
    "decode_sse",
    "find_fixtures",
    "flatten_headers",
    "make_engine",
    "make_provider",
    "manifest_names",
    "replay_stream",
    "split_at",
]


def find_fixtures(anchor: str | os.PathLike[str], relative: str = "tests/fixtures") -> Path:
    """The nearest ``<folder>/<relative>`` directory at or above ``anchor``.

    Pass the test module's ``__file__``: from ``plugins/acme/tests/test_x.py`` this finds
    ``plugins/acme/tests/fixtures`` if the package keeps its own copy, else the repository's
    ``tests/fixtures``. Raises `FileNotFoundError` when there is none.
    """
    start = Path(anchor).resolve()
    folders = [start, *start.parents] if start.is_dir() else list(start.parents)
    for folder in folders:
        candidate = folder / relative
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no {relative!r} directory at or above {str(start)!r}")


def flatten_headers(headers: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Captured headers (name -> list of values) as a client sees them: lower-cased names,
    the first value of each, names without a value left out."""
    return {name.lower(): values[0] for name, values in headers.items() if values}


def manifest_names(fixtures: str | os.PathLike[str], folder: str) -> set[str]:
    """The file names ``<fixtures>/MANIFEST.json`` lists under ``folder/``.

    The manifest is ``{"files": [{"path": "<folder>/<name>", ...}, ...]}``; compare the result
    with `Captures.names()` in a meta-test so that no capture goes undescribed.
    """
    manifest = json.loads((Path(fixtures) / "MANIFEST.json").read_text(encoding="utf-8"))
    prefix = folder.rstrip("/") + "/"
    return {entry["path"][len(prefix):] for entry in manifest["files"]
            if entry["path"].startswith(prefix)}


class CapturedResponse(NamedTuple):
    """The response half of an interaction capture."""

    status: int
    #: As `flatten_headers()` gives them.
    headers: dict[str, str]
    #: The body text as captured.
    body: str


class Captures:
    """The captures in one folder (one provider's), by file name."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"Captures({str(self.directory)!r})"

    def path(self, name: str) -> Path:
        return self.directory / name

    def names(self) -> set[str]:
        """The names of the files in the folder (for "every capture has a test" checks)."""
        return {p.name for p in self.directory.iterdir() if p.is_file()}

    def raw(self, name: str) -> bytes:
        """The file's bytes."""
        return self.path(name).read_bytes()

    def interaction(self, name: str) -> dict[str, Any]:
        """An interaction-json capture, parsed: ``{"request": {...}, "response": {...}}``."""
        data: dict[str, Any] = json.loads(self.raw(name))
        return data

    def request(self, name: str) -> dict[str, Any]:
        """The request an interaction capture recorded: ``method``, ``url``, ``headers`` and
        ``body`` (parsed JSON where the source stored it so)."""
        request: dict[str, Any] = self.interaction(name)["request"]
        return request

    def response(self, name: str) -> CapturedResponse:
        """Status, flattened headers and body text of an interaction capture."""
        response = self.interaction(name)["response"]
        return CapturedResponse(response["status"], flatten_headers(response["headers"]),
                                response["body"])

    def body(self, name: str) -> bytes:
        """The response body bytes of a capture in any format: an ``.sse`` file or a json-body
        file as it is, the response body of an interaction capture encoded as UTF-8."""
        return self.body_and_headers(name)[0]

    def body_and_headers(self, name: str) -> tuple[bytes, dict[str, str]]:
        """`body()` with the response headers of an interaction capture (``{}`` for the
        other formats, which record none)."""
        raw = self.raw(name)
        if not name.endswith(".sse"):
            data = json.loads(raw)
            if isinstance(data, dict) and "request" in data and "response" in data:
                response = data["response"]
                return (str(response["body"]).encode("utf-8"),
                        flatten_headers(response["headers"]))
        return raw, {}


def split_at(raw: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``raw`` cut at the given offsets (out-of-range and repeated ones ignored), in order:
    feed the pieces to a decoder to check that chunk boundaries do not matter."""
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


# -- the sans-IO engine (these import aipk) ------------------------------------------------------


def make_provider(spec: ProviderSpec, base_url: str | None = None, **options: Any) -> Provider:
    """A provider resolved the way the client does it: the spec's default base URL unless one
    is given, the spec's options overridden by ``options``."""
    from aipk import Provider

    return Provider(spec=spec, base_url=base_url or spec.default_base_url,
                    options={**spec.options, **options})


def make_engine(provider: Provider | ProviderSpec, plugins: Mapping[str, object], *,
                credential: Credential | None = None, retry: RetryPolicy | None = None,
                clock: Callable[[], float] | None = None, **engine_options: Any) -> Engine:
    """A sans-IO engine for ``provider`` over a registry holding only ``plugins`` (name ->
    plugin module, registered in order; no entry points).

    A [`ProviderSpec`][aipk.ProviderSpec] is resolved with `make_provider()`. ``credential``
    defaults to ``Credential(kind="none")``, ``retry`` to ``RetryPolicy()``, ``clock`` to the
    engine's (the wall clock); other keywords (``tracker``, ``limits``) go to the engine.
    """
    from aipk import Credential, ProviderSpec, RetryPolicy
    from aipk._core import Engine
    from aipk.registry import Registry

    registry = Registry(entry_points=False)
    for name, plugin in plugins.items():
        registry.register(plugin, name)
    if isinstance(provider, ProviderSpec):
        provider = make_provider(provider)
    if clock is not None:
        engine_options["clock"] = clock
    return Engine(registry=registry, provider=provider,
                  credential=credential if credential is not None else Credential(kind="none"),
                  retry=retry if retry is not None else RetryPolicy(), **engine_options)


def decode_sse(decoder: StreamDecoder, pieces: Iterable[bytes]) -> list[StreamEvent]:
    """Bytes -> the decoder's framer (`aipk.sse.SSEDecoder` unless the decoder declares
    another ``framing``) -> ``decoder``, then ``decoder.close()``: the events a plugin's stream
    decoder makes of a body arriving in ``pieces``."""
    from aipk.framing import make_framer

    framer = make_framer(getattr(decoder, "framing", None))
    events: list[StreamEvent] = []
    for piece in pieces:
        for frame in framer.feed(piece):
            events.extend(decoder.feed(frame))
    for frame in framer.close():
        events.extend(decoder.feed(frame))
    events.extend(decoder.close())
    return events


def replay_stream(engine: Engine, request: ChatRequest, pieces: Iterable[bytes],
                  headers: Mapping[str, str] | None = None) -> tuple[list[StreamEvent],
                                                                      ChatResponse]:
    """A streamed body fed to ``engine``'s stream session as it would arrive over HTTP: the
    events it yields and the aggregated response."""
    session = engine.open_stream(request, headers or {}, None)
    events: list[StreamEvent] = []
    for piece in pieces:
        events.extend(session.feed(piece))
    events.extend(session.finish())
    return events, session.response()

"""How the async httpx transport reads a stream's body, over real HTTP against
``tests/rawserver.py``: a plain body straight from the response's byte stream (no decoder or
re-chunking layer per part), a ``Content-Encoding`` body through httpx's decoder; either way
the parts arrive as sent, the connection is reused and a stalled read still times out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

import aipk
from aipk.errors import RequestTimeout

from .rawserver import HOLD, RawServer, chunk, gzipped, head, raw_server
from .test_raw_faults import OPENAI_STREAM as STREAM
from .test_raw_faults import oai_chunk

KEY = "sk-raw-SECRETVALUE-0123456789"
USER = [aipk.Message.user("hi")]


def script(body: bytes, headers: Sequence[tuple[str, str]] = ()) -> list[Any]:
    return [head(200, [("Content-Type", "text/event-stream"), *headers,
                       ("Transfer-Encoding", "chunked")]), chunk(body), chunk(b"")]


def texts(server: RawServer, streams: int, *, timeout: float | None = None) -> (
        list[str] | BaseException):
    """``streams`` streams read in turn by one AsyncClient over the default httpx transport."""
    async def scenario() -> list[str]:
        async with aipk.AsyncClient("openai", base_url=server.url + "/v1", api_key=KEY,
                                    timeout=timeout) as client:
            out = []
            for _ in range(streams):
                async with client.stream(model="m", messages=USER) as answer:
                    out.append((await answer.get_response()).text or "")
            return out

    try:
        return asyncio.run(scenario())
    except aipk.AipkError as exc:
        return exc


def no_aiter_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: httpx.Response, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        raise AssertionError("a plain body read through Response.aiter_bytes()")

    monkeypatch.setattr(httpx.Response, "aiter_bytes", refused)


def test_a_plain_body_is_read_from_the_byte_stream_and_the_connection_reused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    no_aiter_bytes(monkeypatch)
    with raw_server(script(STREAM)) as server:
        assert texts(server, 3) == ["Hello"] * 3
        assert server.connections == 1


def test_a_gzip_body_is_decoded() -> None:
    with raw_server(script(gzipped(STREAM), [("Content-Encoding", "gzip")])) as server:
        assert texts(server, 2) == ["Hello"] * 2


def test_a_stalled_plain_body_still_times_out_at_the_read_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    no_aiter_bytes(monkeypatch)
    head_and_first = [head(200, [("Content-Type", "text/event-stream"),
                                 ("Transfer-Encoding", "chunked")]),
                      chunk(oai_chunk({"role": "assistant", "content": "Hel"})), HOLD]
    with raw_server(head_and_first) as server:
        started = time.monotonic()
        outcome = texts(server, 1, timeout=0.3)
        took = time.monotonic() - started
    assert isinstance(outcome, RequestTimeout), outcome
    assert took < 2.0  # the 0.3 s read timeout, not the stall's end

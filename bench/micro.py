"""aipk's own per-request and per-chunk cost, in-process, without sockets.

    python bench/micro.py [--profile chat|achat|engine|stream|reads|first] [--n 20000]
    bash bench/instructions.sh [chat|achat|engine|stream|reads|floor-reads|first]  # callgrind

``chat``: ``Client.chat`` over an in-memory transport that returns a canned OpenAI reply (so
everything aipk does per request, minus the HTTP client). ``achat``: ``AsyncClient.chat`` over
an in-memory async transport whose reply also carries OpenAI's six rate-limit headers (the same
work through the async client's send loop and its awaits, plus reading and merging the
rate-limit state, as over a real connection). ``engine``: the Engine steps alone
(prepare, sign, observe, chat_response). ``stream``: ``AsyncClient.stream`` over an in-memory
transport (µs per chunk, one event per read). ``reads``: the same over reads of 100 events each
through the client's direct chunk-reader loop, as the aiohttp transport streams; ``floor-reads``:
what the raw floors of ``bench/adapters.py`` do on the same reads. ``framing``: each core
framer on a chunk carrying the same event (SSE, NDJSON, a JSON-array element) plus the
decoder's JSON parse of the frame, µs per chunk.
``first``: whole short streams (eight text events arriving in one read) over an in-memory
transport, µs per stream: what aipk does from ``stream()`` to the first text delta and on to the
end. ``part-<name>``: one part of ``achat``'s per-request work alone, for a breakdown
(``bash bench/instructions.sh "part-floor part-request part-prepare part-sign part-admission
part-rate-limits part-parse part-telemetry part-key-pool"``; `part_loop` says what each is).
Every installed plugin is loaded, as in ``bench/run.py``; ``AIPK_BENCH_EXPORTER=prometheus``
(or ``otel``, ``otel-api``, ``prometheus,otel``) installs those exporters first, to measure
their cost (``otel`` on SDK tracer and meter providers exporting nowhere, ``otel-api`` on
OpenTelemetry's no-op API providers). Report the median
of several repeats (CPU time of this process, so less sensitive to other load); use it to
compare before/after side by side, and ``bench/run.py`` for the real numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import json
import os
import pstats
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from adapters import _sse_text as sse_text  # the floors' own per-line work

import aipk

BODY = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "lorem ipsum dolor",
                                         "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_1",
}).encode()
HEADERS = {"content-type": "application/json", "openai-version": "2020-10-01",
           "openai-processing-ms": "1", "content-length": str(len(BODY)),
           "x-request-id": "req_1"}
#: HEADERS plus OpenAI's six rate-limit headers, as the emulator and the real API send them
LIMITED_HEADERS = {**HEADERS, "x-ratelimit-limit-requests": "10000",
                   "x-ratelimit-limit-tokens": "10000000",
                   "x-ratelimit-remaining-requests": "9999",
                   "x-ratelimit-remaining-tokens": "9999990",
                   "x-ratelimit-reset-requests": "6ms", "x-ratelimit-reset-tokens": "0s"}
CHUNK = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
         b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lore"},'
         b'"logprobs":null,"finish_reason":null}]}\n\n')
STREAM_END = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
              b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,'
              b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


class _Response:
    status = 200
    headers = HEADERS

    def read(self) -> bytes:
        return BODY

    def iter_bytes(self) -> Iterator[bytes]:
        yield BODY

    def close(self) -> None: ...


class _Transport:
    def send(self, request: Any, body: bytes | None) -> _Response:
        return _Response()

    def close(self) -> None: ...


class _AsyncStreamResponse:
    status = 200
    headers = {"content-type": "text/event-stream"}

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    async def read(self) -> bytes:
        return b""

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            yield CHUNK
        yield STREAM_END

    async def close(self) -> None: ...


#: the same event as CHUNK, framed as an NDJSON line and as a JSON-array element
FRAMED = {
    "sse": CHUNK,
    "ndjson": CHUNK[6:-2] + b"\n",
    "json-array": b"\n,\r\n" + CHUNK[6:-2],
}


class _ShortStreamResponse(_AsyncStreamResponse):
    """A short answer (eight text events and the end) arriving in one read, as over loopback."""

    BODY = CHUNK * 8 + STREAM_END

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        yield self.BODY


class _AsyncChatResponse:
    status = 200
    headers = LIMITED_HEADERS

    async def read(self) -> bytes:
        return BODY

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        yield BODY

    async def close(self) -> None: ...


class _AsyncChatTransport:
    async def send(self, request: Any, body: bytes | None) -> _AsyncChatResponse:
        return _AsyncChatResponse()

    async def close(self) -> None: ...


#: events per read in the ``reads`` loop: over aiohttp one read holds hundreds of events
READ_EVENTS = 100


class _ReadsStreamResponse(_AsyncStreamResponse):
    """A long stream read as aiohttp's transport reads it (``chunk_reader``: the client's
    direct ``readany`` loop), ``READ_EVENTS`` events per read."""

    def chunk_reader(self) -> tuple[Any, tuple[type[BaseException], ...], Any]:
        reads = [CHUNK * READ_EVENTS] * (self.chunks // READ_EVENTS) + [
            CHUNK * (self.chunks % READ_EVENTS) + STREAM_END, b""]
        return (_Reads(reads).read, (OSError,), RuntimeError)


class _Reads:
    def __init__(self, reads: list[bytes]) -> None:
        self._next = iter(reads).__next__

    async def read(self) -> bytes:
        return self._next()


class _AsyncTransport:
    def __init__(self, chunks: int, short: bool = False, reads: bool = False) -> None:
        self.chunks = chunks
        self.short = short
        self.reads = reads

    async def send(self, request: Any, body: bytes | None) -> _AsyncStreamResponse:
        if self.short:
            return _ShortStreamResponse(8)
        if self.reads:
            return _ReadsStreamResponse(self.chunks)
        return _AsyncStreamResponse(self.chunks)

    async def close(self) -> None: ...


MSGS = [aipk.Message.user("Say hello")]


def chat_loop(n: int) -> float:
    client = aipk.Client("openai", base_url="http://127.0.0.1:1/v1", api_key="sk-bench",
                         transport=_Transport())
    client.chat(model="gpt-4o-mini", messages=MSGS)
    t = time.process_time()
    for _ in range(n):
        client.chat(model="gpt-4o-mini", messages=MSGS)
    return (time.process_time() - t) / n * 1e6


def achat_loop(n: int) -> float:
    async def run() -> float:
        client = aipk.AsyncClient("openai", base_url="http://127.0.0.1:1/v1", api_key="sk-b",
                                  transport=_AsyncChatTransport())
        await client.chat(model="gpt-4o-mini", messages=MSGS)
        t = time.process_time()
        for _ in range(n):
            await client.chat(model="gpt-4o-mini", messages=MSGS)
        return (time.process_time() - t) / n * 1e6

    return asyncio.run(run())


def engine_loop(n: int) -> float:
    client = aipk.Client("openai", base_url="http://127.0.0.1:1/v1", api_key="sk-bench",
                         transport=_Transport())
    engine = client._engine
    request = client._request(None, {"model": "gpt-4o-mini", "messages": MSGS})
    t = time.process_time()
    for _ in range(n):
        _http, _body = engine.sign(engine.prepare(request, False))
        state = engine.observe(200, HEADERS, "gpt-4o-mini")
        engine.chat_response(request, BODY, HEADERS, state)
    return (time.process_time() - t) / n * 1e6


def stream_loop(n: int, reads: bool = False) -> float:
    async def run() -> float:
        client = aipk.AsyncClient("openai", base_url="http://127.0.0.1:1/v1", api_key="sk-b",
                                  transport=_AsyncTransport(n, reads=reads))
        t = time.process_time()
        count = 0
        async for event in client.stream(model="gpt-4o-mini", messages=MSGS):
            if type(event) is aipk.TextDelta:
                count += 1
        assert count == n, count
        return (time.process_time() - t) / n * 1e6

    return asyncio.run(run())


def reads_loop(n: int) -> float:
    """µs per chunk of a long stream whose reads hold ``READ_EVENTS`` events each, through
    the client's direct chunk-reader loop (how the aiohttp transport streams)."""
    return stream_loop(n, reads=True)


def floor_reads_loop(n: int) -> float:
    """What the raw floors of ``bench/adapters.py`` do per chunk, on the reads of ``reads``:
    split on newlines, then their own ``_sse_text`` (``json.loads`` each ``data:`` line,
    collect the text)."""
    reads = [CHUNK * READ_EVENTS] * (n // READ_EVENTS) + [CHUNK * (n % READ_EVENTS) + STREAM_END]
    t = time.process_time()
    parts: list[str] = []
    buf = b""
    for read in reads:
        buf += read
        lines = buf.split(b"\n")
        buf = lines.pop()
        sse_text(lines, parts)
    assert len(parts) == n, len(parts)
    return (time.process_time() - t) / n * 1e6


def first_loop(n: int) -> float:
    """µs per short stream: open it, take its first text delta, read it to the end."""
    async def run() -> float:
        client = aipk.AsyncClient("openai", base_url="http://127.0.0.1:1/v1", api_key="sk-b",
                                  transport=_AsyncTransport(8, short=True))
        t = time.process_time()
        for _ in range(n):
            count = 0
            async for event in client.stream(model="gpt-4o-mini", messages=MSGS):
                if type(event) is aipk.TextDelta:
                    count += 1
            assert count == 8, count
        return (time.process_time() - t) / n * 1e6

    return asyncio.run(run())


def framing_loop(n: int) -> dict[str, float]:
    """Each framer on its chunk, plus the decoder's parse of the frame (``json.loads``, or
    ``aipk.framing.loads`` for the JSON array, whose framer has parsed the element already)."""
    from aipk import framing

    out = {}
    for name, chunk in FRAMED.items():
        framer = framing.make_framer(name)
        loads = framing.loads if name == "json-array" else json.loads
        if name == "json-array":
            framer.feed(b"[" + chunk[4:])  # the opening bracket and a first element
        feed = framer.feed
        t = time.process_time()
        for _ in range(n):
            for frame in feed(chunk):
                loads(frame.data)
        out[name] = (time.process_time() - t) / n * 1e6
    return out


def _parts() -> dict[str, Any]:
    """One step each of what ``achat`` does per request, alone (see `part_loop`)."""
    client = aipk.Client("openai", base_url="http://127.0.0.1:1/v1", api_key="sk-bench",
                         transport=_Transport())
    engine = client._engine
    request = client._request(None, {"model": "gpt-4o-mini", "messages": MSGS})
    prepared = engine.prepare(request, False)
    state = engine.observe(200, LIMITED_HEADERS, "gpt-4o-mini")
    credential = client._credentials.credential
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}

    def telemetry() -> None:
        engine.start_call(request, False).finished(credential.id, None, None, None)

    def pool() -> None:  # the answer's tokens are counted with the success
        client._credentials.report_success(credential, latency=0.001, tokens=18)

    return {
        # what the raw floors do per request: encode the body, decode the reply, take the text
        "floor": lambda: (json.dumps(body).encode(),
                          json.loads(BODY)["choices"][0]["message"]["content"]),
        "request": lambda: client._request(None, {"model": "gpt-4o-mini", "messages": MSGS}),
        "prepare": lambda: engine.prepare(request, False),
        "sign": lambda: engine.sign(prepared),  # the credential's header and the JSON encoding
        "admission": lambda: engine.admission_delay("gpt-4o-mini", b"x" * 100, None, None),
        "rate-limits": lambda: engine.observe(200, LIMITED_HEADERS, "gpt-4o-mini"),
        "parse": lambda: engine.chat_response(request, BODY, HEADERS, state),
        "telemetry": telemetry,
        "key-pool": pool,
    }


#: the steps ``part_loop`` times, in the order a request takes them
PARTS = ("floor", "request", "prepare", "sign", "admission", "rate-limits", "parse",
         "telemetry", "key-pool")


def part_loop(name: str, n: int) -> float:
    """µs per call of one part of the per-request work (``part-<name>``, e.g.
    ``bash bench/instructions.sh part-rate-limits``): ``request`` builds the ChatRequest from
    keywords, ``prepare`` the unsigned HTTP request, ``sign`` adds the key and encodes the
    body, ``admission`` asks whether to wait, ``rate-limits`` reads OpenAI's six headers into
    the tracker, ``parse`` decodes and parses the reply, ``telemetry`` starts and finishes a
    call's record, ``key-pool`` reports the attempt and its tokens; ``floor`` is what the raw
    floors do per request."""
    step = _parts()[name]
    step()
    t = time.process_time()
    for _ in range(n):
        step()
    return (time.process_time() - t) / n * 1e6


LOOPS = {"chat": chat_loop, "achat": achat_loop, "engine": engine_loop, "stream": stream_loop,
         "reads": reads_loop, "floor-reads": floor_reads_loop, "first": first_loop,
         **{f"part-{name}": functools.partial(part_loop, name) for name in PARTS}}


def install_exporters(names: str) -> None:
    """Install the exporters named in ``names`` (comma-separated) on the default registry."""
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    if "prometheus" in wanted:
        import aipk_prometheus

        aipk_prometheus.install()
    if "otel-api" in wanted:  # OpenTelemetry's API alone: no SDK, no-op providers
        import aipk_otel

        aipk_otel.instrument()
    if "otel" in wanted:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider

        import aipk_otel

        aipk_otel.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider())


def main() -> None:
    install_exporters(os.environ.get("AIPK_BENCH_EXPORTER", ""))
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", choices=list(LOOPS))
    parser.add_argument("--only", choices=list(LOOPS), help="run one loop once (for callgrind)")
    args = parser.parse_args()
    if args.only:
        LOOPS[args.only](args.n)
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(LOOPS[args.profile], args.n)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    for name, loop in LOOPS.items():
        if name.startswith("part-"):  # one at a time: --only part-… (or instructions.sh)
            continue
        samples = [loop(args.n) for _ in range(args.repeat)]
        print(f"{name:7s} {statistics.median(samples):7.2f} µs  (min {min(samples):.2f})")
    framed = [framing_loop(args.n) for _ in range(args.repeat)]
    for name in FRAMED:
        samples = [run[name] for run in framed]
        print(f"framing {name:10s} {statistics.median(samples):5.2f} µs/chunk  "
              f"(min {min(samples):.2f})")


if __name__ == "__main__":
    main()

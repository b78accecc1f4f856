"""A chaos run: many requests through one aipk client over a key pool, against a server of its
own that injects faults, and what the server saw.

    python bench/chaos.py [--requests 10000] [--concurrency 50] [--transport httpx|aiohttp]
                          [--fault-rate 0.3] [--stream-fraction 0] [--seed 1]

The server here is independent of the testkit emulator: a small HTTP/1.1 server (its own
process) speaking OpenAI's chat completions, JSON and SSE. Keys ``k1`` and ``k2`` are valid,
``k3`` is rejected with a 401 every time. Of the requests to a valid key, ``--fault-rate`` get
one fault drawn evenly from: 429 with ``retry-after`` (1 s), 429 with ``retry-after-ms``
(150 ms), 500, 529, a connection reset before the head, a body cut after the head (a stream:
cut after its first event), a truncated JSON body, and a slow first byte (0.3 s).

The server counts, per key, the requests that arrived inside a wait it had given that key
(a 429's retry-after) more than ``--grace`` seconds after giving it (earlier ones were already
in flight), and the requests that reached ``k3`` after its first 401. The client side counts
successes and failures by error class. Nothing here is a test: it prints figures, for
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import multiprocessing
import random
import socket
import sys
import time
from typing import Any

FAULTS = ("429s", "429ms", "500", "529", "reset", "cut", "truncated", "slow")
VALID = ("k1", "k2")
INVALID = "k3"


# -- the server -----------------------------------------------------------------------------

class Chaos:
    def __init__(self, fault_rate: float, grace: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.grace = grace
        self.deadline: dict[str, float] = {}   # key -> end of the latest wait given
        self.given_at: dict[str, float] = {}   # key -> when that wait was given
        self.arrivals: collections.Counter[str] = collections.Counter()
        self.violations: collections.Counter[str] = collections.Counter()
        self.in_flight_inside: collections.Counter[str] = collections.Counter()
        self.after_parked = 0
        self.rejected_once = False
        self.faults: collections.Counter[str] = collections.Counter()

    def stats(self) -> dict[str, Any]:
        return {"arrivals": dict(self.arrivals), "violations": dict(self.violations),
                "in_flight_inside": dict(self.in_flight_inside),
                "after_parked": self.after_parked, "faults": dict(self.faults)}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ", 2)[1]
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                if path == "/stats":
                    await self._send(writer, 200, json.dumps(self.stats()).encode())
                    continue
                if not await self._chat(writer, headers, body):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                    extra: dict[str, str] | None = None,
                    ctype: str = "application/json") -> None:
        head = [f"HTTP/1.1 {status} X", f"content-type: {ctype}",
                f"content-length: {len(body)}", f"x-request-id: req-{time.monotonic_ns()}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _chat(self, writer: asyncio.StreamWriter, headers: dict[str, str],
                    body: bytes) -> bool:
        """Answer one chat request; False when the connection is to be dropped."""
        now = time.monotonic()
        key = headers.get("authorization", "").removeprefix("Bearer ")
        self.arrivals[key] += 1
        if key == INVALID:
            if self.rejected_once:
                self.after_parked += 1
            self.rejected_once = True
            error = {"error": {"message": "Incorrect API key provided.",
                               "type": "invalid_request_error", "code": "invalid_api_key"}}
            await self._send(writer, 401, json.dumps(error).encode())
            return True
        if now < self.deadline.get(key, 0.0):
            if now - self.given_at[key] > self.grace:
                self.violations[key] += 1
            else:
                self.in_flight_inside[key] += 1
        stream = json.loads(body or b"{}").get("stream", False)
        fault = self.rng.choice(FAULTS) if self.rng.random() < self.fault_rate else None
        if fault:
            self.faults[fault] += 1
        if fault in ("429s", "429ms"):
            wait = 1.0 if fault == "429s" else 0.15
            header = ({"retry-after": "1"} if fault == "429s"
                      else {"retry-after-ms": "150"})
            self.deadline[key] = max(self.deadline.get(key, 0.0), now + wait)
            self.given_at[key] = now
            error = {"error": {"message": "Rate limit reached", "type": "requests",
                               "code": "rate_limit_exceeded"}}
            await self._send(writer, 429, json.dumps(error).encode(), header)
            return True
        if fault in ("500", "529"):
            error = {"error": {"message": "server trouble", "type": "server_error"}}
            await self._send(writer, int(fault), json.dumps(error).encode())
            return True
        if fault == "reset":
            _reset(writer)
            return False
        if fault == "slow":
            await asyncio.sleep(0.3)
        if stream:
            return await self._stream(writer, cut=fault in ("cut", "truncated"))
        answer = json.dumps(_completion()).encode()
        if fault in ("cut", "truncated"):
            head = [b"HTTP/1.1 200 OK", b"content-type: application/json",
                    b"content-length: %d" % len(answer)]
            writer.write(b"\r\n".join(head) + b"\r\n\r\n" + answer[: len(answer) // 2])
            await writer.drain()
            if fault == "cut":
                _reset(writer)
            else:
                writer.close()
            return False
        await self._send(writer, 200, answer)
        return True

    async def _stream(self, writer: asyncio.StreamWriter, *, cut: bool) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        events = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hello"}),
                  _chunk({"content": " there"}), _chunk({}, "stop"),
                  {"id": "c", "object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}]
        lines = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
        lines.append(b"data: [DONE]\n\n")
        for i, line in enumerate(lines):
            writer.write(b"%x\r\n%s\r\n" % (len(line), line))
            await writer.drain()
            if cut and i == 1:
                _reset(writer)
                return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


def _completion() -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _serve(port_out: Any, fault_rate: float, grace: float, seed: int) -> None:
    async def main() -> None:
        chaos = Chaos(fault_rate, grace, seed)
        server = await asyncio.start_server(chaos.handle, "127.0.0.1", 0, backlog=512)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# -- the client -----------------------------------------------------------------------------

async def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import aipk

    logging.getLogger("aipk").setLevel(logging.ERROR)  # the figures say what happened
    transport = None
    if args.transport == "aiohttp":
        from aipk.transports import AiohttpTransport
        transport = AiohttpTransport()
    outcomes: collections.Counter[str] = collections.Counter()
    rng = random.Random(args.seed + 1)
    async with aipk.AsyncClient("openai", base_url=url, api_key=[*VALID, INVALID],
                                transport=transport, timeout=5.0) as client:
        queue = iter(range(args.requests))

        async def worker() -> None:
            for _ in queue:
                stream = rng.random() < args.stream_fraction
                messages = [aipk.Message.user("hi")]
                try:
                    if stream:
                        async with client.stream(model="gpt-4o-mini", messages=messages) as s:
                            text = "".join([t async for t in s.text()])
                    else:
                        text = (await client.chat(model="gpt-4o-mini", messages=messages)).text
                    outcomes["ok" if text == "Hello there" else "wrong text"] += 1
                except aipk.AipkError as error:
                    outcomes[type(error).__name__] += 1
                except Exception as error:  # what the run exists to find
                    outcomes[f"untyped {type(error).__name__}"] += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - started
        totals = client.metrics().totals
    if transport is not None:
        await transport.close()  # a client never closes a transport it was given
    metrics = {name: getattr(totals, name) for name in
               ("requests", "successes", "failures", "retries", "failovers")}
    return {"outcomes": dict(outcomes), "seconds": round(elapsed, 1), "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--transport", choices=("httpx", "aiohttp"), default="httpx")
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--stream-fraction", type=float, default=0.0)
    parser.add_argument("--grace", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, daemon=True,
                                     args=(send, args.fault_rate, args.grace, args.seed))
    server.start()
    port = receive.recv()
    url = f"http://127.0.0.1:{port}/v1"
    try:
        client_side = asyncio.run(_run(url, args))
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as answer:
            server_side = json.load(answer)
    finally:
        server.terminate()
        server.join()
    outcomes = client_side["outcomes"]
    ok = outcomes.get("ok", 0)
    print(f"transport={args.transport} requests={args.requests} "
          f"concurrency={args.concurrency} fault_rate={args.fault_rate} "
          f"stream_fraction={args.stream_fraction} seconds={client_side['seconds']}")
    print(f"success rate: {ok / args.requests:.4%} ({ok} of {args.requests})")
    failures = {k: v for k, v in sorted(outcomes.items()) if k != "ok"}
    print(f"failures by class: {failures or 'none'}")
    print(f"faults injected: {server_side['faults']}")
    print(f"arrivals per key: {server_side['arrivals']}")
    print(f"retry-after violations (arrived > {args.grace} s into a wait): "
          f"{sum(server_side['violations'].values())} {server_side['violations']}")
    print(f"arrived inside a wait within {args.grace} s of it (in flight): "
          f"{sum(server_side['in_flight_inside'].values())}")
    print(f"requests to the invalid key after its first 401: {server_side['after_parked']}")
    print(f"client metrics: {client_side['metrics']}")
    sys.exit(0)


if __name__ == "__main__":
    main()

"""Per-request cost of sharing state through Redis: the same async requests at concurrency 50
over the aiohttp transport against the emulator, with the in-memory store and with
``aipk_redis.RedisStore``.

    python bench/redis_store.py [--requests 4000] [--rounds 4]

Every response carries rate-limit headers (``--no-headers`` turns them off), so the
rate-limit state is tracked too. Starts an emulator process and a ``redis-server`` (both on
loopback, pinned to CPU 0 when the machine has two CPUs; this process runs on CPU 1). Both
clients book the same client-side limit on every request (a budget far above what the run
uses), so the difference is where the buckets and the rate-limit state live. Rounds alternate
between the stores; medians of wall and CPU µs per request are printed with the Redis/memory
ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

CONCURRENCY = 50


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(headers: bool) -> tuple[subprocess.Popen[str], str]:
    extra = ["--rate-limit", str(10**8)] if headers else []
    proc = subprocess.Popen([sys.executable, "-m", "aipk_testkit.emulator", "--port", "0",
                             *extra],
                            stdout=subprocess.PIPE, text=True, preexec_fn=lambda: _pin(0))
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line.split()[1] + "/v1"


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            preexec_fn=lambda: _pin(0))
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


async def run(store: Any, base_url: str, n: int) -> tuple[float, float]:
    """Wall and CPU µs per request for ``n`` requests over 50 concurrent lanes."""
    import aipk
    from aipk.limits import ClientLimits
    from aipk.transports import AiohttpTransport

    client = aipk.AsyncClient("openai", base_url=base_url, api_key="sk-bench",
                              transport=AiohttpTransport(), store=store,
                              limits=ClientLimits(requests_per_minute=10**9))
    messages = [aipk.Message.user("Say hello")]

    async def lane(count: int) -> None:
        for _ in range(count):
            await client.chat(model="gpt-4o-mini", messages=messages)

    await asyncio.gather(*(lane(2) for _ in range(CONCURRENCY)))  # warm up connections
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane(n // CONCURRENCY) for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    done = n // CONCURRENCY * CONCURRENCY
    return wall / done * 1e6, cpu / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--no-headers", action="store_true",
                        help="the emulator sends no rate-limit headers (nothing to track)")
    args = parser.parse_args()

    from aipk.state import MemoryStore
    from aipk_redis import RedisStore

    emulator, base_url = start_emulator(not args.no_headers)
    redis_proc, redis_url = start_redis()
    _pin(1)
    results: dict[str, list[tuple[float, float]]] = {"memory": [], "redis": []}
    try:
        for round_ in range(args.rounds):
            order = ["memory", "redis"] if round_ % 2 == 0 else ["redis", "memory"]
            for name in order:
                store = (MemoryStore() if name == "memory"
                         else RedisStore.from_url(redis_url, namespace=f"bench{round_}"))
                results[name].append(asyncio.run(run(store, base_url, args.requests)))
    finally:
        emulator.terminate()
        redis_proc.terminate()
    print(f"{args.requests} requests x {args.rounds} rounds, concurrency {CONCURRENCY}, "
          f"aiohttp transport, emulator {'without' if args.no_headers else 'with'} "
          f"rate-limit headers")
    medians = {}
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        medians[name] = (wall, cpu)
        print(f"  {name:7s} wall {wall:7.1f} µs/request   cpu {cpu:7.1f} µs/request")
    print(f"  redis/memory: wall {medians['redis'][0] / medians['memory'][0]:.2f}x, "
          f"cpu {medians['redis'][1] / medians['memory'][1]:.2f}x")


if __name__ == "__main__":
    main()

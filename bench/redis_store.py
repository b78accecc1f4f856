"""Per-request cost of sharing state through Redis: the same async requests at concurrency 50
over the aiohttp transport against the emulator, with the in-memory store and with
``aipk_redis.RedisStore``.

    python bench/redis_store.py [--requests 4000] [--rounds 4]

Every response carries rate-limit headers (``--no-headers`` turns them off), so the
rate-limit state is tracked too. Starts an emulator process and a ``redis-server`` (both on
loopback; when the machine has two CPUs the emulator is pinned to CPU 0, Redis and this process
to CPU 1: the emulator keeps its CPU busy, and a Redis queued behind it would measure the
scheduler). Both
clients book the same client-side limit on every request (a budget far above what the run
uses), so the difference is where the limits and the rate-limit state live. Rounds alternate
between the stores; medians of wall and CPU µs per request are printed with the Redis/memory
ratio, and for the Redis rounds the round trips to Redis per request (writes on a connection,
counted in this process: a batch is one) and the commands Redis ran per request (from
``INFO commandstats``).
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
                            preexec_fn=lambda: _pin(1))
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


ROUND_TRIPS = [0]


def count_round_trips() -> None:
    """Count every write to a Redis connection (sync or asyncio) in this process."""
    import redis.asyncio.connection
    import redis.connection

    for cls in (redis.connection.AbstractConnection,
                redis.asyncio.connection.AbstractConnection):
        original = cls.send_packed_command

        if asyncio.iscoroutinefunction(original):
            async def counted_async(self: Any, *args: Any, _original: Any = original,
                                    **kwargs: Any) -> Any:
                ROUND_TRIPS[0] += 1
                return await _original(self, *args, **kwargs)
            cls.send_packed_command = counted_async  # type: ignore[method-assign]
        else:
            def counted(self: Any, *args: Any, _original: Any = original,
                        **kwargs: Any) -> Any:
                ROUND_TRIPS[0] += 1
                return _original(self, *args, **kwargs)
            cls.send_packed_command = counted  # type: ignore[method-assign]


def command_counts(url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def run(store: Any, base_url: str, n: int,
              redis_url: str | None = None) -> tuple[float, float, dict[str, int]]:
    """Wall and CPU µs per request for ``n`` requests over 50 concurrent lanes, and the
    commands Redis ran meanwhile (with ``redis_url``; the warm-up excluded)."""
    import aipk
    from aipk.limits import ClientLimits
    from aipk.transports import AiohttpTransport

    transport = AiohttpTransport()
    client = aipk.AsyncClient("openai", base_url=base_url, api_key="sk-bench",
                              transport=transport, store=store,
                              limits=ClientLimits(requests_per_minute=10**9))
    messages = [aipk.Message.user("Say hello")]

    async def lane(count: int) -> None:
        for _ in range(count):
            await client.chat(model="gpt-4o-mini", messages=messages)

    await asyncio.gather(*(lane(2) for _ in range(CONCURRENCY)))  # warm up connections
    if hasattr(store, "flush"):
        store.flush()
    before = command_counts(redis_url) if redis_url else {}
    ROUND_TRIPS[0] = 0
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane(n // CONCURRENCY) for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if hasattr(store, "flush"):
        store.flush()  # what was written behind belongs to these requests
    trips = ROUND_TRIPS[0]
    after = command_counts(redis_url) if redis_url else {}
    await client.close()
    await transport.close()
    ROUND_TRIPS[0] = trips
    done = n // CONCURRENCY * CONCURRENCY
    commands = {c: calls - before.get(c, 0) for c, calls in after.items() if c != "info"}
    return wall / done * 1e6, cpu / done * 1e6, commands


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
    count_round_trips()
    results: dict[str, list[tuple[float, float]]] = {"memory": [], "redis": []}
    trips: list[float] = []
    commands: dict[str, float] = {}
    try:
        for round_ in range(args.rounds):
            order = ["memory", "redis"] if round_ % 2 == 0 else ["redis", "memory"]
            for name in order:
                store: Any = (MemoryStore() if name == "memory"
                              else RedisStore.from_url(redis_url, namespace=f"bench{round_}"))
                wall, cpu, counts = asyncio.run(run(
                    store, base_url, args.requests, redis_url if name == "redis" else None))
                results[name].append((wall, cpu))
                if name == "redis":
                    store.close()
                    done = args.requests // CONCURRENCY * CONCURRENCY
                    trips.append(ROUND_TRIPS[0] / done)
                    for command, calls in counts.items():
                        commands[command] = (commands.get(command, 0.0)
                                             + calls / done / args.rounds)
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
    print(f"  per request: {statistics.median(trips):.3f} round trips to Redis, commands "
          + ", ".join(f"{c} {v:.3f}" for c, v in sorted(commands.items()) if v >= 0.0005))


if __name__ == "__main__":
    main()

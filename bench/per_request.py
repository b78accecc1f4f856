"""Per-request or per-chunk time against the floors, measured to within a few percent on a
noisy machine.

    python bench/per_request.py [--rounds 8] [--requests 3000] [--only aiohttp-raw,aipk-aiohttp]
                                [--concurrency 50] [--stream 20000]

``bench/run.py`` measures everything once per round; on this shared VM one 5-round run of its
per-request column can read anywhere within ±10%, and its stream row more. This script measures
one thing, many times: each round runs every client in a fresh worker process (pinned to
CPU 1, the emulator to CPU 0), in rotating order, and it reports the medians with each client's
ratio to the floor of its own transport. Alternating clients round by round lets the machine's
slow and fast minutes fall on all of them alike.

By default that thing is async requests, sequential (or ``--concurrency N`` in flight at once,
as ``bench/run.py``'s c=50 row): ``--requests`` of them after a warm-up, as wall time and CPU
time per request. With ``--stream N`` it is one stream of N chunks (the emulator started with
``--stream-chunks N``, as ``bench/run.py``'s stream row, whose N is 20,000), read after one
warm-up stream of the same length on the same client: chunks per second, and wall and CPU µs
per chunk. Every stream's text is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from adapters import ADAPTERS, FLOOR  # noqa: E402
from run import (  # noqa: E402
    _pin,
    available,
    compile_bytecode,
    expected_reply,
    rotate_workers,
    start_emulator,
)

DEFAULT = "httpx-raw,aiohttp-raw,aipk-httpx,aipk-aiohttp"


async def _measure(name: str, url: str, requests: int, concurrency: int = 1) -> (
        dict[str, float]):
    client = ADAPTERS[name](url)
    await client.setup()

    async def lane(count: int) -> None:
        for _ in range(count):
            await client.achat()

    await asyncio.gather(*(lane(100 // concurrency or 1) for _ in range(concurrency)))
    requests -= requests % concurrency  # every lane makes as many
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane(requests // concurrency) for _ in range(concurrency)))
    out = {"wall_us": (time.perf_counter() - wall) / requests * 1e6,
           "cpu_us": (time.process_time() - cpu) / requests * 1e6}
    await client.aclose()
    return out


async def _measure_stream(name: str, url: str, chunks: int, length: int) -> dict[str, float]:
    client = ADAPTERS[name](url)
    await client.setup()
    text, _ = await client.astream()  # warm-up: the code, the connection
    assert len(text) == length, (name, len(text), length)
    wall, cpu = time.perf_counter(), time.process_time()
    text, got = await client.astream()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(text) == length and got == chunks, (name, len(text), length, got, chunks)
    await client.aclose()
    return {"chunks_per_s": chunks / wall, "wall_us": wall / chunks * 1e6,
            "cpu_us": cpu / chunks * 1e6}


def _table(names: list[str], samples: dict[str, list[dict[str, Any]]], stream: bool) -> str:
    keys = ("chunks_per_s", "wall_us", "cpu_us") if stream else ("wall_us", "cpu_us")
    medians = {n: {k: statistics.median(s[k] for s in samples[n]) for k in keys}
               for n in names}
    if stream:
        rows = ["| client | chunks/s | throughput vs floor | µs per chunk | CPU µs per chunk | "
                "CPU vs floor |", "|---|---|---|---|---|---|"]
    else:
        rows = ["| client | µs per request | time vs floor | throughput vs floor | CPU µs per "
                "request |", "|---|---|---|---|---|"]
    for name in names:
        wall, cpu = medians[name]["wall_us"], medians[name]["cpu_us"]
        floor = medians.get(FLOOR[name]) if FLOOR[name] != name else None
        if stream:
            ratios = (f"{floor['wall_us'] / wall:.2f}×", f"{cpu / floor['cpu_us']:.2f}×") if (
                floor) else ("—", "—")
            rows.append(f"| {ADAPTERS[name].name} | {medians[name]['chunks_per_s']:,.0f} | "
                        f"{ratios[0]} | {wall:.2f} | {cpu:.2f} | {ratios[1]} |")
        else:
            ratio = (f"{wall / floor['wall_us']:.2f}× | {floor['wall_us'] / wall:.2f}×"
                     if floor else "— | —")
            rows.append(f"| {ADAPTERS[name].name} | {wall:,.0f} | {ratio} | {cpu:,.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--only", default=DEFAULT)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests in flight at once (bench/run.py's c=50 row: 50)")
    parser.add_argument("--stream", type=int, default=0, metavar="N",
                        help="time one stream of N chunks instead (bench/run.py's: 20000)")
    parser.add_argument("--worker")
    parser.add_argument("--url")
    parser.add_argument("--stream-len", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        _pin(1)
        measured = (_measure_stream(args.worker, args.url, args.stream, args.stream_len)
                    if args.stream else
                    _measure(args.worker, args.url, args.requests, args.concurrency))
        print(json.dumps(asyncio.run(measured)))
        return
    compile_bytecode()
    names = available([n.strip() for n in args.only.split(",") if n.strip()])
    proc, url = start_emulator(args.stream or 8)
    try:
        if args.stream:
            worker_args = ["--url", url, "--stream", str(args.stream),
                           "--stream-len", str(len(expected_reply(url)[0]))]
        else:
            worker_args = ["--url", url, "--requests", str(args.requests),
                           "--concurrency", str(args.concurrency)]
        samples = rotate_workers(__file__, names, args.rounds, worker_args)
    finally:
        proc.terminate()
    print(_table(names, samples, bool(args.stream)))


if __name__ == "__main__":
    main()

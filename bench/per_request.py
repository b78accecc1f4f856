"""Per-request time against the floors, measured to within a few percent on a noisy machine.

    python bench/per_request.py [--rounds 8] [--requests 3000] [--only aiohttp-raw,aipk-aiohttp]
                                [--concurrency 50]

``bench/run.py`` measures everything once per round; on this shared VM one 5-round run of its
per-request column can read anywhere within ±10%. This script measures only async requests,
sequential (or ``--concurrency N`` in flight at once, as ``bench/run.py``'s c=50 row), but many
times: each round runs every client in a fresh worker process (pinned to
CPU 1, the emulator to CPU 0), in rotating order, for ``--requests`` requests after a warm-up,
and reports the median wall time and CPU time per request with each client's ratio to the floor
of its own transport. Alternating clients round by round lets the machine's slow and fast
minutes fall on all of them alike.
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
from run import _pin, available, rotate_workers, start_emulator  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--only", default=DEFAULT)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests in flight at once (bench/run.py's c=50 row: 50)")
    parser.add_argument("--worker")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.worker:
        _pin(1)
        print(json.dumps(asyncio.run(_measure(args.worker, args.url, args.requests,
                                              args.concurrency))))
        return
    names = available([n.strip() for n in args.only.split(",") if n.strip()])
    proc, url = start_emulator(8)
    try:
        samples = rotate_workers(__file__, names, args.rounds,
                                 ["--url", url, "--requests", str(args.requests),
                                  "--concurrency", str(args.concurrency)])
    finally:
        proc.terminate()
    medians: dict[str, dict[str, Any]] = {
        n: {k: statistics.median(s[k] for s in samples[n]) for k in ("wall_us", "cpu_us")}
        for n in names}
    rows = ["| client | µs per request | time vs floor | throughput vs floor | CPU µs per "
            "request |", "|---|---|---|---|---|"]
    for name in names:
        wall, cpu = medians[name]["wall_us"], medians[name]["cpu_us"]
        floor = medians.get(FLOOR[name], {}).get("wall_us")
        ratio = (f"{wall / floor:.2f}× | {floor / wall:.2f}×" if floor and FLOOR[name] != name
                 else "— | —")
        rows.append(f"| {ADAPTERS[name].name} | {wall:,.0f} | {ratio} | {cpu:,.0f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""The first call alone, in many fresh processes: import, build the async client, one request.

    python bench/first_call.py [--runs 16] [--only aipk-aiohttp,aiohttp-raw]

Starts one emulator process pinned to CPU 0; each run is a fresh worker pinned to CPU 1 that
times ``setup()`` plus the first ``achat()`` of one adapter (as ``bench/run.py``'s first-call
column does), alternating the clients' order run by run. Prints the median wall and CPU
(user + system) milliseconds of each client and its ratio to its transport's floor. CPU time
moves less with the machine's load than wall time; instruction counts do not move at all
(``valgrind --tool=callgrind python bench/first_call.py --worker NAME --url URL`` against a
running emulator).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from adapters import ADAPTERS, FLOOR  # noqa: E402
from run import _bytecode_env, _pin, compile_bytecode, start_emulator  # noqa: E402


async def _first_call(name: str, url: str) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    adapter = ADAPTERS[name](url)
    await adapter.setup()
    text = await adapter.achat()
    wall = (time.perf_counter() - t) * 1000
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert text, name
    await adapter.aclose()
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return {"wall_ms": wall, "cpu_ms": cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--only", default="aipk-aiohttp,aiohttp-raw,aipk-httpx,httpx-raw")
    parser.add_argument("--worker")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.worker:
        _pin(1)
        print(json.dumps(asyncio.run(_first_call(args.worker, args.url))))
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    compile_bytecode()
    proc, url = start_emulator(8)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    try:
        for run in range(args.runs):
            for name in names if run % 2 == 0 else names[::-1]:
                done = subprocess.run([sys.executable, __file__, "--worker", name, "--url", url],
                                      capture_output=True, text=True, check=False,
                                      env=_bytecode_env())
                if done.returncode != 0:
                    raise SystemExit(f"worker {name} failed:\n{done.stderr}")
                samples[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        proc.terminate()
    medians = {name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
               for name, runs in samples.items()}
    for name, values in medians.items():
        floor = medians.get(FLOOR[name])
        cells = []
        for key in ("wall_ms", "cpu_ms"):
            text = f"{key[:-3]} {values[key]:.1f} ms"
            if floor and FLOOR[name] != name:
                text += f" ({values[key] / floor[key]:.2f}×)"
            cells.append(text)
        print(f"{ADAPTERS[name].name:28s} {cells[0]:24s} {cells[1]}")


if __name__ == "__main__":
    main()

"""Side-by-side benchmark: aipk against the raw httpx / aiohttp floors and peers, one run.

    python bench/run.py [--rounds 3] [--quick] [--only aipk-httpx,httpx-raw]

Starts two loopback emulator processes (a short reply; a 20,000-chunk stream) pinned to CPU 0,
runs every client in a fresh worker process pinned to CPU 1, rotating the order each round,
and prints medians with each client's ratio to the floor of its own transport. Every reply and
every stream's text is checked. Results also go to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from adapters import ADAPTERS, FLOOR  # noqa: E402

STREAM_CHUNKS = 20_000
#: Workers load aipk from bytecode, as an installed package does (pip compiles ``.pyc`` files
#: on install); an editable checkout run with PYTHONDONTWRITEBYTECODE=1 would recompile aipk's
#: sources in every worker and count that in its import and first-call columns.


def _bytecode_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_bytecode() -> None:
    """Compile aipk's sources (core, plugins, contrib) to ``__pycache__`` (git-ignored) once."""
    root = HERE.parent
    sources = [str(p) for p in [root / "core" / "src", *root.glob("plugins/*/src"),
                                *root.glob("contrib/*/src")] if p.is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *sources], env=_bytecode_env(),
                   check=True, stdout=subprocess.DEVNULL)


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        os.sched_setaffinity(0, {cpu})


def start_emulator(chunks: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aipk_testkit.emulator", "--port", "0", "--stream-chunks",
         str(chunks)],
        stdout=subprocess.PIPE, text=True, preexec_fn=lambda: _pin(0), env=_bytecode_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line.split()[1] + "/v1"


# -- worker -----------------------------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _worker(name: str, url: str, stream_url: str, n: int, expected: str,
                  expected_stream_len: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    short = ADAPTERS[name](url)
    streamer = ADAPTERS[name](stream_url)
    t = time.perf_counter()
    await short.setup()
    text = await short.achat()
    out["first_call_ms"] = (time.perf_counter() - t) * 1000
    assert text == expected, (name, text, expected)
    await streamer.setup()
    for _ in range(20):
        await short.achat()
    for _ in range(10):
        await short.first_delta_ms()
    out["ttft_ms"] = statistics.median([await short.first_delta_ms() for _ in range(n // 5)])
    rss_before = _rss_mb()
    t = time.perf_counter()
    text, chunks = await streamer.astream()
    ttlb = time.perf_counter() - t
    assert len(text) == expected_stream_len, (name, len(text), expected_stream_len)
    out["stream_chunks_per_s"] = chunks / ttlb
    out["stream_us_per_chunk"] = ttlb / chunks * 1e6
    out["stream_rss_growth_mb"] = _rss_mb() - rss_before
    out["peak_rss_mb"] = _rss_mb()
    t = time.perf_counter()
    for _ in range(n):
        await short.achat()
    out["seq_async_rps"] = n / (time.perf_counter() - t)

    async def lane(count: int) -> None:
        for _ in range(count):
            assert await short.achat() == expected

    await asyncio.gather(*(lane(1) for _ in range(50)))
    t = time.perf_counter()
    await asyncio.gather(*(lane(2 * n // 50) for _ in range(50)))
    out["c50_async_rps"] = 2 * n / (time.perf_counter() - t)
    if short.chat() is not None:
        for _ in range(20):
            short.chat()
        t = time.perf_counter()
        for _ in range(n):
            short.chat()
        out["seq_sync_rps"] = n / (time.perf_counter() - t)
    await short.aclose()
    await streamer.aclose()
    return out


def worker_main(args: argparse.Namespace) -> None:
    _pin(1)
    result = asyncio.run(_worker(args.worker, args.url, args.stream_url, args.requests,
                                 args.expected, args.stream_len))
    print(json.dumps(result))


# -- harness ----------------------------------------------------------------------------------


def rotate_workers(script: str, names: list[str], rounds: int,
                   args: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Run ``script --worker NAME *args`` for every client each round, rotating the order so
    the machine's slow and fast minutes fall on all of them; per client, the JSON each of its
    workers printed last."""
    samples: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            proc = subprocess.run([sys.executable, script, "--worker", name, *args],
                                  capture_output=True, text=True, check=False,
                                  env=_bytecode_env())
            if proc.returncode != 0:
                raise SystemExit(f"worker {name} failed:\n{proc.stderr}")
            samples[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    return samples


def import_ms(statement: str, runs: int) -> float:
    def once(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=_bytecode_env())
        return time.perf_counter() - t

    base = statistics.median(once("pass") for _ in range(runs))
    return max(statistics.median(once(statement) for _ in range(runs)) - base, 0.0) * 1000


def available(names: list[str]) -> list[str]:
    usable = []
    for name in names:
        statement = ADAPTERS[name].IMPORT
        if subprocess.run([sys.executable, "-c", statement], capture_output=True).returncode == 0:
            usable.append(name)
        else:
            print(f"skipping {name}: `{statement}` fails (not installed)")
    return usable


def expected_reply(url: str) -> tuple[str, int]:
    import httpx

    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
    reply = httpx.post(url + "/chat/completions", json=body).json()
    return reply["choices"][0]["message"]["content"], 0


METRICS = [
    ("import_ms", "import (ms)", False),
    ("first_call_ms", "first call (ms)", False),
    ("ttft_ms", "first text delta (ms)", False),
    ("seq_sync_rps", "seq sync (req/s)", True),
    ("seq_async_rps", "seq async (req/s)", True),
    ("c50_async_rps", "async c=50 (req/s)", True),
    ("stream_chunks_per_s", "stream (chunks/s)", True),
    ("stream_us_per_chunk", "µs/chunk", False),
    ("stream_rss_growth_mb", "stream RSS growth (MB)", False),
    ("peak_rss_mb", "peak RSS (MB)", False),
]


def table(results: dict[str, dict[str, float]]) -> str:
    head = "| client | " + " | ".join(label for _, label, _ in METRICS) + " |"
    rows = [head, "|" + "---|" * (len(METRICS) + 1)]
    for name, values in results.items():
        floor = results.get(FLOOR[name], {})
        cells = []
        for key, _, _higher_better in METRICS:
            value = values.get(key)
            if value is None:
                cells.append("—")
                continue
            text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
            base = floor.get(key)
            if FLOOR[name] != name and base and key not in ("stream_rss_growth_mb",):
                ratio = value / base
                text += f" ({ratio:.2f}×)"
            cells.append(text)
        rows.append(f"| {ADAPTERS[name].name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, fewer requests")
    parser.add_argument("--only", default=",".join(ADAPTERS))
    parser.add_argument("--worker")
    parser.add_argument("--url")
    parser.add_argument("--stream-url")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--expected")
    parser.add_argument("--stream-len", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    rounds = 1 if args.quick else args.rounds
    requests = 200 if args.quick else 1000
    compile_bytecode()
    names = available([n.strip() for n in args.only.split(",") if n.strip()])
    short_proc, url = start_emulator(8)
    stream_proc, stream_url = start_emulator(STREAM_CHUNKS)
    try:
        expected, _ = expected_reply(url)
        stream_len = len(expected_reply(stream_url)[0])
        samples = rotate_workers(__file__, names, rounds, [
            "--url", url, "--stream-url", stream_url, "--requests", str(requests),
            "--expected", expected, "--stream-len", str(stream_len)])
    finally:
        short_proc.terminate()
        stream_proc.terminate()
    results: dict[str, dict[str, float]] = {}
    for name in names:
        merged = {k: statistics.median(s[k] for s in samples[name]) for k in samples[name][0]}
        merged["import_ms"] = import_ms(ADAPTERS[name].IMPORT, 3 if args.quick else 7)
        results[name] = merged
    out = table(results)
    print(out)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(results, indent=2))
    (HERE / "results" / "latest.md").write_text(out + "\n")


if __name__ == "__main__":
    main()

"""Several processes against one Redis and one emulator: shared limits hold, and an expired
OAuth token is refreshed once (also when the process refreshing it is killed)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from aipk.credentials import OAuthCredential
from aipk_redis import RedisTokenStore
from aipk_testkit.emulator import Emulator
from aipk_testkit.emulator._oauth import oauth_server

WORKER = str(Path(__file__).with_name("worker.py"))


def _spawn(mode: str, args: dict[str, Any], count: int = 1) -> subprocess.Popen[str]:
    """``count`` worker processes (forked from one interpreter that imported aipk once)."""
    return subprocess.Popen([sys.executable, WORKER, mode, json.dumps(args), str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(proc: subprocess.Popen[str], timeout: float = 30) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# -- client-side limits ----------------------------------------------------------------------

def test_four_processes_share_the_per_key_limit(redis_server: Any, namespace: str,
                                                aipk_emulator: Emulator) -> None:
    """4 processes x 2 keys, 60 requests/minute per key, each process trying 3x its share:
    no 60 s window holds more than 60 of a key's arrivals at the emulator, and every request
    is either served or refused with a RateLimitError that says when to retry."""
    keys = ["sk-key-one", "sk-key-two"]
    rpm, processes = 60, 4
    attempts = 3 * (rpm // processes) * len(keys)  # three times the share, over both keys
    aipk_emulator.requests.clear()
    args = {"redis": redis_server.url, "namespace": namespace,
            "base_url": aipk_emulator.url("openai"), "keys": keys, "rpm": rpm,
            "attempts": attempts, "parties": processes, "max_wait": 0.5}
    started = time.time()
    results = _results(_spawn("limits", args, processes))
    assert len({r["pid"] for r in results}) == processes
    elapsed = time.time() - started

    outcomes = [o for r in results for o in r["outcomes"]]
    assert len(outcomes) == processes * attempts
    assert {kind for _, kind, _ in outcomes} <= {"ok", "rate_limited"}
    refused = [wait for _, kind, wait in outcomes if kind == "rate_limited"]
    assert refused and all(wait is not None and wait > 0.5 for wait in refused)
    assert all(r["fallbacks"] == 0 for r in results)  # Redis served every check

    for index, key in enumerate(keys):
        arrivals = sorted(r.received_at for r in aipk_emulator.requests
                          if r.headers.get("authorization") == f"Bearer {key}")
        served = sum(1 for i, kind, _ in outcomes if i == index and kind == "ok")
        assert len(arrivals) == served
        assert served == rpm, (key, served)  # the whole minute's budget, and not one more
        for i in range(len(arrivals) - rpm):  # any rpm + 1 arrivals span at least a minute
            assert arrivals[i + rpm] - arrivals[i] >= 60.0
    assert elapsed < 25


# -- OAuth: one refresh per expiry -----------------------------------------------------------

def _expired_token(emulator: Emulator, url: str, namespace: str, **options: Any) -> str:
    handler = oauth_server(emulator)
    handler.reset()
    issued = handler.issue(expires_in=3600)
    store = RedisTokenStore.from_url(url, namespace=namespace, **options)
    store.save(OAuthCredential(id="acct", access_token=issued["access_token"],
                               refresh_token=issued["refresh_token"],
                               expires_at=time.time() - 60))
    store.client.close()
    return str(issued["access_token"])


def test_eight_processes_refresh_an_expired_token_once(redis_server: Any, namespace: str,
                                                       aipk_emulator: Emulator) -> None:
    key = RedisTokenStore.generate_key()
    old = _expired_token(aipk_emulator, redis_server.url, namespace, encryption_key=key)
    args = {"redis": redis_server.url, "namespace": namespace, "lease": 5.0, "parties": 8,
            "token_url": f"{aipk_emulator.base_url}/oauth/token", "key": key}
    results = _results(_spawn("oauth", args, 8))
    assert len({r["pid"] for r in results}) == 8
    tokens = {r["access"] for r in results}
    assert len(tokens) == 1 and old not in tokens
    assert oauth_server(aipk_emulator).grants["refresh_token"] == 1
    assert oauth_server(aipk_emulator).access_token_valid(tokens.pop())


def test_a_killed_lock_holder_costs_one_lease_and_one_more_refresh(
        redis_server: Any, namespace: str, aipk_emulator: Emulator, tmp_path: Path) -> None:
    lease = 1.0
    old = _expired_token(aipk_emulator, redis_server.url, namespace)
    base = {"redis": redis_server.url, "namespace": namespace, "lease": lease, "parties": 7,
            "token_url": f"{aipk_emulator.base_url}/oauth/token"}
    marker = tmp_path / "holder"
    holder = _spawn("oauth", {**base, "hang_marker": str(marker)})
    try:
        deadline = time.monotonic() + 20
        while not (marker.exists() and marker.read_text()):
            assert holder.poll() is None, holder.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the lock holder never started refreshing"
            time.sleep(0.01)
        others = _spawn("oauth", base, 7)
        probe = redis.Redis.from_url(redis_server.url)
        while int(probe.get(f"{namespace}:barrier") or 0) < 7:  # all 7 about to ask
            assert others.poll() is None, others.communicate()[1][-2000:]
            time.sleep(0.01)
        time.sleep(0.2)  # let them queue on the lock, then kill the holder mid-refresh
        lock = f"aipk:{namespace}:oauth:lock:acct"
        left = probe.pttl(lock) / 1000.0
        os.kill(int(marker.read_text()), signal.SIGKILL)  # the forked worker holding it
        killed_at = time.monotonic()
        assert left > 0  # the holder held the lock when it died
        results = _results(others)
        finished = time.monotonic() - killed_at
        probe.close()
    finally:
        if marker.exists() and marker.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(marker.read_text()), signal.SIGKILL)
        holder.communicate(timeout=10)
    tokens = {r["access"] for r in results}
    assert len(tokens) == 1 and old not in tokens
    assert oauth_server(aipk_emulator).grants["refresh_token"] == 1  # the holder never sent
    assert len(results) == 7
    assert left - 0.1 <= finished < lease + 3  # they waited out the lease, and no longer

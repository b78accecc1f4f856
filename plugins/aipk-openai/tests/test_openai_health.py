"""The health checkers and ``aipk health`` over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import aipk
import aipk_openai.plugin
from aipk import Message, Router, Target
from aipk._base import key_fingerprint
from aipk.cli import main
from aipk.errors import AllTargetsFailedError, ConfigurationError
from aipk.health import AsyncHealthChecker, HealthChecker, TargetHealth
from aipk.registry import Registry, isolated_registry
from aipk_testkit.emulator import Emulator


@pytest.fixture
def registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register(aipk_openai.plugin, "openai")
    return reg


def _client(emu: Emulator, registry: Registry, **kw: Any) -> aipk.Client:
    kw.setdefault("api_key", "sk-good")
    return aipk.Client("openai", base_url=emu.url("openai"), registry=registry,
                       max_retries=0, **kw)


def _model_listings(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.path.endswith("/models"))


def test_states_callbacks_and_the_router_skipping_an_unhealthy_target(
        aipk_emulator: Emulator, registry: Registry) -> None:
    aipk_emulator.require_api_key("sk-good")
    aipk_emulator.set_rate_limit(requests=100, tokens=100_000)
    changes: list[tuple[str, str]] = []
    with _client(aipk_emulator, registry) as client:
        router = Router([Target(provider="openai", model="gpt-4o-mini", client=client,
                                name="primary")], registry=registry)
        client.chat(model="gpt-4o-mini", messages=[Message.user("hi")])
        checker = HealthChecker({"primary": client}, interval=60.0, router=router,
                                headroom_model="gpt-4o-mini",
                                on_change=lambda old, new: changes.append((old.state,
                                                                           new.state)))
        (first,) = checker.check_once()
        assert first.state == "healthy" and first.latency is not None and first.latency > 0
        assert first.headroom == 0.98  # 98 of 100 requests left after the chat and the probe
        aipk_emulator.require_api_key("sk-rotated")  # the key stops working
        assert checker.check_once()[0].state == "degraded"
        (down,) = checker.check_once()
        assert down.state == "unhealthy" and down.consecutive_failures == 2
        assert down.error is not None and "sk-good" not in down.error
        requests = len(aipk_emulator.requests)
        with pytest.raises(AllTargetsFailedError):  # skipped: no request reaches the provider
            router.chat(messages=[Message.user("hi")])
        assert len(aipk_emulator.requests) == requests
        aipk_emulator.require_api_key("sk-good")
        assert checker.check_once()[0].state == "healthy"
    assert changes == [("unknown", "healthy"), ("healthy", "degraded"),
                       ("degraded", "unhealthy"), ("unhealthy", "healthy")]
    assert client.metrics().requests == 1  # the chat; probes stay out of the user's metrics


def test_probes_feed_a_key_pool(aipk_emulator: Emulator, registry: Registry) -> None:
    aipk_emulator.require_api_keys("sk-good")
    with _client(aipk_emulator, registry, api_key=["sk-bad", "sk-good"]) as client:
        checker = HealthChecker([client])
        for _ in range(2):
            assert checker.check_once()[0].state == "healthy"  # failed over to the good key
        health = client.credentials.health_all()  # type: ignore[attr-defined]
    assert health[key_fingerprint("sk-bad")].consecutive_failures >= 1
    assert not health[key_fingerprint("sk-bad")].available


def test_thread_starts_probes_and_stops_cleanly(aipk_emulator: Emulator,
                                                registry: Registry) -> None:
    before = set(threading.enumerate())
    with _client(aipk_emulator, registry) as client:
        with HealthChecker([client], interval=0.02, jitter=0.0) as checker:
            assert checker.running
            deadline = time.monotonic() + 5
            while _model_listings(aipk_emulator) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert not checker.running
        assert _model_listings(aipk_emulator) >= 3
        assert set(threading.enumerate()) == before  # no thread left behind
        assert checker.statuses()[0].state == "healthy"


def test_async_task_starts_and_stops_cleanly(aipk_emulator: Emulator,
                                             registry: Registry) -> None:
    seen: list[TargetHealth] = []

    async def run() -> None:
        async with aipk.AsyncClient("openai", api_key="sk-good", registry=registry,
                                    base_url=aipk_emulator.url("openai")) as client:
            checker = AsyncHealthChecker({"main": client}, interval=0.02, jitter=0.0)
            checker.add_callback(lambda old, new: seen.append(new))
            async with checker:
                assert checker.running
                while _model_listings(aipk_emulator) < 3:
                    await asyncio.sleep(0.01)
            assert not checker.running
            # no task left behind
            assert [t for t in asyncio.all_tasks() if t.get_name() == "aipk-health"] == []

    asyncio.run(asyncio.wait_for(run(), 10))
    assert [s.state for s in seen] == ["healthy"]


def test_settings_are_checked(registry: Registry, aipk_emulator: Emulator) -> None:
    with _client(aipk_emulator, registry) as client:
        with pytest.raises(ConfigurationError, match="interval"):
            HealthChecker([client], interval=0)
        with pytest.raises(ConfigurationError, match="at least one"):
            HealthChecker([])
        router = Router([Target(provider="openai", model="m", client=client, name="a")],
                        registry=registry)
        with pytest.raises(ConfigurationError, match="no target named 'b'"):
            router.cool_down("b", 1.0)


def test_health_command(aipk_emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_registry([aipk_openai.plugin]):
        assert main(["health", f"openai={aipk_emulator.url('openai')}"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["PROVIDER", "STATUS", "LATENCY", "HEADROOM", "ERROR"]
        assert table[1].split()[:2] == ["openai", "healthy"]
        aipk_emulator.require_api_key("sk-needed")
        code = main(["health", "openai", "nosuch", "--base-url", aipk_emulator.url("openai")])
        out = capsys.readouterr().out
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "unhealthy" in rows["openai"] and "HTTP 401" in rows["openai"]
    assert "unhealthy" in rows["nosuch"] and "UnknownProviderError" in rows["nosuch"]


def test_a_slow_probe_times_out_on_its_own_timeout(aipk_emulator: Emulator,
                                                   registry: Registry) -> None:
    aipk_emulator.delay_endpoint("models", 2.0)
    changes: list[tuple[str, str]] = []
    # the client would wait 600 s per read and retry twice; the probe waits 0.2 s, once
    with aipk.Client("openai", api_key="sk-good", base_url=aipk_emulator.url("openai"),
                     registry=registry, timeout=600, max_retries=2) as client:
        checker = HealthChecker({"main": client}, probe_timeout=0.2, unhealthy_threshold=1,
                                on_change=lambda old, new: changes.append((old.state,
                                                                           new.state)))
        start = time.monotonic()
        (status,) = checker.check_once()
        took = time.monotonic() - start
        assert status.state == "unhealthy" and "timed out" in (status.error or "")
        # the fix is the probe's own timeout, not the client's
        assert "raise probe_timeout= (now 0.2s)" in (status.error or "")
        assert "raise timeout=" not in (status.error or "")
        assert 0.2 <= took < 1.5
        assert _model_listings(aipk_emulator) == 1  # not retried
        aipk_emulator.delay_endpoint("models", None)
        (status,) = checker.check_once()
        assert status.state == "healthy"
        assert client.metrics().requests == 0  # probes are not counted as calls
    assert changes == [("unknown", "unhealthy"), ("unhealthy", "healthy")]


def test_an_async_slow_probe_times_out_on_its_own_timeout(aipk_emulator: Emulator,
                                                          registry: Registry) -> None:
    aipk_emulator.delay_endpoint("models", 2.0)

    async def run() -> tuple[TargetHealth, float]:
        async with aipk.AsyncClient("openai", api_key="sk-good", registry=registry,
                                    base_url=aipk_emulator.url("openai"), timeout=600) as client:
            checker = AsyncHealthChecker({"main": client}, probe_timeout=0.2,
                                         unhealthy_threshold=1)
            start = time.monotonic()
            (status,) = await checker.check_once()
            return status, time.monotonic() - start

    status, took = asyncio.run(asyncio.wait_for(run(), 10))
    assert status.state == "unhealthy" and 0.2 <= took < 1.5
    assert "raise probe_timeout= (now 0.2s)" in (status.error or "")
    assert "raise timeout=" not in (status.error or "")
    assert _model_listings(aipk_emulator) == 1


def test_probe_timeout_is_checked_and_defaults_to_ten_seconds(
        aipk_emulator: Emulator, registry: Registry) -> None:
    from aipk.health import PROBE_TIMEOUT

    with _client(aipk_emulator, registry) as client:
        with pytest.raises(ConfigurationError, match="probe_timeout="):
            HealthChecker([client], probe_timeout=0)
        assert PROBE_TIMEOUT == 10.0


def test_health_command_takes_a_timeout(aipk_emulator: Emulator,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    aipk_emulator.delay_endpoint("models", 2.0)
    with isolated_registry([aipk_openai.plugin]):
        start = time.monotonic()
        code = main(["health", f"openai={aipk_emulator.url('openai')}", "--timeout", "0.2"])
        took = time.monotonic() - start
    assert code == 1 and took < 1.5
    out = capsys.readouterr().out
    assert "unhealthy" in out and "raise aipk health --timeout (now 0.2s)" in out
    assert "raise timeout=" not in out and "probe_timeout=" not in out

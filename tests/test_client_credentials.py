"""Key pools and OAuth managers wired into Client and AsyncClient, over real HTTP.

The emulator accepts several keys (and the access tokens its own OAuth server issued), and can
fail every request that presents one particular key. Sleeps go to a fake clock, so backoff and
retry-after waits cost no time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

import aipk
from aipk.cli import main
from aipk.credentials import (
    CredentialError,
    FileTokenStore,
    KeyPool,
    KeysExhaustedError,
    OAuthClient,
    OAuthCredential,
    OAuthEndpoints,
    OAuthManager,
    SingleCredential,
)
from aipk_testkit.emulator import Emulator, Fault, Reply
from aipk_testkit.emulator._oauth import OAuthHandler, oauth_server

from .fake_clock import FakeClock

USER = [aipk.Message.user("hi")]
KEY_A, KEY_B, KEY_C = "sk-aaaa-1111", "sk-bbbb-2222", "sk-cccc-3333"


@pytest.fixture
def emu(aipk_emulator: Emulator) -> Emulator:
    oauth_server(aipk_emulator).reset()
    return aipk_emulator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def presented(emu: Emulator) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in emu.requests]


def pooled(emu: Emulator, clock: FakeClock, keys: list[str], **kwargs: object) -> aipk.Client:
    return aipk.Client("openai", base_url=emu.url("openai"), api_key=keys, clock=clock,
                       sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


# -- key pools -----------------------------------------------------------------------------


def test_a_list_of_keys_fails_over_within_the_call(emu: Emulator, clock: FakeClock) -> None:
    emu.require_api_keys(KEY_A, KEY_B)
    emu.fail_key(KEY_A, Fault.status(429, retry_after=30))
    with pooled(emu, clock, [KEY_A, KEY_B]) as client:
        pool = client.credentials
        assert isinstance(pool, KeyPool) and len(pool) == 2
        first = client.chat(model="m", messages=USER)
        assert first.text and presented(emu) == [KEY_A, KEY_B]
        assert clock.sleeps == []  # failover is immediate, not a retry
        assert client.metrics()["failovers"] == 1 and client.metrics()["retries"] == 0
        emu.requests.clear()
        client.chat(model="m", messages=USER)  # key A is in its 30 s backoff: skipped
        assert presented(emu) == [KEY_B]
        health = pool.health_all()
    [a, b] = pool.ids
    assert health[a].consecutive_failures == 1 and health[a].backoff_remaining == 30
    assert health[b].consecutive_failures == 0
    snapshot = pool.metrics.snapshot()
    assert snapshot[a].errors == 1 and snapshot[b].successes == 2
    assert snapshot[b].tokens > 0  # usage from the responses is counted per key


def test_a_comma_list_in_the_env_var_builds_a_pool(emu: Emulator, clock: FakeClock,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f"{KEY_A}, {KEY_B}")
    emu.require_api_keys(KEY_A, KEY_B)
    with aipk.Client("openai", base_url=emu.url("openai"), clock=clock) as client:
        assert isinstance(client.credentials, KeyPool)
        assert client.credentials.ids == ("OPENAI_API_KEY#1", "OPENAI_API_KEY#2")
        client.chat(model="m", messages=USER)
        client.chat(model="m", messages=USER)
    assert presented(emu) == [KEY_A, KEY_B]  # round robin
    assert KEY_A not in repr(client.credentials) and KEY_A not in repr(client)


def test_one_key_is_a_single_credential_that_never_locks_itself_out(
        emu: Emulator, clock: FakeClock) -> None:
    emu.enqueue(Fault.status(500), Fault.status(500), Fault.status(500), Reply(text="ok"))
    with aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY_A, clock=clock,
                     sleep=clock.sleep, max_retries=3) as client:
        assert isinstance(client.credentials, SingleCredential)
        assert client.chat(model="m", messages=USER).text == "ok"
    assert len(emu.requests) == 4 and len(clock.sleeps) == 3


def test_a_bad_request_does_not_count_against_the_key(emu: Emulator, clock: FakeClock) -> None:
    emu.enqueue(Fault.status(400, message="bad temperature"))
    with pooled(emu, clock, [KEY_A, KEY_B]) as client:
        with pytest.raises(aipk.BadRequestError):
            client.chat(model="m", messages=USER)
        health = client.credentials.health_all()  # type: ignore[attr-defined]
    assert len(emu.requests) == 1  # no failover for the caller's own mistake
    assert all(h.consecutive_failures == 0 and h.healthy for h in health.values())


def test_a_server_error_fails_over_then_retries(emu: Emulator, clock: FakeClock) -> None:
    emu.enqueue(Fault.status(503), Fault.status(503), Reply(text="third time"))
    with pooled(emu, clock, [KEY_A, KEY_B]) as client:
        assert client.chat(model="m", messages=USER).text == "third time"
        metrics = client.metrics()
    assert presented(emu)[:2] == [KEY_A, KEY_B]
    assert metrics["failovers"] == 1 and metrics["retries"] == 1
    assert len(clock.sleeps) >= 1  # both keys failed once: the retry policy (and backoff) wait


def test_when_every_key_fails_the_last_provider_error_is_raised(
        emu: Emulator, clock: FakeClock) -> None:
    for key in (KEY_A, KEY_B):
        emu.fail_key(key, Fault.status(429, retry_after=30))
    with pooled(emu, clock, [KEY_A, KEY_B], max_retries=0) as client:
        with pytest.raises(aipk.RateLimitError) as info:
            client.chat(model="m", messages=USER)
        assert info.value.retry_after == 30 and presented(emu) == [KEY_A, KEY_B]
        emu.requests.clear()
        # The next call finds both keys backing off for 30 s, within max_retry_after: it
        # waits for the earliest instead of failing, then tries again.
        emu.fail_key(KEY_B, None)
        assert client.chat(model="m", messages=USER).text
        assert clock.sleeps and 29 < clock.sleeps[0] <= 30
        assert presented(emu) == [KEY_B] or presented(emu)[-1] == KEY_B


def test_keys_exhausted_beyond_the_cap_fails_fast_and_says_when(
        emu: Emulator, clock: FakeClock) -> None:
    for key in (KEY_A, KEY_B):
        emu.fail_key(key, Fault.status(429, retry_after=50))
    policy = aipk.RetryPolicy(max_retries=0, max_retry_after=60)
    with pooled(emu, clock, [KEY_A, KEY_B], retry=policy) as client:
        with pytest.raises(aipk.RateLimitError):
            client.chat(model="m", messages=USER)
        emu.requests.clear()
        strict = aipk.RetryPolicy(max_retries=0, max_retry_after=5)
        with pytest.raises(KeysExhaustedError) as info:
            client.chat(model="m", messages=USER, retry=strict)
    assert emu.requests == [] and clock.sleeps == []
    assert info.value.retry_after is not None and 49 < info.value.retry_after <= 50
    assert "available again in" in str(info.value) and KEY_A not in str(info.value)


def test_keys_the_provider_said_to_wait_are_skipped_before_sending(
        emu: Emulator, clock: FakeClock) -> None:
    """Pre-emptive failover: key A's response said its requests are used up for a minute,
    so the next call that the pool would give to A goes to B without a 429 first."""
    spent = {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0",
             "x-ratelimit-reset-requests": "60s"}
    emu.enqueue(Reply(text="a", headers=spent))
    with pooled(emu, clock, [KEY_A, KEY_B]) as client:
        client.chat(model="m", messages=USER)  # A (round robin), reports 0 remaining
        client.chat(model="m", messages=USER)  # B
        client.chat(model="m", messages=USER)  # A's turn, but A must wait: B
        [a, _] = client.credentials.ids  # type: ignore[attr-defined]
        state = client.rate_limits("m", a)
    assert presented(emu) == [KEY_A, KEY_B, KEY_B]
    assert clock.sleeps == []
    assert state is not None and state.requests is not None
    assert state.requests.remaining == 0


def test_credentials_must_match_the_provider(emu: Emulator) -> None:
    pool = KeyPool.from_keys("anthropic", [KEY_A])
    with pytest.raises(aipk.ConfigurationError, match="provider='openai'"):
        aipk.Client("openai", base_url=emu.url("openai"), credentials=pool)
    with pytest.raises(aipk.ConfigurationError, match="not both"):
        aipk.Client("openai", base_url=emu.url("openai"), api_key=KEY_A,
                    credentials=KeyPool.from_keys("openai", [KEY_B]))


def test_async_pool_fails_over_and_streams(emu: Emulator, clock: FakeClock) -> None:
    asyncio.run(_async_pool_fails_over_and_streams(emu, clock))


async def _async_pool_fails_over_and_streams(emu: Emulator, clock: FakeClock) -> None:
    emu.require_api_keys(KEY_A, KEY_B, KEY_C)
    emu.fail_key(KEY_A, Fault.status(401))
    async with aipk.AsyncClient("openai", base_url=emu.url("openai"),
                                api_key=[KEY_A, KEY_B, KEY_C], clock=clock,
                                sleep=clock.asleep) as client:
        async with client.stream(model="m", messages=USER) as stream:
            text = "".join([t async for t in stream.text()])
        assert text
        pool = client.credentials
        [a, b, _] = pool.ids  # type: ignore[attr-defined]
        assert pool.health(a).last_error == "HTTP 401"  # type: ignore[attr-defined]
        assert pool.metrics.snapshot()[b].tokens > 0  # type: ignore[attr-defined]
    assert presented(emu) == [KEY_A, KEY_B]


# -- OAuth ---------------------------------------------------------------------------------


@pytest.fixture
def oauth(emu: Emulator) -> OAuthHandler:
    return oauth_server(emu)


def manager(emu: Emulator, oauth: OAuthHandler, *, expires_in: float = 3600,
            clock: FakeClock | None = None) -> tuple[OAuthManager, OAuthClient]:
    base = emu.base_url + "/oauth"
    client = OAuthClient(OAuthEndpoints(provider="openai", client_id="demo-cli",
                                        token_url=base + "/token"))
    issued = oauth.issue(expires_in=expires_in)
    credential = OAuthCredential(id="me", access_token=issued["access_token"],
                                 refresh_token=issued["refresh_token"],
                                 expires_at=time.time() + expires_in)
    return OAuthManager("openai", [credential], refresh=client.refresh,
                        arefresh=client.arefresh), client


def test_a_401_refreshes_once_and_retries_with_the_new_token(
        emu: Emulator, oauth: OAuthHandler) -> None:
    emu.require_api_keys(oauth=True)
    accounts, _ = manager(emu, oauth)
    with aipk.Client("openai", base_url=emu.url("openai"), credentials=accounts) as client:
        client.chat(model="m", messages=USER)
        oauth.expire_access_tokens()  # the server says no before our clock does
        assert client.chat(model="m", messages=USER).text
        metrics = client.metrics()
    chats = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    tokens = [r.headers["authorization"] for r in chats]
    assert len(chats) == 3 and tokens[0] == tokens[1] != tokens[2]
    assert accounts.metrics.snapshot()["me"].refreshes == 1
    assert metrics["retries"] == 0 and metrics["successes"] == 2


def test_a_token_near_expiry_is_refreshed_before_a_stream(
        emu: Emulator, oauth: OAuthHandler) -> None:
    emu.require_api_keys(oauth=True)
    accounts, _ = manager(emu, oauth, expires_in=60)  # inside the 5-minute refresh buffer
    old = accounts.get("me").access_token
    client = aipk.Client("openai", base_url=emu.url("openai"), credentials=accounts)
    with client, client.stream(model="m", messages=USER) as stream:
        assert "".join(stream.text())
    chats = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    assert len(chats) == 1  # no 401 first: the refresh happened before sending
    assert chats[0].headers["authorization"] != f"Bearer {old.reveal()}"
    assert accounts.metrics.snapshot()["me"].refreshes == 1


def test_a_revoked_refresh_token_raises_a_credential_error_naming_the_login(
        emu: Emulator, oauth: OAuthHandler) -> None:
    emu.require_api_keys(oauth=True)
    accounts, _ = manager(emu, oauth)
    secret = accounts.get("me").refresh_token
    assert secret is not None
    with aipk.Client("openai", base_url=emu.url("openai"), credentials=accounts) as client:
        oauth.revoke()
        with pytest.raises(CredentialError) as info:
            client.chat(model="m", messages=USER)
    assert "aipk login openai" in str(info.value)
    assert isinstance(info.value.__cause__, aipk.AuthenticationError)
    assert info.value.__cause__.status == 401
    assert secret.reveal() not in str(info.value)


def test_concurrent_async_calls_after_expiry_share_one_refresh(
        emu: Emulator, oauth: OAuthHandler) -> None:
    asyncio.run(_concurrent_calls_share_one_refresh(emu, oauth))


async def _concurrent_calls_share_one_refresh(emu: Emulator, oauth: OAuthHandler) -> None:
    emu.require_api_keys(oauth=True)
    accounts, _ = manager(emu, oauth)
    async with aipk.AsyncClient("openai", base_url=emu.url("openai"),
                                credentials=accounts) as client:
        await client.chat(model="m", messages=USER)
        oauth.expire_access_tokens()
        answers = await asyncio.gather(*(client.chat(model="m", messages=USER)
                                         for _ in range(20)))
    assert all(a.text for a in answers)
    assert accounts.metrics.snapshot()["me"].refreshes == 1
    assert accounts.metrics.snapshot()["me"].successes == 21


# -- what `aipk login` saved ---------------------------------------------------------------


def test_a_client_uses_and_refreshes_what_aipk_login_saved(
        emu: Emulator, oauth: OAuthHandler, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIPK_TOKEN_DIR", str(tmp_path))
    monkeypatch.delenv("QWEN_BASE_URL", raising=False)
    base_url = emu.url("openai")
    with pytest.raises(aipk.MissingCredentialError, match="run: aipk login qwen"):
        aipk.Client("qwen", base_url="https://portal.qwen.ai/v1")
    oauth.device_interval = 0.01  # the user approves at once; poll without waiting 5 s
    assert main(["login", "qwen", "--base-url", base_url, "--no-browser"]) == 0
    saved = FileTokenStore(tmp_path / "qwen.json").load("default")
    assert saved is not None
    emu.require_api_keys(oauth=True)
    with aipk.Client("qwen", base_url=base_url) as client:
        assert isinstance(client.credentials, OAuthManager)
        assert client.chat(model="qwen3-coder-plus", messages=USER).text
        oauth.expire_access_tokens()
        assert client.chat(model="qwen3-coder-plus", messages=USER).text
    refreshed = FileTokenStore(tmp_path / "qwen.json").load("default")
    assert refreshed is not None and refreshed.access_token != saved.access_token
    assert oauth.access_token_valid(refreshed.access_token.reveal())
    assert main(["chat", "qwen", "hello", "--base-url", base_url]) == 0
    out = capsys.readouterr().out
    assert saved.access_token.reveal() not in out
    assert refreshed.access_token.reveal() not in out


def signs_in_at_once(url: str) -> bool:
    """A user who signs in at once: follow the redirects to the loopback callback."""
    return httpx.get(url, follow_redirects=True, timeout=5).status_code == 200


def test_a_key_exchange_login_becomes_a_key_pool(
        emu: Emulator, oauth: OAuthHandler, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPK_TOKEN_DIR", str(tmp_path))
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    base_url = emu.url("openai")
    monkeypatch.setattr("webbrowser.open", signs_in_at_once)
    assert main(["login", "openrouter", "--base-url", base_url]) == 0
    saved = FileTokenStore(tmp_path / "openrouter.json").load("default")
    assert saved is not None
    emu.require_api_keys(saved.access_token.reveal())
    with aipk.Client("openrouter", base_url=base_url) as client:
        assert isinstance(client.credentials, KeyPool)
        assert client.chat(model="openai/gpt-4o-mini", messages=USER).text
    assert emu.requests[-1].headers["authorization"] == f"Bearer {saved.access_token.reveal()}"


# -- under load ----------------------------------------------------------------------------


def test_a_thousand_concurrent_calls_share_one_key_pool(aipk_emulator: Emulator) -> None:
    """1,000 concurrent calls through one AsyncClient over three keys, one of which always
    fails: every call is served by a healthy key, and the pool's per-key counts are exactly
    what the server saw."""
    from aipk.transports import AiohttpTransport

    emu, n = aipk_emulator, 1_000
    emu.require_api_keys(KEY_A, KEY_B, KEY_C)
    emu.fail_key(KEY_A, Fault.status(503))
    clock = FakeClock()

    async def scenario() -> tuple[list[object], dict[str, object], KeyPool]:
        transport = AiohttpTransport()
        async with aipk.AsyncClient("openai", base_url=emu.url("openai"),
                                    api_key=[KEY_A, KEY_B, KEY_C], clock=clock,
                                    sleep=clock.asleep, transport=transport) as client:
            results = await asyncio.gather(
                *(client.chat(model="m", messages=[aipk.Message.user(f"n{i}")])
                  for i in range(n)), return_exceptions=True)
            pool = client.credentials
            assert isinstance(pool, KeyPool)
        await transport.close()  # a transport passed in is the caller's to close
        return results, client.metrics(), pool

    results, metrics, pool = asyncio.run(scenario())
    assert all(isinstance(r, aipk.ChatResponse) for r in results), [
        r for r in results if not isinstance(r, aipk.ChatResponse)][:3]
    assert [r.text for r in results] == [  # type: ignore[union-attr]
        f"echo: n{i}" for i in range(n)]
    seen = {key: 0 for key in (KEY_A, KEY_B, KEY_C)}
    for key in presented(emu):
        seen[key] += 1
    snapshot = pool.metrics.snapshot()
    a, b, c = pool.ids
    assert snapshot[a].requests == snapshot[a].errors == seen[KEY_A] > 0
    assert snapshot[a].successes == 0
    assert (snapshot[b].successes, snapshot[c].successes) == (seen[KEY_B], seen[KEY_C])
    assert seen[KEY_B] + seen[KEY_C] == n
    assert metrics["successes"] == n and metrics["errors"] == 0
    assert metrics["failovers"] == seen[KEY_A]  # each failure moved on to a healthy key
    # Every request to A was sent before A's first 503 arrived: one incident, one counted
    # failure, and A waits out its backoff; B and C are untouched.
    assert pool.health(a).consecutive_failures == 1 and not pool.health(a).available
    assert pool.health(b).healthy and pool.health(c).healthy

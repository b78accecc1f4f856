"""OAuthManager: refresh windows, single-flight across threads and tasks, 401 recovery,
rotation, stores, failover and secrecy."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable

import attrs
import pytest

from aipk import Credential, Secret
from aipk.credentials import (
    CredentialError,
    MemoryTokenStore,
    OAuthCredential,
    OAuthManager,
    call_with_failover,
)
from aipk.errors import AuthenticationError, AuthErrorCode, ConfigurationError, ServerError

NOW = 1_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cred(cid: str = "acct", *, expires_in: float | None = -1.0, access: str = "at-old-0001",
         refresh: str | None = "rt-old-0001") -> OAuthCredential:
    return OAuthCredential(id=cid, access_token=access, refresh_token=refresh,
                           expires_at=None if expires_in is None else NOW + expires_in,
                           scopes=["chat"], account_id="user-1")


class Refresher:
    """Counts refreshes; hands out numbered tokens; can be slow or fail."""

    def __init__(self, clock: Clock, *, delay: float = 0.0, fail: Exception | None = None,
                 rotate: bool = True) -> None:
        self.clock = clock
        self.delay = delay
        self.fail = fail
        self.rotate = rotate
        self.calls = 0
        self.seen: list[str] = []
        self._lock = threading.Lock()
        self._n = itertools.count(1)

    def _next(self, old: OAuthCredential) -> OAuthCredential:
        with self._lock:
            self.calls += 1
            self.seen.append(old.refresh_token.reveal() if old.refresh_token else "")
            n = next(self._n)
        if self.fail is not None:
            raise self.fail
        return OAuthCredential(id=old.id, access_token=f"at-new-{n:04d}",
                               refresh_token=f"rt-new-{n:04d}" if self.rotate else None,
                               expires_at=self.clock() + 3600, scopes=old.scopes)

    def __call__(self, old: OAuthCredential) -> OAuthCredential:
        time.sleep(self.delay)
        return self._next(old)

    async def asynchronous(self, old: OAuthCredential) -> OAuthCredential:
        await asyncio.sleep(self.delay)
        return self._next(old)


def manager(clock: Clock, refresher: Refresher, *creds: OAuthCredential,
            **kw: object) -> OAuthManager:
    return OAuthManager("anthropic", creds or (cred(),), refresh=refresher,
                        arefresh=refresher.asynchronous, clock=clock, **kw)  # type: ignore[arg-type]


# -- refresh windows ------------------------------------------------------------------------

def test_fresh_token_is_served_without_refreshing() -> None:
    clock = Clock()
    refresher = Refresher(clock)
    mgr = manager(clock, refresher, cred(expires_in=301))
    assert mgr.token("acct").access_token == Secret("at-old-0001")
    assert mgr.acquire() == Credential(kind="oauth", secret=Secret("at-old-0001"), id="acct")
    assert refresher.calls == 0


def test_refresh_within_the_buffer_keeps_the_refresh_token_rotation() -> None:
    clock = Clock()
    refresher = Refresher(clock)
    refreshed: list[OAuthCredential] = []
    mgr = manager(clock, refresher, cred(expires_in=299), on_refresh=refreshed.append)
    new = mgr.token("acct")
    assert new.access_token == Secret("at-new-0001")
    assert new.refresh_token == Secret("rt-new-0001")
    assert refreshed == [new]
    assert mgr.get("acct") == new
    clock.now += 3600 - 299
    assert mgr.token("acct").refresh_token == Secret("rt-new-0002")
    assert refresher.seen == ["rt-old-0001", "rt-new-0001"]  # the rotated token was used
    assert mgr.health("acct").refreshes == 2


def test_refresh_response_without_a_refresh_token_keeps_the_old_one() -> None:
    clock = Clock()
    mgr = manager(clock, Refresher(clock, rotate=False))
    assert mgr.token("acct").refresh_token == Secret("rt-old-0001")


def test_failed_early_refresh_serves_the_current_token_and_waits_before_retrying(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    failing = CredentialError("endpoint down", provider="anthropic",
                              auth_code=AuthErrorCode.REFRESH_FAILED)
    refresher = Refresher(clock, fail=failing)
    mgr = manager(clock, refresher, cred(expires_in=200))
    assert mgr.token("acct").access_token == Secret("at-old-0001")
    assert mgr.token("acct").access_token == Secret("at-old-0001")
    assert refresher.calls == 1  # advisory backoff: no second attempt yet
    clock.now += 6
    mgr.token("acct")
    assert refresher.calls == 2
    assert mgr.health("acct").last_refresh_error == "endpoint down"
    assert "still using the current token" in caplog.text


def test_failed_mandatory_refresh_raises() -> None:
    clock = Clock()
    failing = CredentialError("gone", provider="anthropic",
                              auth_code=AuthErrorCode.INVALID_CREDENTIALS)
    mgr = manager(clock, Refresher(clock, fail=failing), cred(expires_in=20))
    with pytest.raises(CredentialError, match="gone"):
        mgr.token("acct")


def test_expired_token_without_refresh_token_tells_the_user_to_log_in() -> None:
    clock = Clock()
    mgr = manager(clock, Refresher(clock), cred(refresh=None),
                  login_hint="run: aipk login anthropic")
    with pytest.raises(CredentialError) as info:
        mgr.token("acct")
    assert info.value.auth_code is AuthErrorCode.TOKEN_EXPIRED
    assert "run: aipk login anthropic" in str(info.value)
    soon = manager(clock, Refresher(clock), cred(expires_in=10, refresh=None))
    assert soon.token("acct").access_token == Secret("at-old-0001")  # still valid: serve it


def test_unknown_expiry_is_refreshed_only_after_a_401() -> None:
    clock = Clock()
    refresher = Refresher(clock)
    mgr = manager(clock, refresher, cred(expires_in=None))
    assert mgr.token("acct").access_token == Secret("at-old-0001")
    assert refresher.calls == 0
    old = mgr.acquire()
    unauthorized = AuthenticationError("expired", provider="anthropic", status=401)
    fresh = mgr.recover(old, unauthorized)
    assert fresh is not None
    assert fresh.secret == Secret("at-new-0001")
    assert mgr.recover(old, unauthorized) == fresh  # a second 401 on the old token: no refresh
    assert refresher.calls == 1
    assert mgr.recover(fresh, ServerError("x", provider="anthropic", status=500)) is None


def test_call_with_failover_refreshes_once_on_401_and_retries() -> None:
    clock = Clock()
    refresher = Refresher(clock)
    mgr = manager(clock, refresher, cred(expires_in=None))
    tokens: list[str] = []

    def call(credential: Credential) -> str:
        assert credential.secret is not None
        tokens.append(credential.secret.reveal())
        if credential.secret.reveal() == "at-old-0001":
            raise AuthenticationError("expired", provider="anthropic", status=401)
        return "answer"

    assert call_with_failover(mgr, call) == "answer"
    assert tokens == ["at-old-0001", "at-new-0001"]
    assert mgr.health("acct").consecutive_failures == 0


def test_401_after_refresh_is_not_refreshed_again() -> None:
    clock = Clock()
    refresher = Refresher(clock)
    mgr = manager(clock, refresher, cred(expires_in=None))

    def call(credential: Credential) -> str:
        raise AuthenticationError("revoked", provider="anthropic", status=401)

    with pytest.raises(AuthenticationError, match="revoked"):
        call_with_failover(mgr, call)
    assert refresher.calls == 1
    assert mgr.health("acct").consecutive_failures == 1


# -- single flight --------------------------------------------------------------------------

def test_fifty_threads_cause_one_refresh() -> None:
    clock = Clock()
    refresher = Refresher(clock, delay=0.05)
    mgr = manager(clock, refresher)
    barrier = threading.Barrier(50)
    results: list[OAuthCredential] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        got = mgr.token("acct")
        with lock:
            results.append(got)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refresher.calls == 1
    assert len(results) == 50
    assert {r.access_token.reveal() for r in results} == {"at-new-0001"}


def test_two_hundred_tasks_cause_one_refresh() -> None:
    clock = Clock()
    refresher = Refresher(clock, delay=0.02)
    mgr = manager(clock, refresher)

    async def main() -> list[OAuthCredential]:
        return await asyncio.gather(*(mgr.atoken("acct") for _ in range(200)))

    results = asyncio.run(main())
    assert refresher.calls == 1
    assert {r.access_token.reveal() for r in results} == {"at-new-0001"}


def test_threads_and_tasks_together_cause_one_refresh() -> None:
    clock = Clock()
    refresher = Refresher(clock, delay=0.1)
    mgr = manager(clock, refresher)
    go = threading.Event()
    thread_results: list[str] = []

    def work() -> None:
        go.wait()
        thread_results.append(mgr.token("acct").access_token.reveal())

    threads = [threading.Thread(target=work) for _ in range(50)]
    for t in threads:
        t.start()

    async def main() -> list[OAuthCredential]:
        go.set()
        return await asyncio.gather(*(mgr.atoken("acct") for _ in range(200)))

    task_results = asyncio.run(main())
    for t in threads:
        t.join()
    assert refresher.calls == 1
    assert set(thread_results) | {r.access_token.reveal() for r in task_results} == \
        {"at-new-0001"}
    assert len(thread_results) == 50


def test_a_failed_refresh_is_shared_not_repeated() -> None:
    clock = Clock()
    failing = CredentialError("bad grant", provider="anthropic",
                              auth_code=AuthErrorCode.INVALID_CREDENTIALS)
    refresher = Refresher(clock, delay=0.05, fail=failing)
    mgr = manager(clock, refresher)
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def work() -> None:
        barrier.wait()
        try:
            mgr.token("acct")
        except CredentialError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refresher.calls == 1
    assert len(errors) == 20
    assert all(e is failing for e in errors)


def test_cancelling_the_task_that_started_a_refresh_does_not_strand_the_others() -> None:
    clock = Clock()
    refresher = Refresher(clock, delay=0.05)
    mgr = manager(clock, refresher)

    async def main() -> list[OAuthCredential]:
        first = asyncio.create_task(mgr.atoken("acct"))
        await asyncio.sleep(0)
        others = [asyncio.create_task(mgr.atoken("acct")) for _ in range(10)]
        first.cancel()
        return await asyncio.gather(*others)

    results = asyncio.run(main())
    assert refresher.calls == 1
    assert {r.access_token.reveal() for r in results} == {"at-new-0001"}


def test_sync_only_refresh_works_from_tasks_and_async_only_from_threads() -> None:
    clock = Clock()
    refresher = Refresher(clock)
    sync_only = OAuthManager("x", [cred()], refresh=refresher, clock=clock)
    assert asyncio.run(sync_only.atoken("acct")).access_token == Secret("at-new-0001")
    async_only = OAuthManager("x", [cred()], arefresh=refresher.asynchronous, clock=clock)
    assert async_only.token("acct").access_token == Secret("at-new-0002")
    with pytest.raises(ConfigurationError, match="refresh="):
        OAuthManager("x", [cred()])


def test_refresh_timeout_raises_a_typed_error() -> None:
    clock = Clock()
    refresher = Refresher(clock, delay=0.3)
    mgr = manager(clock, refresher, refresh_timeout=0.05)

    async def main() -> None:
        leader = asyncio.create_task(mgr.atoken("acct"))
        await asyncio.sleep(0.01)
        with pytest.raises(CredentialError, match="longer than") as info:
            await mgr.atoken("acct")
        assert info.value.auth_code is AuthErrorCode.REFRESH_FAILED
        with pytest.raises(CredentialError):
            await leader

    asyncio.run(main())


# -- failover across accounts ---------------------------------------------------------------

def test_an_account_whose_refresh_fails_is_backed_off_and_the_next_is_used() -> None:
    clock = Clock()
    bad = CredentialError("revoked: run the login again", provider="anthropic",
                          auth_code=AuthErrorCode.INVALID_CREDENTIALS)

    def refresh(old: OAuthCredential) -> OAuthCredential:
        if old.id == "a":
            raise bad
        return attrs.evolve(old, access_token="at-b-new", expires_at=clock() + 3600)

    mgr = OAuthManager("anthropic", [cred("a"), cred("b", access="at-b-old")], refresh=refresh,
                       clock=clock)
    assert mgr.acquire().secret == Secret("at-b-new")
    assert mgr.health("a").consecutive_failures == 1
    assert mgr.acquire().id == "b"  # a is in backoff
    clock.now += 10
    mgr.remove("b")
    with pytest.raises(CredentialError, match="run the login again"):
        mgr.acquire()


def test_aacquire_fails_over_too() -> None:
    clock = Clock()

    async def refresh(old: OAuthCredential) -> OAuthCredential:
        if old.id == "a":
            raise CredentialError("no", provider="x", auth_code=AuthErrorCode.REFRESH_FAILED)
        return attrs.evolve(old, access_token="at-b-new", expires_at=clock() + 3600)

    mgr = OAuthManager("x", [cred("a"), cred("b")], arefresh=refresh, clock=clock)
    assert asyncio.run(mgr.aacquire()).secret == Secret("at-b-new")


# -- stores ---------------------------------------------------------------------------------

def test_refreshed_tokens_are_saved_and_another_process_adopts_them() -> None:
    clock = Clock()
    store = MemoryTokenStore()
    store.save(cred())
    refresher = Refresher(clock)
    first = OAuthManager.from_store("anthropic", store, refresh=refresher, clock=clock)
    second = OAuthManager.from_store("anthropic", store, refresh=refresher, clock=clock)
    new = first.token("acct")
    assert store.load("acct") == new
    assert second.token("acct") == new  # adopted from the store, not refreshed again
    assert refresher.calls == 1


def test_a_stored_rotated_refresh_token_is_used_when_refreshing() -> None:
    clock = Clock()
    store = MemoryTokenStore()
    store.save(cred(access="at-other", refresh="rt-rotated-elsewhere", expires_in=-5))
    refresher = Refresher(clock)
    mgr = OAuthManager("anthropic", [cred()], refresh=refresher, store=store, clock=clock)
    mgr.token("acct")
    assert refresher.seen == ["rt-rotated-elsewhere"]


def test_a_failing_save_keeps_the_new_token_in_memory(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    class BrokenStore(MemoryTokenStore):
        def update(self, credential_id: str,
                   fn: Callable[[OAuthCredential | None], OAuthCredential | None]
                   ) -> OAuthCredential | None:
            fn(None)
            raise CredentialError("disk full", provider="token store",
                                  auth_code=AuthErrorCode.STORAGE_ERROR)

    mgr = manager(clock, Refresher(clock), store=BrokenStore())
    assert mgr.token("acct").access_token == Secret("at-new-0001")
    assert "could not be saved" in caplog.text
    assert "save failed" in (mgr.health("acct").last_refresh_error or "")


def test_from_store_without_tokens_says_to_log_in() -> None:
    with pytest.raises(CredentialError, match="aipk login x"):
        OAuthManager.from_store("x", MemoryTokenStore(), refresh=lambda c: c,
                                login_hint="aipk login x")
    with pytest.raises(CredentialError, match="no saved token for credential 'nope'"):
        OAuthManager.from_store("x", MemoryTokenStore(), ids=["nope"], refresh=lambda c: c)


def test_on_refresh_errors_do_not_fail_the_refresh(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    def explode(new: OAuthCredential) -> None:
        raise OSError("cannot persist")

    mgr = manager(clock, Refresher(clock), on_refresh=explode)
    assert mgr.token("acct").access_token == Secret("at-new-0001")
    assert "on_refresh callback failed" in caplog.text


# -- secrecy and reporting ------------------------------------------------------------------

def test_no_secret_in_reprs_errors_logs_or_exports(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()

    def leaky(old: OAuthCredential) -> OAuthCredential:
        assert old.refresh_token is not None
        raise RuntimeError(f"server said no to {old.refresh_token.reveal()}")

    mgr = OAuthManager("anthropic", [cred()], refresh=leaky, clock=clock)
    with pytest.raises(CredentialError) as info:
        mgr.token("acct")
    assert info.value.auth_code is AuthErrorCode.REFRESH_FAILED
    assert "****" in str(info.value)
    good = manager(clock, Refresher(clock))
    good.token("acct")
    texts = [repr(mgr), repr(mgr.get("acct")), str(info.value), repr(info.value), caplog.text,
             mgr.export_json(), good.export_prometheus(), repr(good.health_all()),
             repr(good.get("acct")), repr(good.acquire())]
    for text in texts:
        for secret in ("at-old-0001", "rt-old-0001", "at-new-0001", "rt-new-0001"):
            assert secret not in text, text


def test_health_and_metrics_include_refreshes() -> None:
    clock = Clock()
    mgr = manager(clock, Refresher(clock))
    cred_ = mgr.acquire()
    mgr.report_success(cred_, latency=0.25, tokens=30)
    info = mgr.health("acct")
    assert info.refreshes == 1
    assert info.expires_at == NOW + 3600
    assert '"refresh_count": 1' in mgr.export_json()
    assert 'aipk_credential_refreshes_total{provider="anthropic",credential="acct"} 1' in \
        mgr.export_prometheus()
    assert mgr.health_summary().total == 1


def test_oauth_credential_record() -> None:
    record = cred(expires_in=100)
    assert record.expires_in(NOW) == 100
    assert OAuthCredential.from_dict("acct", record.to_dict()) == record
    assert record.credential.kind == "oauth"
    with pytest.raises(ValueError, match="empty"):
        OAuthCredential(access_token="")
    with pytest.raises(ConfigurationError, match="mandatory_buffer"):
        OAuthManager("x", [record], refresh=lambda c: c, refresh_buffer=10,
                     mandatory_buffer=20)


# -- whether an acquire may wait for a refresh (what a sync call with a total asks) --------

@pytest.mark.parametrize(("expires_in", "refresh", "due"), [
    (3600, "rt-old-0001", False),  # fresh
    (None, "rt-old-0001", False),  # unknown expiry: refreshed only after a 401
    (302, "rt-old-0001", False),   # just outside the refresh buffer (and its second's margin)
    (300.5, "rt-old-0001", True),  # within the margin: may cross into the buffer meanwhile
    (200, "rt-old-0001", True),    # advisory: the first caller refreshes, and waits
    (10, "rt-old-0001", True),     # mandatory
    (-5, "rt-old-0001", True),     # expired
    (10, None, False),             # nothing to refresh with: served or refused at once
])
def test_a_refresh_is_due_only_for_a_token_near_expiry_that_can_be_refreshed(
        expires_in: float | None, refresh: str | None, due: bool) -> None:
    clock = Clock()
    mgr = manager(clock, Refresher(clock), cred(expires_in=expires_in, refresh=refresh))
    assert mgr._refresh_due() is due
    assert mgr._refresh_due(exclude=("acct",)) is False  # only accounts it may choose


def test_no_refresh_is_due_once_refreshed_or_while_an_early_refresh_backs_off() -> None:
    clock = Clock()
    failing = CredentialError("endpoint down", provider="anthropic",
                              auth_code=AuthErrorCode.REFRESH_FAILED)
    refresher = Refresher(clock, fail=failing)
    mgr = manager(clock, refresher, cred(expires_in=200))
    mgr.acquire()  # the early refresh fails: the current token is served for 5 s
    assert mgr._refresh_due() is False
    clock.now += 6
    assert mgr._refresh_due() is True
    refresher.fail = None
    mgr.acquire()
    assert refresher.calls == 2
    assert mgr._refresh_due() is False

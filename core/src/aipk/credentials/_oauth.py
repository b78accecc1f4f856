"""The manager that keeps OAuth access tokens fresh (the credential record is in ``_oauthtoken``).

[`OAuthManager`][aipk.credentials._oauth.OAuthManager] holds several OAuth accounts for one provider
in a [`CredentialPool`][aipk.credentials.CredentialPool] (same health, backoff and failover as API
keys) and refreshes tokens with the function you inject:

* **before** any request (chat, stream, models), when the token is near expiry: within
  ``refresh_buffer`` (5 min) the first caller refreshes and, if that fails, everyone keeps
  using the still-valid token (retried after ``advisory_backoff``); within
  ``mandatory_buffer`` (30 s) or once expired, every caller waits for the refresh and a failure
  is raised;
* **after a 401**, once ([`OAuthManager.recover()`][aipk.credentials._oauth.OAuthManager.recover]),
  unless another caller already did;
* **single-flight**: however many threads and asyncio tasks ask at once, one refresh runs
  and all of them get its result (or its error);
* with a [`TokenStore`][aipk.credentials.TokenStore], the refresh runs inside the store's
  ``update`` (a cross-process lock for the file store): a token another process refreshed
  meanwhile is adopted instead of refreshed again, and the rotated refresh token is saved.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from aipk._providers import Credential
from aipk.errors import AuthenticationError, AuthErrorCode, ConfigurationError
from aipk.observability._model import Metrics
from aipk.state import StateStore

from ._errors import CredentialError, KeysExhaustedError, scrub
from ._flight import _Flight
from ._health import BackoffPolicy, HealthInfo, HealthSummary, classify_failure
from ._metrics import MetricsRegistry
from ._oauthtoken import AsyncRefreshFn, OAuthCredential, OnTokenRefresh, RefreshFn
from ._pool import CredentialPool
from ._single import HasId

if TYPE_CHECKING:
    from ._store import TokenStore

__all__ = [
    "AsyncRefreshFn",
    "OAuthCredential",
    "OAuthManager",
    "OnTokenRefresh",
    "RefreshFn",
]

log = logging.getLogger("aipk.credentials")

_Mode = Literal["advisory", "mandatory"]


class OAuthManager:
    """OAuth accounts for one provider: selection with failover, and fresh access tokens.

    ``refresh`` / ``arefresh`` exchange a refresh token (see
    [`aipk.credentials.OAuthClient.refresh()`][aipk.credentials.OAuthClient.refresh]); give both
    when you use both the sync and async clients (each falls back on the other, through a worker
    thread or ``asyncio.run``). ``store`` persists refreshed tokens; ``on_refresh`` is called with
    each new credential. ``login_hint`` ends messages that need a new login (e.g. ``"run: aipk login
    anthropic"``). ``metrics``: the metrics model for each account's attempt and refresh counters
    (default a new one, which a client given this manager records its calls into too).
    """

    def __init__(
        self,
        provider: str,
        credentials: Iterable[OAuthCredential],
        *,
        refresh: RefreshFn | None = None,
        arefresh: AsyncRefreshFn | None = None,
        store: TokenStore | None = None,
        on_refresh: OnTokenRefresh | None = None,
        refresh_buffer: float = 300.0,
        mandatory_buffer: float = 30.0,
        advisory_backoff: float = 5.0,
        refresh_timeout: float = 60.0,
        backoff: BackoffPolicy | None = None,
        state: StateStore | None = None,
        login_hint: str | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        if not 0 <= mandatory_buffer <= refresh_buffer:
            raise ConfigurationError(
                f"mandatory_buffer ({mandatory_buffer}) must be between 0 and refresh_buffer "
                f"({refresh_buffer})")
        if refresh is None and arefresh is None:
            raise ConfigurationError(
                "OAuthManager needs refresh= or arefresh=, e.g. OAuthClient(endpoints).refresh")
        self._pool: CredentialPool[OAuthCredential] = CredentialPool(
            provider, credentials, backoff=backoff, state=state, clock=clock, metrics=metrics)
        self._refresh = refresh
        self._arefresh = arefresh
        self._store = store
        self._on_refresh = on_refresh
        self.refresh_buffer = refresh_buffer
        self.mandatory_buffer = mandatory_buffer
        self.advisory_backoff = advisory_backoff
        self.refresh_timeout = refresh_timeout
        self.login_hint = login_hint or f"run: aipk login {provider}"
        self._clock = clock
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._advisory_block: dict[str, float] = {}
        self._refresh_errors: dict[str, str] = {}
        self._save_errors: dict[str, str] = {}

    @classmethod
    def from_store(cls, provider: str, store: TokenStore, *,
                   ids: Iterable[str] | None = None, **options: Any) -> OAuthManager:
        """A manager over the credentials saved in ``store`` (all of them, or ``ids``)."""
        hint = options.get("login_hint") or f"run: aipk login {provider}"
        wanted = list(store.list_ids() if ids is None else ids)
        credentials = []
        for cid in wanted:
            loaded = store.load(cid)
            if loaded is None:
                raise CredentialError(
                    f"no saved token for credential {cid!r}: {hint}",
                    provider=provider, auth_code=AuthErrorCode.INVALID_CREDENTIALS)
            credentials.append(loaded)
        if not credentials:
            raise CredentialError(f"the token store holds no {provider} credentials: {hint}",
                                  provider=provider, auth_code=AuthErrorCode.INVALID_CREDENTIALS)
        return cls(provider, credentials, store=store, **options)

    # -- membership and reports ------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._pool.provider

    @property
    def pool(self) -> CredentialPool[OAuthCredential]:
        return self._pool

    @property
    def metrics(self) -> MetricsRegistry:
        return self._pool.metrics

    @property
    def metrics_model(self) -> Metrics:
        """The metrics model each attempt and refresh is recorded into (``metrics=``)."""
        return self._pool.metrics.model

    def __len__(self) -> int:
        return len(self._pool)

    def get(self, credential_id: str) -> OAuthCredential:
        """The current version of a credential (KeyError if unknown)."""
        return self._pool.get(credential_id)

    def add(self, credential: OAuthCredential) -> None:
        self._pool.add(credential)

    def remove(self, credential_id: str) -> None:
        self._pool.remove(credential_id)

    def report_success(self, member: HasId | str, *, latency: float = 0.0,
                       tokens: int = 0) -> None:
        self._pool.report_success(member, latency=latency, tokens=tokens)

    def report_failure(self, member: HasId | str, error: BaseException | int, *,
                       latency: float = 0.0) -> bool:
        return self._pool.report_failure(member, error, latency=latency)

    def add_tokens(self, member: HasId | str, tokens: int) -> None:
        self._pool.add_tokens(member, tokens)

    def health(self, credential_id: str) -> HealthInfo:
        info = self._pool.health(credential_id)
        snap = self.metrics.get(credential_id).snapshot()
        return attrs.evolve(info, expires_at=self.get(credential_id).expires_at,
                            refreshes=snap.refreshes,
                            last_refresh_error=self._refresh_errors.get(credential_id)
                            or self._save_errors.get(credential_id))

    def health_all(self) -> dict[str, HealthInfo]:
        return {cid: self.health(cid) for cid in self._pool.ids}

    def health_summary(self) -> HealthSummary:
        return self._pool.health_summary()

    def export_json(self) -> str:
        return self.metrics.to_json(self.health_all())

    def export_prometheus(self, prefix: str = "aipk_credential") -> str:
        return self.metrics.to_prometheus(self.health_all(), prefix)

    def __repr__(self) -> str:
        return f"<OAuthManager provider={self.provider!r} ids={list(self._pool.ids)!r}>"

    # -- selection -------------------------------------------------------------------------

    def acquire(self, *, exclude: Collection[str] = ()) -> Credential:
        """The next available account's fresh access token, as a Credential. An account whose
        refresh fails is backed off and the next one is tried."""
        tried = list(exclude)
        last: AuthenticationError | None = None
        while True:
            try:
                member = self._pool.acquire(exclude=tried)
            except KeysExhaustedError:
                if last is not None:
                    raise last from None
                raise
            try:
                return self.token(member.id).credential
            except AuthenticationError as exc:
                if not self._pool.penalize(member, exc):
                    raise
                tried.append(member.id)
                last = exc

    def _refresh_due(self, exclude: Collection[str] = ()) -> bool:
        """Whether `acquire()` may now wait for a token refresh: an account outside
        ``exclude`` that has a refresh token expires within ``refresh_buffer`` and its current
        token would not be served meanwhile (a second's margin either way for the time between
        asking and acquiring). A sync client bounding its call by ``Timeout.total`` then runs
        the acquire on a worker thread and waits for it only the time the call has left."""
        now = self._clock()
        due = self.refresh_buffer + 1.0
        served = self.mandatory_buffer + 1.0  # above it, a refresh under way is not waited for
        for credential in self._pool:
            if credential.id in exclude or credential.refresh_token is None:
                continue
            left = credential.expires_in(now)
            if left is None or left > due:
                continue
            if left > served and (credential.id in self._flights
                                  or now < self._advisory_block.get(credential.id, 0.0)):
                continue
            return True
        return False

    async def aacquire(self, *, exclude: Collection[str] = ()) -> Credential:
        """`acquire()` for asyncio tasks."""
        tried = list(exclude)
        last: AuthenticationError | None = None
        while True:
            try:
                member = self._pool.acquire(exclude=tried)
            except KeysExhaustedError:
                if last is not None:
                    raise last from None
                raise
            try:
                return (await self.atoken(member.id)).credential
            except AuthenticationError as exc:
                if not self._pool.penalize(member, exc):
                    raise
                tried.append(member.id)
                last = exc

    def recover(self, credential: Credential, error: BaseException) -> Credential | None:
        """After a 401 with ``credential``: a refreshed credential to retry with once (or the
        one another caller already refreshed); None if the error is not a 401 or there is no
        refresh token. Raises the refresh's CredentialError if it fails."""
        current, stale = self._recoverable(credential, error)
        if current is None or not stale:
            return None if current is None else current.credential
        return self._ensure(current, force=True).credential

    async def arecover(self, credential: Credential, error: BaseException) -> Credential | None:
        """`recover()` for asyncio tasks."""
        current, stale = self._recoverable(credential, error)
        if current is None or not stale:
            return None if current is None else current.credential
        return (await self._aensure(current, force=True)).credential

    def _recoverable(self, credential: Credential,
                     error: BaseException) -> tuple[OAuthCredential | None, bool]:
        """The current credential (None: not recoverable) and whether it still holds the
        token that got the 401."""
        failure = classify_failure(error)
        if failure is None or not failure.unauthorized:
            return None, False
        current = self._pool.get(credential.id)
        if current.access_token != credential.secret:  # already refreshed by someone else
            return current, False
        return (current, True) if current.refresh_token is not None else (None, False)

    # -- fresh tokens ----------------------------------------------------------------------

    def token(self, credential_id: str, *, force: bool = False) -> OAuthCredential:
        """``credential_id``'s credential, refreshed first if it is near expiry (or ``force``).
        Blocks while another thread or task refreshes it."""
        return self._ensure(self._pool.get(credential_id), force=force)

    async def atoken(self, credential_id: str, *, force: bool = False) -> OAuthCredential:
        """`token()` for asyncio tasks: waiting never blocks the event loop."""
        return await self._aensure(self._pool.get(credential_id), force=force)

    def _mode(self, credential: OAuthCredential, force: bool) -> _Mode | None:
        if force:
            return "mandatory"
        left = credential.expires_in(self._clock())
        if left is None or left > self.refresh_buffer:
            return None
        return "mandatory" if left <= self.mandatory_buffer else "advisory"

    def _skip(self, credential: OAuthCredential, mode: _Mode) -> bool:
        """True when the current token should be served without refreshing now."""
        if mode == "advisory":
            return (credential.refresh_token is None or credential.id in self._flights
                    or self._clock() < self._advisory_block.get(credential.id, 0.0))
        if credential.refresh_token is not None:
            return False
        left = credential.expires_in(self._clock())
        if left is not None and left <= 0:
            raise CredentialError(
                f"the access token of credential {credential.id!r} has expired and cannot be "
                f"refreshed (no refresh token): {self.login_hint}",
                provider=self.provider, auth_code=AuthErrorCode.TOKEN_EXPIRED)
        return True

    def _join(self, seen: OAuthCredential) -> tuple[_Flight | None, bool, OAuthCredential]:
        """The flight to wait for and whether we lead it; no flight when the token changed
        since ``seen`` (somebody refreshed it meanwhile)."""
        with self._lock:
            latest = self._pool.get(seen.id)
            if latest.access_token != seen.access_token:
                return None, False, latest
            flight = self._flights.get(seen.id)
            if flight is not None:
                return flight, False, latest
            flight = self._flights[seen.id] = _Flight()
            return flight, True, latest

    def _after(self, credential: OAuthCredential, mode: _Mode,
               error: AuthenticationError) -> OAuthCredential:
        if mode == "advisory":
            self._advisory_block[credential.id] = self._clock() + self.advisory_backoff
            log.warning("early refresh of credential %r of %s failed (%s); still using the "
                        "current token", credential.id, self.provider, error.auth_code.value)
            return credential
        raise error

    def _ensure(self, credential: OAuthCredential, *, force: bool) -> OAuthCredential:
        mode = self._mode(credential, force)
        if mode is None or self._skip(credential, mode):
            return credential
        flight, leader, latest = self._join(credential)
        if flight is None:
            return latest
        if leader:
            self._lead(flight, latest, force)
        try:
            result = flight.wait(self.refresh_timeout)
        except AuthenticationError as exc:
            return self._after(credential, mode, exc)
        if result is None:
            return self._after(credential, mode, self._timeout_error(credential))
        return result

    async def _aensure(self, credential: OAuthCredential, *, force: bool) -> OAuthCredential:
        mode = self._mode(credential, force)
        if mode is None or self._skip(credential, mode):
            return credential
        flight, leader, latest = self._join(credential)
        if flight is None:
            return latest
        if leader:  # a task of its own: cancelling this caller must not strand the others
            flight.task = asyncio.get_running_loop().create_task(
                self._alead(flight, latest, force))
        try:
            result = await flight.await_(self.refresh_timeout)
        except AuthenticationError as exc:
            return self._after(credential, mode, exc)
        if result is None:
            return self._after(credential, mode, self._timeout_error(credential))
        return result

    def _timeout_error(self, credential: OAuthCredential) -> CredentialError:
        return CredentialError(
            f"the refresh of credential {credential.id!r} took longer than "
            f"{self.refresh_timeout:g}s; check the network, then retry",
            provider=self.provider, auth_code=AuthErrorCode.REFRESH_FAILED)

    # -- running a refresh -----------------------------------------------------------------

    def _lead(self, flight: _Flight, credential: OAuthCredential, force: bool) -> None:
        try:
            if self._store is None:
                new = self._call(credential)
            else:
                new = self._with_store(credential, force, self._call)
        except BaseException as exc:
            self._finish(flight, credential, None, self._wrap(exc, credential))
            if not isinstance(exc, Exception):
                raise
        else:
            self._finish(flight, credential, new, None)

    async def _alead(self, flight: _Flight, credential: OAuthCredential, force: bool) -> None:
        try:
            if self._store is None:
                new = await self._acall(credential)
            else:
                loop = asyncio.get_running_loop()
                new = await asyncio.to_thread(self._with_store, credential, force,
                                              lambda base: self._call_from_thread(base, loop))
        except BaseException as exc:  # CancelledError too: waiters must not hang
            self._finish(flight, credential, None, self._wrap(exc, credential))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            self._finish(flight, credential, new, None)

    def _call(self, base: OAuthCredential) -> OAuthCredential:
        if self._refresh is not None:
            return self._check(base, self._refresh(base))
        assert self._arefresh is not None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._check(base, asyncio.run(_awaited(self._arefresh(base))))
        raise ConfigurationError(
            "a synchronous token refresh was needed inside a running event loop, but only "
            "arefresh= was given: use the async API (atoken, aacquire) or also pass refresh=")

    async def _acall(self, base: OAuthCredential) -> OAuthCredential:
        if self._arefresh is not None:
            return self._check(base, await self._arefresh(base))
        assert self._refresh is not None
        return self._check(base, await asyncio.to_thread(self._refresh, base))

    def _call_from_thread(self, base: OAuthCredential,
                          loop: asyncio.AbstractEventLoop) -> OAuthCredential:
        if self._arefresh is None:
            return self._call(base)
        future = asyncio.run_coroutine_threadsafe(_awaited(self._arefresh(base)), loop)
        return self._check(base, future.result(self.refresh_timeout))

    def _check(self, base: OAuthCredential, new: OAuthCredential) -> OAuthCredential:
        if not isinstance(new, OAuthCredential):
            raise TypeError(f"the refresh function returned {type(new).__name__}, "
                            f"not an OAuthCredential")
        if new.id != base.id or (new.refresh_token is None and base.refresh_token is not None):
            new = attrs.evolve(new, id=base.id, refresh_token=new.refresh_token
                               or base.refresh_token)
        if base.extra.keys() - new.extra.keys():
            new = attrs.evolve(new, extra={**base.extra, **new.extra})
        return new

    def _with_store(self, credential: OAuthCredential, force: bool,
                    call: Callable[[OAuthCredential], OAuthCredential]) -> OAuthCredential:
        """Refresh under the store's lock: adopt a token another process refreshed since
        ours, else refresh with the newest refresh token and save the result."""
        assert self._store is not None
        outcome: list[OAuthCredential] = []

        def step(stored: OAuthCredential | None) -> OAuthCredential | None:
            base = credential
            if stored is not None:
                if (stored.access_token != credential.access_token
                        and self._mode(stored, False) != "mandatory"):
                    outcome.append(stored)
                    return None
                if stored.refresh_token is not None:
                    base = attrs.evolve(credential, refresh_token=stored.refresh_token)
            new = call(base)
            outcome.append(new)
            return new

        try:
            self._store.update(credential.id, step)
            self._save_errors.pop(credential.id, None)
        except CredentialError as exc:
            if not outcome:
                raise
            log.warning("credential %r of %s was refreshed but could not be saved (%s); the "
                        "new token is used from memory only", credential.id, self.provider,
                        exc.auth_code.value)
            self._save_errors[credential.id] = f"save failed: {exc.message}"
        return outcome[0]

    def _wrap(self, exc: BaseException, credential: OAuthCredential) -> AuthenticationError:
        if isinstance(exc, AuthenticationError):
            return exc
        if isinstance(exc, ConfigurationError):
            return CredentialError(str(exc), provider=self.provider,
                                   auth_code=AuthErrorCode.INVALID_CONFIG)
        if isinstance(exc, asyncio.CancelledError):
            why = "was cancelled"
        else:
            detail = scrub(str(exc), [credential.access_token, credential.refresh_token])
            why = f"failed ({type(exc).__name__}{': ' + detail if detail else ''})"
        return CredentialError(
            f"refreshing credential {credential.id!r} {why}; retry later, or "
            f"{self.login_hint} if it keeps failing",
            provider=self.provider, auth_code=AuthErrorCode.REFRESH_FAILED)

    def _finish(self, flight: _Flight, old: OAuthCredential, new: OAuthCredential | None,
                error: AuthenticationError | None) -> None:
        now = self._clock()
        with self._lock:
            if new is not None:
                self._pool.replace(new)
            self._flights.pop(old.id, None)
        self.metrics.get(old.id).record_refresh(ok=new is not None, now=now)
        if new is None:
            assert error is not None
            self._refresh_errors[old.id] = error.message
            log.warning("refreshing credential %r of %s failed: %s", old.id, self.provider,
                        error.auth_code.value)
        else:
            self._refresh_errors.pop(old.id, None)
            self._advisory_block.pop(old.id, None)
            log.info("refreshed credential %r of %s", old.id, self.provider)
            if self._on_refresh is not None:
                try:
                    self._on_refresh(new)
                except Exception as exc:  # noqa: BLE001 - a callback must not fail the refresh
                    log.warning("the on_refresh callback failed for credential %r (%s)",
                                old.id, type(exc).__name__)
        flight.finish(new, error)


async def _awaited(value: Awaitable[OAuthCredential]) -> OAuthCredential:
    return await value

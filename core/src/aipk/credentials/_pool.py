"""Credential pools: round-robin selection that skips credentials in backoff, outcome reports,
and failover within one request.

* [`CredentialPool`][aipk.credentials._pool.CredentialPool] is generic over its members (anything
  with an ``id``); [`KeyPool`][aipk.credentials._pool.KeyPool] holds API keys as
  [`Credential`][aipk.Credential] records.
* [`CredentialSource`][aipk.credentials._pool.CredentialSource] is what a client needs from a pool
  or an OAuth manager; [`SingleCredential`][aipk.credentials._pool.SingleCredential] adapts one
  fixed credential to it.
* `Acquire` and `Recover` are the steps a call over a source takes (the send loop
  and `aipk.credentials._failover` drive them).

Selection reads health without locks (one dict lookup per candidate); the only lock on the
hot path is the chosen credential's own metrics lock (its counters live in the metrics model).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Generic, Protocol, TypeVar

from aipk._providers import Credential, Secret
from aipk._secrets import check_credential
from aipk.errors import ConfigurationError, MissingCredentialError
from aipk.observability._model import Metrics
from aipk.state import MemoryStore, StateStore

from ._errors import KeysExhaustedError
from ._health import BackoffPolicy, HealthInfo, HealthState, HealthSummary, classify_failure
from ._metrics import MetricsRegistry
from ._single import HasId, SingleCredential, _id_of

__all__ = [
    "CredentialPool",
    "CredentialSource",
    "KeyPool",
    "SingleCredential",
]

log = logging.getLogger("aipk.credentials")


T = TypeVar("T", bound=HasId)
R = TypeVar("R")


class _HealthStates:
    """Health states in a `aipk.state.StateStore`, under one namespace."""

    __slots__ = ("_state",)
    namespace = "credentials.health"

    def __init__(self, state: StateStore) -> None:
        self._state = state

    def get(self, key: str) -> HealthState | None:
        value = self._state.get(self.namespace, key)
        return value if isinstance(value, HealthState) else None

    def update(self, key: str, fn: Callable[[HealthState], HealthState]) -> HealthState:
        def step(current: HealthState | None) -> HealthState:
            return fn(current if isinstance(current, HealthState) else HealthState())

        result = self._state.update(self.namespace, key, step)
        assert result is not None
        return result

    def delete(self, key: str) -> None:
        self._state.delete(self.namespace, key)


class CredentialPool(Generic[T]):
    """Several credentials for one provider, each with its own health, backoff and metrics.

    ``acquire`` picks the next available member round-robin; report every outcome with
    ``report_success`` / ``report_failure`` so the pool can back off failing members. Safe to
    share between threads and asyncio tasks (nothing here blocks or awaits). Health states
    live in ``state`` (namespace ``"credentials.health"``, key ``"<provider>/<id>"``), an
    in-memory `aipk.state.MemoryStore` unless you pass a shared one. Each attempt's
    counters go to the metrics model ``metrics`` (`aipk.observability.Metrics.credential()`;
    default a new one, which a client given this pool records its calls into too).
    """

    def __init__(self, provider: str, members: Iterable[T], *,
                 backoff: BackoffPolicy | None = None, state: StateStore | None = None,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 metrics: Metrics | None = None) -> None:
        self.provider = provider
        self.backoff = backoff or BackoffPolicy()
        self._store = _HealthStates(state if state is not None else MemoryStore())
        self._clock = clock
        self._rand = rand
        self._lock = threading.Lock()
        self._members: dict[str, T] = {}
        for member in members:
            if member.id in self._members:
                raise ConfigurationError(
                    f"credential id {member.id!r} appears twice in the {provider} pool; "
                    f"give each credential its own id")
            self._members[member.id] = member
        self._order: tuple[str, ...] = tuple(self._members)
        self._next = itertools.count()
        #: the attempt counters, a view over `metrics_model`
        self.metrics = MetricsRegistry(provider, clock, metrics)

    @property
    def metrics_model(self) -> Metrics:
        """The metrics model the pool records each attempt into."""
        return self.metrics.model

    # -- membership ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[T]:
        members = self._members
        return iter([members[cid] for cid in self._order if cid in members])

    @property
    def ids(self) -> tuple[str, ...]:
        return self._order

    def get(self, credential_id: str) -> T:
        """The member with ``credential_id`` (KeyError if there is none)."""
        return self._members[credential_id]

    def add(self, member: T) -> None:
        """Add a credential (zero-downtime rotation: add the new key, then remove the old)."""
        with self._lock:
            if member.id in self._members:
                raise ConfigurationError(f"credential id {member.id!r} is already in the pool")
            self._members[member.id] = member
            self._order = (*self._order, member.id)

    def remove(self, credential_id: str) -> None:
        """Stop selecting ``credential_id``; forget its health and metrics."""
        with self._lock:
            self._members.pop(credential_id, None)
            self._order = tuple(cid for cid in self._order if cid != credential_id)
        self._store.delete(self._key(credential_id))
        self.metrics.remove(credential_id)

    def replace(self, member: T) -> None:
        """Swap in a new version of a member (same id), e.g. after a token refresh. A parked
        member (rejected as invalid) gets a fresh start: its credential changed."""
        with self._lock:
            if member.id not in self._members:
                raise KeyError(member.id)
            self._members[member.id] = member
        self.unpark(member.id)

    def unpark(self, credential_id: str) -> None:
        """Give a parked credential (one the provider rejected as invalid) a fresh start now,
        e.g. after fixing its account; does nothing to one that is not parked."""
        key = self._key(credential_id)
        state = self._store.get(key)
        if state is not None and state.parked_reason is not None:
            self._store.update(
                key, lambda s: s.unparked() if s.parked_reason is not None else s)
            log.info("credential %r of %s unparked", credential_id, self.provider)

    def _key(self, credential_id: str) -> str:
        return f"{self.provider}/{credential_id}"

    # -- selection -----------------------------------------------------------------------

    def acquire(self, *, exclude: Collection[str] = ()) -> T:
        """The next available member, round-robin, skipping ``exclude`` (ids already tried
        for this request). Raises [`KeysExhaustedError`][aipk.credentials._pool.KeysExhaustedError]
        when there is none."""
        order = self._order
        count = len(order)
        now = self._clock()
        start = next(self._next)
        get_state = self._store.get
        members = self._members
        for offset in range(count):
            cid = order[(start + offset) % count]
            if cid in exclude:
                continue
            member = members.get(cid)
            if member is None:
                continue
            state = get_state(self._key(cid))
            if state is None or (state.healthy and now >= state.backoff_until):
                return member
            if state.available(now) and self._claim_probe(cid, now):
                return member
        raise self._exhausted(order, exclude, now)

    def _claim_probe(self, cid: str, now: float) -> bool:
        won = False

        def claim(state: HealthState) -> HealthState:
            nonlocal won
            won = state.available(now)
            return state if state.healthy or not won else state.probing(now, self.backoff)

        self._store.update(self._key(cid), claim)
        if won:
            log.info("probing unhealthy credential %r of %s", cid, self.provider)
        return won

    def next_available_in(self, *, exclude: Collection[str] = ()) -> float | None:
        """Seconds until some member outside ``exclude`` is available (0: now; None: never)."""
        now = self._clock()
        waits = [self._state(cid).wait(now) for cid in self._order if cid not in exclude]
        return min(waits) if waits else None

    def _state(self, cid: str) -> HealthState:
        return self._store.get(self._key(cid)) or HealthState()

    def _exhausted(self, order: Sequence[str], exclude: Collection[str],
                   now: float) -> KeysExhaustedError:
        provider = self.provider
        if not order:
            return KeysExhaustedError(
                f"the {provider} credential pool is empty; add a credential (for API keys: "
                f"a comma-separated list in the provider's environment variable)",
                provider=provider, retry_after=None)
        states = {cid: self._state(cid) for cid in order}
        candidates = [cid for cid in order if cid not in exclude] or list(order)
        earliest = min(candidates, key=lambda cid: states[cid].wait(now))
        wait = states[earliest].wait(now)
        errors = "; ".join(f"{cid}: {s.last_error}" for cid, s in states.items()
                           if s.last_error and s.failures)
        unhealthy = sum(1 for s in states.values() if not s.healthy)
        parked = sum(1 for s in states.values() if s.parked_reason is not None)
        if all(cid in exclude for cid in order):  # the wait is then for the next request
            what = f"all {len(order)} {provider} credentials were already tried for this request"
        else:
            what = (f"all {len(order)} {provider} credentials are unavailable "
                    f"({parked} parked as invalid, {unhealthy - parked} unhealthy, "
                    f"the others in backoff)")
        auth_only = errors and all(
            s.last_error in ("HTTP 401", "HTTP 403", "invalid_credentials")
            for s in states.values() if s.failures)
        advice = ("check that the keys are valid" if auth_only
                  else "wait and retry, or add credentials")
        return KeysExhaustedError(
            f"{what}; the earliest, {earliest!r}, is available again in {wait:.1f}s"
            f"{f' (last errors: {errors})' if errors else ''}: {advice}",
            provider=provider, retry_after=wait,
            details={"credential": earliest, "unhealthy": unhealthy})

    # -- outcomes ------------------------------------------------------------------------

    def report_success(self, member: HasId | str, *, latency: float = 0.0,
                       tokens: int = 0) -> None:
        """Record a success: counters, and (if it had failed) back to healthy. The request
        was sent ``latency`` seconds ago: failures that arrived since still stand (give the
        latency whenever you know it; 0 means unknown)."""
        cid = _id_of(member)
        now = self._clock()
        self.metrics.get(cid).succeeded(now, latency, tokens)
        key = self._key(cid)
        state = self._store.get(key)
        if state is not None and (state.failures or not state.healthy or state.probe_until
                                  or state.parked_reason is not None):
            sent_at = now - latency if latency > 0 else None
            new = self._store.update(key, lambda s: s.succeeded(now, sent_at))
            if not state.healthy and new.healthy:
                log.info("credential %r of %s is healthy again", cid, self.provider)

    def report_failure(self, member: HasId | str, error: BaseException | int, *,
                       latency: float = 0.0) -> bool:
        """Record a failure (an exception, or an HTTP status). Returns True when it counted
        against the credential (so another credential may do better), False for failures
        that are not the credential's fault (400, 422, validation, cancellation …)."""
        now = self._clock()
        self.metrics.get(_id_of(member)).record(ok=False, now=now, latency=latency)
        return self.penalize(member, error, sent_at=now - latency if latency > 0 else None)

    def penalize(self, member: HasId | str, error: BaseException | int, *,
                 sent_at: float | None = None) -> bool:
        """Count ``error`` against the credential's health, without counting a request (a
        failed refresh). ``sent_at`` (a ``clock()`` time) is when the failed request was
        sent, None for now. Returns True when it counted, as `report_failure()` does."""
        failure = classify_failure(error)
        if failure is None:
            return False
        cid = _id_of(member)
        now = self._clock()
        policy = self.backoff
        state = self._store.update(self._key(cid), lambda s: s.failed(
            now, policy, label=failure.label, retry_after=failure.retry_after, rand=self._rand,
            sent_at=sent_at, park=failure.invalid))
        if failure.invalid:
            log.warning("credential %r of %s was rejected (%s); parked for %.0fs or until it "
                        "changes", cid, self.provider, failure.label, state.backoff_until - now)
            return True
        level = logging.WARNING if state.failures == policy.failure_threshold else logging.DEBUG
        log.log(level, "credential %r of %s failed (%s, %d in a row%s); backing off %.1fs",
                cid, self.provider, failure.label, state.failures,
                "" if state.healthy else ", unhealthy", state.backoff_until - now)
        return True

    def add_tokens(self, member: HasId | str, tokens: int) -> None:
        """Add tokens counted after the outcome was reported (a stream's final usage)."""
        self.metrics.get(_id_of(member)).add_tokens(tokens)

    # -- reporting -----------------------------------------------------------------------

    def health(self, credential_id: str) -> HealthInfo:
        """Health of one credential (KeyError for an unknown id)."""
        if credential_id not in self._members:
            raise KeyError(credential_id)
        now = self._clock()
        state = self._state(credential_id)
        return HealthInfo(
            id=credential_id, healthy=state.healthy, available=state.available(now),
            consecutive_failures=state.failures, backoff_remaining=state.wait(now),
            last_failure=state.last_failure, last_success=state.last_success,
            last_error=state.last_error, status=state.status(now),
            parked_reason=state.parked_reason)

    def health_all(self) -> dict[str, HealthInfo]:
        return {cid: self.health(cid) for cid in self._order if cid in self._members}

    def health_summary(self) -> HealthSummary:
        infos = list(self.health_all().values())
        snaps = self.metrics.snapshot().values()
        requests = sum(s.requests for s in snaps)
        successes = sum(s.successes for s in snaps)
        return HealthSummary(
            provider=self.provider, total=len(infos),
            healthy=sum(i.healthy for i in infos), available=sum(i.available for i in infos),
            in_backoff=sum(i.backoff_remaining > 0 for i in infos),
            success_rate=successes / requests if requests else 1.0,
            parked=sum(i.status == "parked" for i in infos))

    def export_json(self) -> str:
        """Metrics and health of every credential as JSON."""
        return self.metrics.to_json(self.health_all())

    def export_prometheus(self, prefix: str = "aipk_credential") -> str:
        """Metrics and health of every credential in the Prometheus text format."""
        return self.metrics.to_prometheus(self.health_all(), prefix)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider!r} ids={list(self._order)!r}>"


class CredentialSource(Protocol):
    """What a client needs from a pool or an OAuth manager, per attempt."""

    @property
    def provider(self) -> str: ...

    def __len__(self) -> int: ...

    def acquire(self, *, exclude: Collection[str] = ()) -> Credential: ...

    async def aacquire(self, *, exclude: Collection[str] = ()) -> Credential: ...

    def recover(self, credential: Credential, error: BaseException) -> Credential | None:
        """After a 401: a fresh credential to retry once with, or None."""

    async def arecover(self, credential: Credential,
                       error: BaseException) -> Credential | None: ...

    def report_success(self, member: HasId | str, *, latency: float = 0.0,
                       tokens: int = 0) -> None:
        """An attempt succeeded; ``tokens``: the whole answer's tokens (a ``chat()``), or 0
        (a stream, whose tokens come later through `add_tokens`)."""

    def report_failure(self, member: HasId | str, error: BaseException | int, *,
                       latency: float = 0.0) -> bool: ...

    def add_tokens(self, member: HasId | str, tokens: int) -> None:
        """Tokens learnt after the attempt's success (a stream's usage, at its end)."""


_KEY_FIX = ("give each key alone, one line of printable ASCII characters (surrounding "
            "whitespace is stripped)")


class KeyPool(CredentialPool[Credential]):
    """A pool of API keys for one provider. Build it with `from_keys()` or
    `from_env()` (``OPENAI_API_KEY=sk-1,sk-2``)."""

    @classmethod
    def from_keys(cls, provider: str,
                  keys: Iterable[str | Secret] | Mapping[str, str | Secret],
                  **options: Any) -> KeyPool:
        """Keys as a list (ids ``key-1``, ``key-2`` …) or a mapping of id to key.
        Blank entries and repeated keys are dropped. ``options`` go to the constructor."""
        pairs = (list(keys.items()) if isinstance(keys, Mapping)
                 else [(f"key-{i}", k) for i, k in enumerate(keys, 1)])
        seen: set[str] = set()
        members = []
        for cid, key in pairs:
            value = key.reveal() if isinstance(key, Secret) else key
            value = "" if isinstance(value, str) and not value.strip() else check_credential(
                value, where=f"key {cid!r} of the {provider} key pool", fix=_KEY_FIX)
            if value and value not in seen:
                seen.add(value)
                members.append(Credential(kind="api_key", secret=Secret(value), id=cid))
        if not members:
            raise ConfigurationError(f"no API keys given for the {provider} key pool")
        return cls(provider, members, **options)

    @classmethod
    def from_env(cls, provider: str, env_vars: str | Sequence[str], *,
                 environ: Mapping[str, str] | None = None, **options: Any) -> KeyPool:
        """Keys from the first of ``env_vars`` that is set, split on commas. Ids are the
        variable name for a single key, else ``NAME#1``, ``NAME#2`` …"""
        names = (env_vars,) if isinstance(env_vars, str) else tuple(env_vars)
        env = os.environ if environ is None else environ
        for name in names:
            keys = [check_credential(k, where=f"the environment variable {name}", fix=_KEY_FIX)
                    for k in env.get(name, "").split(",") if k.strip()]
            if len(keys) == 1:
                return cls.from_keys(provider, {name: keys[0]}, **options)
            if keys:
                return cls.from_keys(provider, {f"{name}#{i}": k for i, k in enumerate(keys, 1)},
                                     **options)
        raise MissingCredentialError(provider, names)

    async def aacquire(self, *, exclude: Collection[str] = ()) -> Credential:
        return self.acquire(exclude=exclude)

    def recover(self, credential: Credential, error: BaseException) -> Credential | None:
        """API keys cannot be refreshed: always None."""
        return None

    async def arecover(self, credential: Credential, error: BaseException) -> Credential | None:
        return None

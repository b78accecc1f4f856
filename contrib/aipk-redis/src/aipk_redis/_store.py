"""`RedisStore`: aipk's per-key state (``aipk.state.StateStore``) and client-side limit
buckets (``aipk.state.BucketStore``) in Redis or Valkey, shared by every process using the
same server and ``namespace``."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
import weakref
from asyncio import _get_running_loop
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from aipk.errors import ConfigurationError
from aipk.state import Bucket, MemoryStore

from . import _codec
from ._batch import ScriptBatcher
from ._outage import OutageTracker
from ._scripts import Scripts
from ._writeback import WriteBehind

__all__ = ["RedisStore"]

T = TypeVar("T")

#: Errors that mean "Redis cannot serve this now": the call goes on with local state.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

_MAX_CAS_ROUNDS = 64
_MAX_CACHED = 10_000


def server_label(client: Any) -> str:
    """``host:port/db`` of a client's pool, never its password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _checked_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix", "valkey", "valkeys"):
        raise ConfigurationError(
            f"the Redis URL must start with redis://, rediss:// or unix:// (got {scheme!r}://), "
            f"e.g. RedisStore.from_url('redis://localhost:6379/0')")
    if scheme.startswith("valkey"):
        url = "redis" + url[len("valkey"):]
    return url


def client_from_url(url: str, timeout: float, options: dict[str, Any]) -> redis.Redis:
    url = _checked_url(url)
    options.setdefault("socket_timeout", timeout)
    options.setdefault("socket_connect_timeout", timeout)
    options.setdefault("retry_on_timeout", False)
    # No client-side retries with backoff: an outage must cost one short timeout, not seconds.
    options.setdefault("retry", Retry(NoBackoff(), 0))
    try:
        client: redis.Redis = redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"cannot use the Redis URL: {exc}; e.g. "
                                 f"redis://[:password@]host:6379/0") from None
    return client


def async_client_factory(url: str, timeout: float,
                         options: dict[str, Any]) -> Callable[[], redis.asyncio.Redis]:
    """Makes a ``redis.asyncio.Redis`` for ``url`` (one per event loop: its connections
    belong to the loop that opened them)."""
    url = _checked_url(url)
    settings = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                "retry_on_timeout": False, "retry": AsyncRetry(NoBackoff(), 0),
                **{k: v for k, v in options.items() if k != "retry"}}

    def make() -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_url(url, **settings)

    return make


class RedisStore:
    """Shared state on Redis ≥ 6 or Valkey (see docs/shared-state.md).

    ``client`` is a ``redis.Redis`` (its own timeouts apply: keep them short, the store is
    on the request path; `from_url()` sets 0.5 s). ``async_client`` makes a
    ``redis.asyncio.Redis`` (called once per event loop) so that ``AsyncClient`` books limits
    without blocking its loop; `from_url()` provides it, and without it the async client
    books through ``client`` on a worker thread. On an event loop's thread the store never
    calls Redis itself: stale reads are re-read and writes are written by its background
    thread (see "Event loops" in the docs). Keys are ``aipk:<namespace>:...`` and
    every key has a TTL: values written without one get ``default_ttl`` seconds.

    Hot path: a limit check is one script call (``AsyncClient`` awaits it, and concurrent
    tasks' checks go out in one write); a state update is one compare-and-set script call when
    nobody else changed the value since this process last saw it; a read is served from this
    process's copy when it is younger than ``read_cache`` seconds (0 turns that off). Updates
    in the ``write_behind`` namespaces (default: the rate-limit state from response headers,
    which merges and claims nothing) take effect here at once and reach Redis from a background
    thread a moment later, so no response waits for Redis; key health, breakers and cooldowns
    are written through, because they decide who may probe a key.

    When Redis cannot be reached, every operation is served from a local
    `MemoryStore` instead: one WARNING per outage, counters
    `outages` and `fallbacks`, Redis retried every ``retry_interval`` seconds.
    Meanwhile client-side limits hold per process, scaled by ``outage_share`` (set
    ``1 / number of processes`` to keep the sum under the shared limit). What was written
    locally during the outage is not copied to Redis afterwards.
    """

    def __init__(self, client: redis.Redis, *, namespace: str = "default",
                 default_ttl: float = 86400.0, read_cache: float = 0.05,
                 retry_interval: float = 1.0, outage_share: float = 1.0,
                 async_client: Callable[[], redis.asyncio.Redis] | None = None,
                 write_behind: Collection[str] = ("aipk.ratelimit",)) -> None:
        if not namespace or any(c in namespace for c in " \n\r{}"):
            raise ConfigurationError(
                f"namespace {namespace!r} must be a non-empty name without spaces or braces, "
                f"e.g. RedisStore(client, namespace='myapp')")
        if default_ttl <= 0 or read_cache < 0 or not 0 < outage_share <= 1:
            raise ConfigurationError(
                "RedisStore needs default_ttl > 0, read_cache >= 0 and 0 < outage_share <= 1")
        self.client = client
        self.namespace = namespace
        self.prefix = f"aipk:{namespace}:"
        self.default_ttl = default_ttl
        self.read_cache = read_cache
        self.outage_share = outage_share
        self._scripts = Scripts(client)
        self._local = MemoryStore()
        self._cache: dict[str, tuple[bytes, Any, float]] = {}
        self._lock = threading.Lock()
        self.outage = OutageTracker(server_label(client), retry_interval)
        self._async_factory = async_client
        self.write_behind = frozenset(write_behind)
        self._behind = WriteBehind(self)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ScriptBatcher] = (
            weakref.WeakKeyDictionary())
        self._bucket_keys: dict[tuple[str, str], str] = {}
        #: packed EVALSHA commands by (namespace, key, limits, max_wait): a booking like an
        #: earlier one (the same limits and key; tokens vary only with tokens_per_minute)
        #: costs no encoding
        self._commands: dict[tuple[Any, ...], bytes] = {}

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "default", timeout: float = 0.5,
                 default_ttl: float = 86400.0, read_cache: float = 0.05,
                 retry_interval: float = 1.0, outage_share: float = 1.0,
                 **redis_options: Any) -> RedisStore:
        """A store on the server at ``url`` (``redis://[:password@]host:port/db``,
        ``rediss://`` for TLS, ``unix:///path.sock``; ``valkey://`` is accepted too).
        ``timeout`` bounds each connect and command, in seconds; other keyword arguments go
        to ``redis.Redis.from_url``. Nothing is contacted until the first use."""
        return cls(client_from_url(url, timeout, dict(redis_options)), namespace=namespace,
                   default_ttl=default_ttl, read_cache=read_cache,
                   retry_interval=retry_interval, outage_share=outage_share,
                   async_client=async_client_factory(url, timeout, dict(redis_options)))

    # -- reports -----------------------------------------------------------------------------

    @property
    def outages(self) -> int:
        """How many times Redis became unreachable (each logged once)."""
        return self.outage.outages

    @property
    def fallbacks(self) -> int:
        """Operations served from local state because Redis was unreachable."""
        return self.outage.fallbacks

    @property
    def shared(self) -> bool:
        """False during an outage (state is this process's own meanwhile)."""
        return not self.outage.down

    def close(self) -> None:
        """Write what is still queued (write-behind), then close the client's connections."""
        self._behind.stop()
        self.client.close()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the write-behind updates queued so far are in Redis (False on
        timeout)."""
        return self._behind.flush(timeout)

    def __repr__(self) -> str:
        return (f"<RedisStore {self.outage.label} namespace={self.namespace!r} "
                f"shared={self.shared}>")

    # -- StateStore --------------------------------------------------------------------------

    def _key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}v:{namespace}:{key}"

    def _ttl_ms(self, ttl: float | None) -> int:
        return max(1, int((self.default_ttl if ttl is None else ttl) * 1000))

    def _remember(self, rkey: str, raw: bytes, value: Any) -> None:
        cache = self._cache
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[rkey] = (raw, value, time.monotonic())

    def _decoded(self, raw: bytes | None) -> Any:
        if not raw:
            return None
        try:
            return _codec.decode(raw)
        except (ValueError, TypeError):
            return None  # another version's value, or garbage: as good as absent

    def get(self, namespace: str, key: str) -> Any:
        rkey = self._key(namespace, key)
        cached = self._cache.get(rkey)
        if cached is not None and (time.monotonic() - cached[2] < self.read_cache
                                   or self._behind.holds(rkey)):
            return cached[1]
        if self.outage.skip():
            self.outage.fallback()
            return self._local.get(namespace, key)
        if _get_running_loop() is not None:  # never block an event loop: read behind
            self._behind.refresh(rkey)
            return cached[1] if cached is not None else None
        try:
            raw = bytes_of(self.client.get(rkey))
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return self._local.get(namespace, key)
        self.outage.succeeded()
        value = self._decoded(raw)
        self._remember(rkey, raw, value)
        return value

    def reread(self, rkey: str) -> tuple[bytes, Any]:
        """``rkey``'s bytes and value in Redis (raises Redis's errors)."""
        raw = bytes_of(self.client.get(rkey))
        self.outage.succeeded()
        return raw, self._decoded(raw)

    def set(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        raw = _encode(value)
        rkey = self._key(namespace, key)
        if self.outage.skip():
            self.outage.fallback()
            self._local.set(namespace, key, value, ttl=ttl)
            return
        if _get_running_loop() is not None:  # never block an event loop: write behind
            self._behind.update(rkey, lambda _: value, ttl)
            return
        try:
            self.client.set(rkey, raw, px=self._ttl_ms(ttl))
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            self._local.set(namespace, key, value, ttl=ttl)
            return
        self.outage.succeeded()
        self._remember(rkey, raw, value)

    def delete(self, namespace: str, key: str) -> None:
        rkey = self._key(namespace, key)
        self._cache.pop(rkey, None)
        self._local.delete(namespace, key)
        if self.outage.skip():
            self.outage.fallback()
            return
        if _get_running_loop() is not None:  # never block an event loop: write behind
            self._behind.update(rkey, lambda _: None, None)
            return
        try:
            self.client.delete(rkey)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return
        self.outage.succeeded()

    def update(self, namespace: str, key: str, fn: Callable[[T | None], T | None], *,
               ttl: float | None = None) -> T | None:
        """Optimistic compare-and-set: ``fn`` runs on the value this process last saw (no
        read when it has one) and the result is written only if Redis still holds that
        value; otherwise ``fn`` runs again on the current one (``fn`` is pure, so running it
        twice is harmless). In a ``write_behind`` namespace the result is computed and kept
        here at once and written to Redis by a background thread (see the class docs)."""
        if self.outage.skip():
            self.outage.fallback()
            return self._local.update(namespace, key, fn, ttl=ttl)
        rkey = self._key(namespace, key)
        if namespace in self.write_behind or _get_running_loop() is not None:
            return cast("T | None", self._behind.update(rkey, fn, ttl))
        try:
            return cast("T | None", self.apply(rkey, fn, ttl)[0])
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return self._local.update(namespace, key, fn, ttl=ttl)

    def apply(self, rkey: str, fn: Callable[[Any], Any], ttl: float | None,
              expected: tuple[bytes, Any] | None = None) -> tuple[Any, bytes]:
        """The compare-and-set loop on Redis key ``rkey``: the value written and its bytes
        (raises Redis's errors). The first round expects ``expected`` (raw bytes and value),
        else this process's copy, else reads the current value."""
        cached = expected or self._cache.get(rkey)
        if cached is not None and (cached[0] or expected is not None):
            raw, old = cached[0], cached[1]
        else:
            raw = bytes_of(self.client.get(rkey))
            old = self._decoded(raw)
        for round_ in range(_MAX_CAS_ROUNDS):
            if round_ > 1:  # contended: back off a little, with jitter
                time.sleep(random.random() * min(0.0005 * round_, 0.01))
            new = fn(old)
            if new is old and (raw or new is None):
                self._remember(rkey, raw, old)
                self.outage.succeeded()
                return new, raw
            new_raw = b"" if new is None else _encode(new)
            answer = self._scripts.cas(keys=[rkey], args=[raw, new_raw, self._ttl_ms(ttl)])
            if int(answer[0]) == 1:
                self.outage.succeeded()
                self._remember(rkey, new_raw, new)
                return new, new_raw
            raw = bytes_of(answer[1])
            old = self._decoded(raw)
        raise ConfigurationError(  # pragma: no cover - needs dozens of writers on one key
            f"the shared value {rkey} changed {_MAX_CAS_ROUNDS} times while it was being "
            f"updated; use a separate RedisStore namespace per application")

    # -- BucketStore -------------------------------------------------------------------------

    def _bucket_key(self, namespace: str, key: str) -> str:
        keys = self._bucket_keys
        rkey = keys.get((namespace, key))
        if rkey is None:
            if len(keys) >= _MAX_CACHED:
                keys.clear()
            rkey = keys[(namespace, key)] = f"{self.prefix}b:{namespace}:{key}"
        return rkey

    def reserve(self, namespace: str, key: str, buckets: Sequence[Bucket],
                max_wait: float = math.inf) -> float:
        """Book the limits in one server-side script (server time; see aipk.state)."""
        if not buckets:
            return 0.0
        if self.outage.skip():
            self.outage.fallback()
            return self._book_locally(namespace, key, buckets, max_wait)
        try:
            answer = self._scripts.reserve(keys=[self._bucket_key(namespace, key)],
                                           args=_bucket_args(buckets, max_wait))
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return self._book_locally(namespace, key, buckets, max_wait)
        self.outage.succeeded()
        return float(answer) / 1000.0

    async def areserve(self, namespace: str, key: str, buckets: Sequence[Bucket],
                       max_wait: float = math.inf) -> float:
        """`reserve()` on the event loop's own ``redis.asyncio`` client; bookings that
        concurrent tasks ask for in one turn of the event loop go out in one write."""
        if not buckets:
            return 0.0
        if self.outage.skip():
            self.outage.fallback()
            return self._book_locally(namespace, key, buckets, max_wait)
        batcher = self._batcher()
        if batcher is None:  # no redis.asyncio client given: book on a worker thread
            return await asyncio.to_thread(self.reserve, namespace, key, buckets, max_wait)
        wanted = (namespace, key, tuple(buckets), max_wait)
        command = self._commands.get(wanted)
        if command is None:
            if len(self._commands) >= _MAX_CACHED:
                self._commands.clear()
            command = self._commands[wanted] = batcher.command(
                self._bucket_key(namespace, key), _bucket_args(buckets, max_wait))
        try:
            answer = await batcher.call(command)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return self._book_locally(namespace, key, buckets, max_wait)
        self.outage.succeeded()
        return float(answer) / 1000.0

    def _batcher(self) -> ScriptBatcher | None:
        if self._async_factory is None:
            return None
        loop = asyncio.get_running_loop()
        batcher = self._async.get(loop)
        if batcher is None:
            batcher = self._async[loop] = ScriptBatcher(self._async_factory(),
                                                        Scripts.source("reserve"))
        return batcher

    def _book_locally(self, namespace: str, key: str, buckets: Sequence[Bucket],
                      max_wait: float) -> float:
        share = self.outage_share
        scaled = [(n, c * share, p, min(a, c * share)) for n, c, p, a in buckets]
        return self._local.reserve(namespace, key, scaled, max_wait)


def _bucket_args(buckets: Sequence[Bucket], max_wait: float) -> list[str]:
    args: list[str] = ["" if max_wait == math.inf else repr(max_wait * 1000.0), ""]
    for name, capacity, period, amount in buckets:
        args += (name, repr(float(capacity)), repr(float(period) * 1000.0), repr(float(amount)))
    return args


def bytes_of(raw: Any) -> bytes:
    """A reply as bytes (b"" for none), whether or not the client decodes responses."""
    if not raw:
        return b""
    return raw.encode() if isinstance(raw, str) else bytes(raw)


def _encode(value: Any) -> bytes:
    try:
        return _codec.encode(value)
    except ValueError as exc:
        raise ConfigurationError(f"{exc}; keep only serialisable records in the state "
                                 f"store") from None

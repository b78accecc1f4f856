"""`RedisTokenStore`: OAuth tokens in Redis, refreshed once per expiry across processes.

It is an [`aipk.credentials.TokenStore`][aipk.credentials.TokenStore]: ``OAuthManager`` runs each
refresh inside ``update``, which holds a lease lock on the credential (``SET NX PX``; a watchdog
extends the lease while the refresh runs; released by compare-and-delete only while still the
owner). The manager re-reads the stored token under the lock and adopts one another process
refreshed in the meantime, so one expiry costs one refresh however many processes notice it, and a
rotated refresh token is never used twice. A process killed while holding the lock blocks the others
for at most ``lease`` seconds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from aipk.credentials import CredentialError, OAuthCredential
from aipk.errors import AuthErrorCode, ConfigurationError

from ._outage import OutageTracker
from ._scripts import Scripts
from ._store import REDIS_ERRORS, bytes_of, client_from_url, server_label

__all__ = ["RedisTokenStore"]

log = logging.getLogger("aipk.redis")

UpdateFn = Callable[[OAuthCredential | None], OAuthCredential | None]
_FORMAT = 1


def _aesgcm(key: bytes | str) -> Any:
    raw: bytes | None = key if isinstance(key, bytes) else None
    if isinstance(key, str):
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.urlsafe_b64decode(key.strip().encode("ascii"))
    if raw is None or len(raw) not in (16, 24, 32):
        raise ConfigurationError(
            "the token encryption key must be 16, 24 or 32 bytes (or those bytes as URL-safe "
            "base64); create one with RedisTokenStore.generate_key()")
    try:
        module = importlib.import_module("cryptography.hazmat.primitives.ciphers.aead")
    except ImportError:
        raise ConfigurationError("encrypting tokens needs the cryptography package: "
                                 "pip install 'aipk-redis[encryption]'") from None
    return module.AESGCM(raw)


class RedisTokenStore:
    """OAuth credentials by id in Redis, with a cross-process refresh lock (see the module).

    ``encryption_key`` (16/24/32 bytes or their URL-safe base64, e.g. `generate_key()`)
    stores tokens AES-GCM encrypted, bound to their key name; without it they are stored as
    plain JSON (protect the Redis server then). ``lease`` is the lock's lifetime in seconds
    (extended every third of it while the refresh runs); ``lock_timeout`` bounds the wait for
    another process's refresh. Tokens expire from Redis ``token_ttl`` seconds after their last
    save.

    When Redis is unreachable, tokens are kept in this process (one WARNING per outage,
    counted in `outages`): refreshes are then single-flight within the process only.
    """

    def __init__(self, client: redis.Redis, *, namespace: str = "default",
                 encryption_key: bytes | str | None = None, lease: float = 30.0,
                 lock_timeout: float = 90.0, token_ttl: float = 90 * 86400.0,
                 retry_interval: float = 1.0) -> None:
        if lease <= 0 or lock_timeout <= 0 or token_ttl <= 0:
            raise ConfigurationError(
                "RedisTokenStore needs lease, lock_timeout and token_ttl greater than 0")
        self.client = client
        self.namespace = namespace
        self.prefix = f"aipk:{namespace}:oauth:"
        self.lease = lease
        self.lock_timeout = lock_timeout
        self.token_ttl = token_ttl
        self._cipher = None if encryption_key is None else _aesgcm(encryption_key)
        self._scripts = Scripts(client)
        self._local: dict[str, OAuthCredential] = {}
        self._local_lock = threading.RLock()
        self.outage = OutageTracker(server_label(client), retry_interval)

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "default", timeout: float = 2.0,
                 encryption_key: bytes | str | None = None, lease: float = 30.0,
                 lock_timeout: float = 90.0, token_ttl: float = 90 * 86400.0,
                 **redis_options: Any) -> RedisTokenStore:
        """A token store on the server at ``url`` (see ``RedisStore.from_url``)."""
        return cls(client_from_url(url, timeout, dict(redis_options)), namespace=namespace,
                   encryption_key=encryption_key, lease=lease, lock_timeout=lock_timeout,
                   token_ttl=token_ttl)

    @staticmethod
    def generate_key() -> str:
        """A new random 256-bit key as URL-safe base64 text (keep it out of Redis)."""
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")

    @property
    def outages(self) -> int:
        return self.outage.outages

    def __repr__(self) -> str:
        return (f"<RedisTokenStore {self.outage.label} namespace={self.namespace!r} "
                f"encrypted={self._cipher is not None}>")

    # -- keys and values ---------------------------------------------------------------------

    def _token_key(self, credential_id: str) -> str:
        return f"{self.prefix}token:{credential_id}"

    def _lock_key(self, credential_id: str) -> str:
        return f"{self.prefix}lock:{credential_id}"

    @property
    def _ids_key(self) -> str:
        return f"{self.prefix}ids"

    def _error(self, message: str, code: AuthErrorCode) -> CredentialError:
        return CredentialError(message, provider="token store", auth_code=code,
                               details={"namespace": self.namespace})

    def _seal(self, credential: OAuthCredential) -> bytes:
        data = json.dumps(credential.to_dict(), separators=(",", ":")).encode()
        if self._cipher is None:
            return json.dumps({"v": _FORMAT, "credential": json.loads(data)}).encode()
        nonce = secrets.token_bytes(12)
        aad = self._token_key(credential.id).encode()
        blob = nonce + self._cipher.encrypt(nonce, data, aad)
        return json.dumps({"v": _FORMAT, "cipher": "AES-GCM",
                           "data": base64.b64encode(blob).decode("ascii")}).encode()

    def _open(self, credential_id: str, raw: bytes | None) -> OAuthCredential | None:
        if not raw:
            return None
        try:
            document = json.loads(raw)
            if not isinstance(document, dict) or document.get("v") != _FORMAT:
                raise ValueError("not an aipk token")
            if "data" in document:
                if self._cipher is None:
                    raise self._error(
                        f"the token of credential {credential_id!r} is encrypted; pass the key "
                        f"with RedisTokenStore(..., encryption_key=...)",
                        AuthErrorCode.ENCRYPTION_ERROR)
                blob = base64.b64decode(document["data"], validate=True)
                try:
                    plain = self._cipher.decrypt(blob[:12], blob[12:],
                                                 self._token_key(credential_id).encode())
                except Exception:  # noqa: BLE001 - cryptography's InvalidTag
                    raise self._error(
                        f"cannot decrypt the token of credential {credential_id!r}: wrong "
                        f"encryption key, or the value was altered",
                        AuthErrorCode.ENCRYPTION_ERROR) from None
                data = json.loads(plain)
            else:
                data = document["credential"]
            return OAuthCredential.from_dict(credential_id, data)
        except CredentialError:
            raise
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise self._error(
                f"the stored token of credential {credential_id!r} is corrupt; delete it "
                f"(RedisTokenStore.delete({credential_id!r})) and log in again",
                AuthErrorCode.STORAGE_ERROR) from None

    # -- TokenStore --------------------------------------------------------------------------

    def load(self, credential_id: str) -> OAuthCredential | None:
        if self.outage.skip():
            return self._local.get(credential_id)
        try:
            raw = bytes_of(self.client.get(self._token_key(credential_id)))
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return self._local.get(credential_id)
        self.outage.succeeded()
        credential = self._open(credential_id, raw)
        if credential is not None:
            with self._local_lock:  # what an outage will fall back on
                self._local[credential_id] = credential
        return credential

    def list_ids(self) -> list[str]:
        if self.outage.skip():
            return sorted(self._local)
        try:
            ids = self.client.smembers(self._ids_key)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return sorted(self._local)
        self.outage.succeeded()
        return sorted(i.decode() if isinstance(i, bytes) else str(i) for i in ids)

    def save(self, credential: OAuthCredential) -> None:
        self.update(credential.id, lambda _: credential)

    def delete(self, credential_id: str) -> None:
        with self._local_lock:
            self._local.pop(credential_id, None)
        try:
            with self.client.pipeline() as pipe:
                pipe.delete(self._token_key(credential_id))
                pipe.srem(self._ids_key, credential_id)
                pipe.execute()
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            raise self._error(f"cannot delete credential {credential_id!r}: Redis is "
                              f"unreachable; retry when it is back",
                              AuthErrorCode.STORAGE_ERROR) from None

    def update(self, credential_id: str, fn: UpdateFn) -> OAuthCredential | None:
        """Run ``fn`` on the stored credential while holding the refresh lock and save what
        it returns (None: leave it); return the credential stored afterwards."""
        if self.outage.skip():
            return self._update_locally(credential_id, fn)
        try:
            token = self._acquire(credential_id)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return self._update_locally(credential_id, fn)
        try:
            with self._watchdog(credential_id, token):
                current = self._open(credential_id, self._get(credential_id))
                new = fn(current)
                if new is None:
                    return current
                if new.id != credential_id:
                    raise ValueError(f"update for {credential_id!r} returned credential "
                                     f"{new.id!r}")
                self._write(new)
                return new
        finally:
            self._release(credential_id, token)

    # -- the lease lock ----------------------------------------------------------------------

    def _get(self, credential_id: str) -> bytes | None:
        try:
            raw = bytes_of(self.client.get(self._token_key(credential_id)))
        except REDIS_ERRORS:
            raise self._error(f"Redis became unreachable while refreshing credential "
                              f"{credential_id!r}; retry", AuthErrorCode.STORAGE_ERROR) from None
        return raw or None

    def _write(self, credential: OAuthCredential) -> None:
        sealed = self._seal(credential)
        ttl_ms = int(self.token_ttl * 1000)
        try:
            with self.client.pipeline() as pipe:  # MULTI/EXEC: token and id list together
                pipe.set(self._token_key(credential.id), sealed, px=ttl_ms)
                pipe.sadd(self._ids_key, credential.id)
                pipe.pexpire(self._ids_key, ttl_ms)
                pipe.execute()
        except REDIS_ERRORS:
            with self._local_lock:
                self._local[credential.id] = credential
            raise self._error(f"the refreshed token of credential {credential.id!r} could not "
                              f"be saved to Redis (unreachable)",
                              AuthErrorCode.STORAGE_ERROR) from None
        with self._local_lock:
            self._local[credential.id] = credential

    def _acquire(self, credential_id: str) -> str:
        """Take the lock (``SET NX PX``), polling with jitter until ``lock_timeout``."""
        key = self._lock_key(credential_id)
        token = secrets.token_hex(16)
        lease_ms = max(1, int(self.lease * 1000))
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.01
        while not self.client.set(key, token, nx=True, px=lease_ms):
            if time.monotonic() >= deadline:
                raise self._error(
                    f"another process has been refreshing credential {credential_id!r} for "
                    f"over {self.lock_timeout:g}s; retry, or raise "
                    f"RedisTokenStore(lock_timeout=...)", AuthErrorCode.STORAGE_ERROR)
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.2)
        return token

    def _release(self, credential_id: str, token: str) -> None:
        try:
            self._scripts.release(keys=[self._lock_key(credential_id)], args=[token])
        except REDIS_ERRORS as exc:  # the lease ends the lock anyway
            log.debug("could not release the refresh lock of %r (%s)", credential_id,
                      type(exc).__name__)

    @contextlib.contextmanager
    def _watchdog(self, credential_id: str, token: str) -> Iterator[None]:
        """Extend the lease every third of it while the body runs."""
        stop = threading.Event()
        key = self._lock_key(credential_id)
        lease_ms = max(1, int(self.lease * 1000))

        def extend() -> None:
            while not stop.wait(self.lease / 3):
                try:
                    held = self._scripts.extend(keys=[key], args=[token, lease_ms])
                except REDIS_ERRORS:
                    continue
                if not held:
                    log.warning("the refresh lock of credential %r expired before the refresh "
                                "finished; raise RedisTokenStore(lease=...)", credential_id)
                    return

        thread = threading.Thread(target=extend, name=f"aipk-redis-lease-{credential_id}",
                                  daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _update_locally(self, credential_id: str, fn: UpdateFn) -> OAuthCredential | None:
        self.outage.fallback()
        with self._local_lock:
            current = self._local.get(credential_id)
            new = fn(current)
            if new is None:
                return current
            self._local[credential_id] = new
            return new

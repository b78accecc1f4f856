"""Where OAuth tokens are kept between runs.

[`FileTokenStore`][aipk.credentials._store.FileTokenStore] writes one JSON file (optionally AES-GCM
encrypted) so that a crash or a second process can never leave it half written or lose a rotated
refresh token:

* every change is a read-modify-write under an exclusive ``fcntl.flock`` on ``<file>.lock``
  (plus a thread lock), so concurrent writers in several processes are serialised;
* the new content goes to a temporary file ``.<file>.<12 hex>.tmp`` in the same directory,
  created with mode 0600 before anything is written to it, is fsynced, and replaces the old
  file with an atomic ``os.replace`` (then the directory is fsynced);
* a temporary file left by a writer that was killed mid-write is removed on the next write
  and on the next load: writers only write while holding the lock, so whoever holds the lock
  knows every temporary file of this store is stale (a load that finds one takes the lock only
  if it is free, and otherwise leaves the sweep to the writer holding it). Where there is no
  ``flock`` (Windows), only temporary files older than a minute are removed;
* a file readable by group or others is refused (fix: ``chmod 600 <file>``); a corrupt file
  raises a typed error and is never overwritten.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib
import json
import logging
import os
import re
import secrets
import shlex
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from aipk.errors import AuthErrorCode, ConfigurationError

from ._errors import CredentialError
from ._oauthtoken import OAuthCredential

__all__ = ["FileTokenStore", "MemoryTokenStore", "TokenStore"]

_VERSION = 1
_AAD = b"aipk-token-store/1"
#: Without flock (Windows) a temporary file this old is taken as left by a dead writer.
_STALE_WITHOUT_LOCK = 60.0

log = logging.getLogger("aipk.credentials")
UpdateFn = Callable[[OAuthCredential | None], OAuthCredential | None]


class TokenStore(Protocol):
    """Saved OAuth credentials by id.

    ``update`` runs ``fn`` on the stored credential (None if absent) while holding the store's
    lock and saves what it returns (None: leave it as it is); it returns the credential stored
    afterwards. [`OAuthManager`][aipk.credentials.OAuthManager] refreshes inside ``update`` so that
    processes sharing a store never refresh the same token twice.
    """

    def load(self, credential_id: str) -> OAuthCredential | None: ...

    def save(self, credential: OAuthCredential) -> None: ...

    def delete(self, credential_id: str) -> None: ...

    def list_ids(self) -> list[str]: ...

    def update(self, credential_id: str, fn: UpdateFn) -> OAuthCredential | None: ...


class MemoryTokenStore:
    """Tokens in a dict: for tests, and for applications that persist via ``on_refresh``."""

    def __init__(self) -> None:
        self._data: dict[str, OAuthCredential] = {}
        self._lock = threading.RLock()

    def load(self, credential_id: str) -> OAuthCredential | None:
        return self._data.get(credential_id)

    def save(self, credential: OAuthCredential) -> None:
        with self._lock:
            self._data[credential.id] = credential

    def delete(self, credential_id: str) -> None:
        with self._lock:
            self._data.pop(credential_id, None)

    def list_ids(self) -> list[str]:
        return sorted(self._data)

    def update(self, credential_id: str, fn: UpdateFn) -> OAuthCredential | None:
        with self._lock:
            current = self._data.get(credential_id)
            new = fn(current)
            if new is None:
                return current
            self._data[credential_id] = _same_id(new, credential_id)
            return new

    def __repr__(self) -> str:
        return f"<MemoryTokenStore ids={self.list_ids()!r}>"


def _same_id(credential: OAuthCredential, credential_id: str) -> OAuthCredential:
    if credential.id != credential_id:
        raise ValueError(f"update for {credential_id!r} returned credential {credential.id!r}")
    return credential


def _aesgcm(key: bytes) -> Any:
    try:
        module = importlib.import_module("cryptography.hazmat.primitives.ciphers.aead")
    except ImportError:
        raise ConfigurationError(
            "encrypting the token file needs the cryptography package: "
            "pip install 'aipk-core[encryption]'") from None
    return module.AESGCM(key)


class FileTokenStore:
    """OAuth credentials in one JSON file, written atomically with mode 0600 under a lock.

    ``encryption_key`` (16, 24 or 32 bytes, or those bytes as URL-safe base64 text, e.g. from
    `generate_key()`) encrypts the file with AES-GCM; it needs
    ``pip install 'aipk-core[encryption]'``. ``lock_timeout`` bounds the wait for another
    process's lock (it may be refreshing a token over the network meanwhile).
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 encryption_key: bytes | str | None = None, lock_timeout: float = 60.0,
                 login_hint: str = "run the login again") -> None:
        self.path = Path(path).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self.login_hint = login_hint
        self._cipher = None if encryption_key is None else _aesgcm(self._key(encryption_key))
        self._thread_lock = threading.RLock()
        self._depth = 0
        # ours: .<name>.<12 hex>.tmp; older versions' (tempfile.mkstemp): 8 of [a-z0-9_]
        self._tmp_name = re.compile(rf"\.{re.escape(self.path.name)}\.[0-9a-z_]{{8,12}}\.tmp")

    @staticmethod
    def generate_key() -> str:
        """A new random 256-bit key as URL-safe base64 text (keep it out of the token file's
        directory, e.g. in a secrets manager or an environment variable)."""
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")

    def _key(self, key: bytes | str) -> bytes:
        raw: bytes | None = key if isinstance(key, bytes) else None
        if isinstance(key, str):
            with contextlib.suppress(binascii.Error, ValueError):
                raw = base64.urlsafe_b64decode(key.strip().encode("ascii"))
        if raw is None or len(raw) not in (16, 24, 32):
            raise self._error(
                "the token file encryption key must be 16, 24 or 32 bytes (or those bytes as "
                "URL-safe base64); create one with FileTokenStore.generate_key()",
                AuthErrorCode.ENCRYPTION_ERROR)
        return raw

    def _error(self, message: str, code: AuthErrorCode) -> CredentialError:
        return CredentialError(message, provider="token store", auth_code=code,
                               details={"path": str(self.path)})

    # -- public API ------------------------------------------------------------------------

    def load(self, credential_id: str) -> OAuthCredential | None:
        """The saved credential, or None. No lock needed: the file is replaced atomically."""
        self._sweep_if_idle()
        return self._parse(credential_id, self._read().get(credential_id))

    def list_ids(self) -> list[str]:
        self._sweep_if_idle()
        return sorted(self._read())

    def save(self, credential: OAuthCredential) -> None:
        self.update(credential.id, lambda _: credential)

    def delete(self, credential_id: str) -> None:
        with self._locked():
            entries = self._read()
            if entries.pop(credential_id, None) is not None:
                self._write(entries)

    def update(self, credential_id: str, fn: UpdateFn) -> OAuthCredential | None:
        with self._locked():
            entries = self._read()
            current = self._parse(credential_id, entries.get(credential_id))
            new = fn(current)
            if new is None:
                return current
            entries[credential_id] = {**_same_id(new, credential_id).to_dict(),
                                      "updated_at": time.time()}
            self._write(entries)
            return new

    def __repr__(self) -> str:
        return (f"<FileTokenStore path={str(self.path)!r} "
                f"encrypted={self._cipher is not None}>")

    # -- reading ---------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        path = self.path
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._error(f"cannot read the token file {path} ({exc.strerror}); check "
                              f"that it is a file you own", AuthErrorCode.STORAGE_ERROR) from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise self._error(f"the token file {path} is not a regular file",
                                  AuthErrorCode.STORAGE_ERROR)
            if os.name == "posix" and info.st_mode & 0o077:
                quoted = shlex.quote(str(path))
                raise self._error(
                    f"the token file {path} can be read by other users (mode "
                    f"{stat.S_IMODE(info.st_mode):04o}); refusing to use it: run "
                    f"`chmod 600 {quoted}`", AuthErrorCode.INVALID_CONFIG)
            raw = handle.read()
        return self._decode(raw)

    def _corrupt(self, what: str) -> CredentialError:
        quoted = shlex.quote(str(self.path))
        return self._error(
            f"the token file {self.path} is corrupt ({what}); it was left untouched: move it "
            f"aside (mv {quoted} {quoted}.bad) and {self.login_hint}",
            AuthErrorCode.STORAGE_ERROR)

    def _decode(self, raw: bytes) -> dict[str, Any]:
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            raise self._corrupt("not valid JSON") from None
        if not isinstance(document, dict) or document.get("version") != _VERSION:
            raise self._corrupt("not an aipk token file of version 1")
        if "ciphertext" in document:
            document = self._decrypt(document["ciphertext"])
        entries = document.get("credentials")
        if not isinstance(entries, dict):
            raise self._corrupt("no credentials table")
        return entries

    def _decrypt(self, text: object) -> dict[str, Any]:
        if self._cipher is None:
            raise self._error(f"the token file {self.path} is encrypted; pass the key with "
                              f"FileTokenStore(..., encryption_key=...)",
                              AuthErrorCode.ENCRYPTION_ERROR)
        try:
            blob = base64.b64decode(str(text), validate=True)
        except (binascii.Error, ValueError):
            raise self._corrupt("the encrypted payload is not base64") from None
        if len(blob) < 12 + 16:
            raise self._corrupt("the encrypted payload is too short")
        try:
            plain = self._cipher.decrypt(blob[:12], blob[12:], _AAD)
        except Exception:  # noqa: BLE001 - cryptography's InvalidTag: wrong key or altered
            raise self._error(
                f"cannot decrypt the token file {self.path}: wrong encryption key, or the file "
                f"was altered; use the key it was written with, or {self.login_hint}",
                AuthErrorCode.ENCRYPTION_ERROR) from None
        try:
            document = json.loads(plain)
        except ValueError:
            raise self._corrupt("the decrypted payload is not JSON") from None
        if not isinstance(document, dict):
            raise self._corrupt("the decrypted payload is not a table")
        return document

    def _parse(self, credential_id: str, entry: object) -> OAuthCredential | None:
        if entry is None:
            return None
        if not isinstance(entry, dict):
            raise self._corrupt(f"the entry for {credential_id!r} is not a table")
        try:
            return OAuthCredential.from_dict(credential_id, entry)
        except (KeyError, TypeError, ValueError):
            raise self._corrupt(f"the entry for {credential_id!r} lacks a valid access "
                                f"token") from None

    # -- writing ---------------------------------------------------------------------------

    def _encode(self, entries: dict[str, Any]) -> bytes:
        document: dict[str, Any] = {"version": _VERSION, "credentials": entries}
        if self._cipher is not None:
            nonce = secrets.token_bytes(12)
            sealed = self._cipher.encrypt(nonce, json.dumps(document).encode(), _AAD)
            document = {"version": _VERSION, "cipher": "AES-GCM",
                        "ciphertext": base64.b64encode(nonce + sealed).decode("ascii")}
        return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"

    def _write(self, entries: dict[str, Any]) -> None:
        """Replace the file with ``entries``; called with the lock held."""
        payload = self._encode(entries)
        directory = self.path.parent
        tmp: Path | None = None
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._sweep()
            fd, tmp = self._new_temp()
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            tmp = None
            _fsync_dir(directory)
        except OSError as exc:
            raise self._error(f"cannot write the token file {self.path} ({exc.strerror}); "
                              f"check the directory's permissions and free space",
                              AuthErrorCode.STORAGE_ERROR) from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _new_temp(self) -> tuple[int, Path]:
        """A new temporary file beside the token file, created 0600 (before any byte of a
        token is written), exclusively, not through a symlink."""
        flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
        while True:
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
            try:
                fd = os.open(tmp, flags, 0o600)
            except FileExistsError:  # pragma: no cover - 48 random bits
                continue
            if os.name == "posix":
                try:
                    os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
                except OSError:
                    os.close(fd)
                    os.unlink(tmp)
                    raise
            return fd, tmp

    # -- stale temporary files -------------------------------------------------------------

    def _stale_temps(self) -> list[Path]:
        """This store's temporary files in its directory (none if it does not exist)."""
        try:
            with os.scandir(self.path.parent) as entries:
                return [Path(e.path) for e in entries if self._tmp_name.fullmatch(e.name)]
        except OSError:  # no such directory, or not listable: reading will say what is wrong
            return []

    def _sweep(self) -> None:
        """Remove the temporary files left by writers that died mid-write. Called with the
        lock held: every writer writes only under it, so none of these is being written."""
        found = self._stale_temps()
        if not found:
            return
        cutoff = time.time() - _STALE_WITHOUT_LOCK if sys.platform == "win32" else None
        for tmp in found:
            try:
                if cutoff is not None and tmp.stat().st_mtime > cutoff:
                    continue  # pragma: no cover - no flock: maybe a live writer's
                tmp.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot remove the stale temporary token file %s (%s); remove it "
                            "by hand", tmp, exc.strerror)
                continue
            log.info("removed %s, left by a token-file writer that died mid-write", tmp)

    def _sweep_if_idle(self) -> None:
        """On a load: if stale temporary files exist and no writer holds the lock, remove
        them (a writer holding it sweeps them itself). Never waits."""
        if not self._stale_temps():
            return
        if not self._thread_lock.acquire(blocking=False):
            return
        try:
            if self._depth:  # this thread holds the file lock (a load inside update)
                self._sweep()
                return
            fd = self._try_lock_file()
            if fd is None:
                return
            try:
                self._sweep()
            finally:
                if fd >= 0:
                    _unlock(fd)
        finally:
            self._thread_lock.release()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth:  # re-entered from an update callback in this thread
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            fd = self._lock_file()
            try:
                self._depth = 1
                yield
            finally:
                self._depth = 0
                if fd is not None:
                    _unlock(fd)

    def _try_lock_file(self) -> int | None:
        """The lock's descriptor if it was free (-1 where there is no flock), else None."""
        if sys.platform == "win32":  # pragma: no cover - the thread lock is all there is
            return -1
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # e.g. a read-only directory: nothing could be removed there anyway
            return None
        if _try_lock(fd):
            return fd
        os.close(fd)
        return None

    def _lock_file(self) -> int | None:
        if sys.platform == "win32":  # pragma: no cover - no flock; the thread lock remains
            return None
        try:
            self.lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._error(f"cannot create the lock file {self.lock_path} "
                              f"({exc.strerror})", AuthErrorCode.STORAGE_ERROR) from None
        deadline = time.monotonic() + self.lock_timeout
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise self._error(
                    f"another process has held {self.lock_path} for over "
                    f"{self.lock_timeout:g}s; if no aipk process is running, retry",
                    AuthErrorCode.STORAGE_ERROR)
            time.sleep(0.005)
        return fd


def _try_lock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # pragma: no cover
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

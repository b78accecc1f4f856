"""Token stores: atomic, locked, 0600 writes; refusing open permissions and corrupt files;
optional encryption; several processes writing at once."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from aipk.credentials import (
    CredentialError,
    FileTokenStore,
    MemoryTokenStore,
    OAuthCredential,
    OAuthManager,
)
from aipk.errors import AuthErrorCode, ConfigurationError

ACCESS = "at-secret-value-123"
REFRESH = "rt-secret-value-456"


def cred(cid: str = "acct", n: int = 0) -> OAuthCredential:
    return OAuthCredential(id=cid, access_token=f"{ACCESS}-{n}", refresh_token=f"{REFRESH}-{n}",
                           expires_at=1_900_000_000.0 + n, scopes=("a", "b"), account_id="u1")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "tokens.json"


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_save_load_round_trip_with_private_modes(path: Path) -> None:
    store = FileTokenStore(path)
    assert store.load("acct") is None
    assert store.list_ids() == []
    store.save(cred())
    store.save(cred("other", 1))
    assert store.load("acct") == cred()
    assert store.list_ids() == ["acct", "other"]
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(store.lock_path) == 0o600
    assert json.loads(path.read_text())["credentials"]["acct"]["refresh_token"] == f"{REFRESH}-0"
    store.delete("acct")
    assert store.list_ids() == ["other"]
    assert {p.name for p in path.parent.iterdir()} == {"tokens.json", "tokens.json.lock"}


def test_group_or_world_readable_file_is_refused_and_left_alone(path: Path) -> None:
    store = FileTokenStore(path)
    store.save(cred())
    before = path.read_bytes()
    path.chmod(0o644)
    with pytest.raises(CredentialError) as info:
        store.load("acct")
    error = info.value
    assert error.auth_code is AuthErrorCode.INVALID_CONFIG
    assert f"chmod 600 {path}" in str(error)
    assert "0644" in str(error)
    with pytest.raises(CredentialError, match="chmod 600"):
        store.save(cred(n=9))
    assert path.read_bytes() == before
    assert mode(path) == 0o644
    path.chmod(0o600)
    assert store.load("acct") == cred()


@pytest.mark.parametrize("content", [
    b"{not json", b"", b"[]", b'{"version": 7, "credentials": {}}',
    b'{"version": 1}', b'{"version": 1, "credentials": {"acct": {"scopes": []}}}',
    b'{"version": 1, "credentials": {"acct": "text"}}',
])
def test_corrupt_file_gives_a_typed_error_and_is_not_overwritten(path: Path,
                                                                 content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    path.chmod(0o600)
    store = FileTokenStore(path, login_hint="run: aipk login demo")
    with pytest.raises(CredentialError) as info:
        store.load("acct")
    assert info.value.auth_code is AuthErrorCode.STORAGE_ERROR
    assert "left untouched" in str(info.value)
    assert "run: aipk login demo" in str(info.value)
    with pytest.raises(CredentialError):
        store.save(cred())
    with pytest.raises(CredentialError):
        OAuthManager.from_store("demo", store, refresh=lambda c: c)
    assert path.read_bytes() == content


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    store = FileTokenStore(path)
    store.save(cred())
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(CredentialError, match="No space left") as info:
        store.save(cred(n=1))
    assert info.value.auth_code is AuthErrorCode.STORAGE_ERROR
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_symlinked_token_file_is_not_followed(path: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    with pytest.raises(CredentialError, match="cannot read"):
        FileTokenStore(path).load("acct")


def test_update_is_a_locked_read_modify_write(path: Path) -> None:
    store = FileTokenStore(path)
    store.save(cred(n=0))

    def bump(current: OAuthCredential | None) -> OAuthCredential:
        assert current is not None
        n = int(current.access_token.reveal().rsplit("-", 1)[1])
        return cred(n=n + 1)

    threads = [threading.Thread(target=lambda: [store.update("acct", bump) for _ in range(25)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = store.load("acct")
    assert loaded is not None
    assert loaded.access_token.reveal() == f"{ACCESS}-100"
    assert store.update("acct", lambda current: None) == loaded  # None: unchanged


def test_lock_timeout_is_a_typed_error(path: Path) -> None:
    import fcntl

    store = FileTokenStore(path, lock_timeout=0.05)
    store.save(cred())
    fd = os.open(store.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(CredentialError, match="held") as info:
            store.save(cred(n=1))
        assert info.value.auth_code is AuthErrorCode.STORAGE_ERROR
        assert store.load("acct") == cred()  # reads need no lock
    finally:
        os.close(fd)


WRITER = textwrap.dedent("""
    import os, sys, time
    from aipk.credentials import FileTokenStore, OAuthCredential
    path, cid, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = FileTokenStore(path)
    open(f"{path}.{cid}.ready", "w").close()
    while not os.path.exists(f"{path}.go"):  # start together
        time.sleep(0.001)
    for n in range(1, rounds + 1):
        store.save(OAuthCredential(id=cid, access_token=f"{cid}-{n}", refresh_token=f"r-{n}"))
        def bump(current):
            count = int(current.access_token.reveal()) if current else 0
            return OAuthCredential(id="shared", access_token=str(count + 1))
        store.update("shared", bump)
""")


def test_two_processes_writing_at_once_never_corrupt_or_lose_anything(path: Path) -> None:
    rounds = 50
    store = FileTokenStore(path)
    store.save(cred("seed"))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), cid, str(rounds)])
             for cid in ("p1", "p2")]
    while not all(Path(f"{path}.{cid}.ready").exists() for cid in ("p1", "p2")):
        assert all(p.poll() is None for p in procs), "a writer died at start-up"
    Path(f"{path}.go").touch()
    reads = 0
    while any(p.poll() is None for p in procs):
        raw = path.read_bytes()  # the file is replaced atomically: never partial
        assert isinstance(json.loads(raw)["credentials"], dict)
        store.list_ids()
        reads += 1
    assert [p.returncode for p in procs] == [0, 0]
    assert reads > 0
    final = {cid: store.load(cid) for cid in ("p1", "p2", "shared", "seed")}
    assert final["p1"] is not None
    assert final["p1"].access_token.reveal() == f"p1-{rounds}"
    assert final["p2"] is not None
    assert final["p2"].access_token.reveal() == f"p2-{rounds}"
    assert final["shared"] is not None
    assert final["shared"].access_token.reveal() == str(2 * rounds)  # no lost update
    assert final["seed"] == cred("seed")
    assert mode(path) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_memory_store() -> None:
    store = MemoryTokenStore()
    store.save(cred())
    assert store.load("acct") == cred()
    assert store.update("acct", lambda c: None) == cred()
    assert store.update("new", lambda c: cred("new")) == cred("new")
    with pytest.raises(ValueError, match="returned credential"):
        store.update("x", lambda c: cred("y"))
    store.delete("acct")
    assert store.list_ids() == ["new"]
    assert ACCESS not in repr(store)


def test_no_secret_in_store_reprs_or_errors(path: Path) -> None:
    store = FileTokenStore(path)
    store.save(cred())
    path.chmod(0o640)
    with pytest.raises(CredentialError) as info:
        store.load("acct")
    for text in (repr(store), str(info.value), repr(info.value), repr(cred())):
        assert ACCESS not in text
        assert REFRESH not in text


# -- encryption -----------------------------------------------------------------------------

def test_encryption_needs_the_optional_dependency(path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_crypto(name: str, package: str | None = None) -> object:
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_crypto)
    with pytest.raises(ConfigurationError, match=r"pip install 'aipk-core\[encryption\]'"):
        FileTokenStore(path, encryption_key=b"k" * 32)


def test_encrypted_file_round_trip_and_key_errors(path: Path) -> None:
    pytest.importorskip("cryptography")
    key = FileTokenStore.generate_key()
    store = FileTokenStore(path, encryption_key=key)
    store.save(cred())
    raw = path.read_text()
    assert ACCESS not in raw
    assert REFRESH not in raw
    assert "acct" not in raw
    assert json.loads(raw)["cipher"] == "AES-GCM"
    assert FileTokenStore(path, encryption_key=key).load("acct") == cred()
    before = path.read_bytes()
    wrong = FileTokenStore(path, encryption_key=FileTokenStore.generate_key())
    with pytest.raises(CredentialError, match="wrong encryption key") as info:
        wrong.load("acct")
    assert info.value.auth_code is AuthErrorCode.ENCRYPTION_ERROR
    with pytest.raises(CredentialError):
        wrong.save(cred(n=1))
    with pytest.raises(CredentialError, match="encryption_key=") as info:
        FileTokenStore(path).load("acct")
    assert info.value.auth_code is AuthErrorCode.ENCRYPTION_ERROR
    assert path.read_bytes() == before
    with pytest.raises(CredentialError, match="16, 24 or 32 bytes"):
        FileTokenStore(path, encryption_key=b"short")
    with pytest.raises(CredentialError, match="16, 24 or 32 bytes"):
        FileTokenStore(path, encryption_key="not base64 at all!")


def test_tampered_ciphertext_is_an_encryption_error(path: Path) -> None:
    pytest.importorskip("cryptography")
    key = os.urandom(16)
    store = FileTokenStore(path, encryption_key=key)
    store.save(cred())
    document = json.loads(path.read_text())
    blob = bytearray(__import__("base64").b64decode(document["ciphertext"]))
    blob[-1] ^= 1
    document["ciphertext"] = __import__("base64").b64encode(bytes(blob)).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(CredentialError) as info:
        store.load("acct")
    assert info.value.auth_code is AuthErrorCode.ENCRYPTION_ERROR


def test_a_plain_file_is_encrypted_on_the_next_save(path: Path) -> None:
    pytest.importorskip("cryptography")
    FileTokenStore(path).save(cred())
    key = FileTokenStore.generate_key()
    store = FileTokenStore(path, encryption_key=key)
    assert store.load("acct") == cred()
    store.save(cred("second"))
    assert ACCESS not in path.read_text()
    assert store.list_ids() == ["acct", "second"]


# -- writers killed mid-write ----------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import os, random, stat, sys, time
    from aipk.credentials import FileTokenStore, OAuthCredential
    path, n = sys.argv[1], int(sys.argv[2])
    real_fsync = os.fsync
    def announced_fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):  # the temporary file, written, not yet renamed
            sys.stdout.write("writing\\n")
            sys.stdout.flush()
            time.sleep(random.uniform(0.0, 0.05))
        real_fsync(fd)
    os.fsync = announced_fsync
    store = FileTokenStore(path)
    while True:
        n += 1
        store.save(OAuthCredential(id="victim", access_token=f"secret-token-{n}",
                                   refresh_token=f"secret-refresh-{n}"))
""")


def _temps(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def _kill_writers(path: Path, kills: int, start: int) -> None:
    """Start a writer ``kills`` times and SIGKILL it while it writes (on its first, or a later
    fsync of a temporary file); the token file must stay whole throughout."""
    import random
    import signal

    for round_ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path),
                                 str(start + 1000 * round_)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for _ in range(random.randint(1, 3)):
            assert proc.stdout.readline() == "writing\n", "the writer died by itself"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        document = json.loads(path.read_bytes())  # never partial: replaced atomically
        token = document["credentials"]["victim"]["access_token"]
        # a writer killed in its first write leaves the token saved before it
        assert token.startswith("secret-token-") or token == f"{ACCESS}-0"
        # the killed writer's own temporary file, holding tokens, 0600; those of the writers
        # killed before it were removed by its first write
        left = _temps(path)
        assert len(left) == 1 and b"secret-token-" in left[0].read_bytes()
        assert mode(left[0]) == 0o600


def test_temp_files_of_killed_writers_are_removed_on_the_next_load_and_write(path: Path) -> None:
    store = FileTokenStore(path)
    store.save(cred("victim"))
    _kill_writers(path, 10, 0)
    loaded = store.load("victim")  # the next load removes them
    assert loaded is not None
    assert loaded.access_token.reveal().startswith(("secret-token-", f"{ACCESS}-0"))
    assert _temps(path) == []

    _kill_writers(path, 10, 100_000)
    store.save(cred("other"))  # so does the next write
    assert _temps(path) == []
    assert store.list_ids() == ["other", "victim"]
    assert mode(path) == 0o600


def test_a_load_leaves_a_live_writers_temp_file_alone(path: Path) -> None:
    store = FileTokenStore(path)
    store.save(cred())
    live = path.with_name(f".{path.name}.0123456789ab.tmp")
    old_style = path.with_name(f".{path.name}.k2_x9a0q.tmp")  # tempfile.mkstemp's names
    others = [path.with_name(f".{path.name}.bak.0123456789ab.tmp"),
              path.with_name(".other.json.0123456789ab.tmp"), path.with_name("notes.tmp")]
    for tmp in (live, old_style, *others):
        tmp.write_text("x")
    with store._locked():  # a writer holds the lock: its temporary file may be in use
        holder = threading.Thread(target=lambda: store.load("acct"))
        holder.start()
        holder.join()
        assert live.exists() and old_style.exists()
        other_store = FileTokenStore(path)
        assert other_store.load("acct") == cred()
        assert live.exists()
    assert store.load("acct") == cred()  # the lock is free: stale, removed
    assert not live.exists() and not old_style.exists()
    assert all(tmp.exists() for tmp in others)  # other files are never touched

"""RedisTokenStore on its own: encryption at rest, wrong or missing keys, TTLs, the lock left
free after each update, and the CI rule of the redis-server fixture."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from aipk.credentials import CredentialError, OAuthCredential
from aipk.errors import AuthErrorCode, ConfigurationError
from aipk_redis import RedisTokenStore

from . import conftest


def _credential(**changes: Any) -> OAuthCredential:
    values: dict[str, Any] = {"id": "acct", "access_token": "at-secret-123",
                              "refresh_token": "rt-secret-456", "expires_at": time.time() + 60}
    return OAuthCredential(**{**values, **changes})


def test_tokens_are_encrypted_at_rest_and_bound_to_their_key(
        redis_server: Any, redis_client: redis.Redis, namespace: str) -> None:
    key = RedisTokenStore.generate_key()
    store = RedisTokenStore.from_url(redis_server.url, namespace=namespace, encryption_key=key)
    store.save(_credential())
    raw = redis_client.get(f"aipk:{namespace}:oauth:token:acct")
    assert raw is not None and b"secret" not in raw and b"AES-GCM" in raw
    assert store.load("acct") == _credential(expires_at=store.load("acct").expires_at)  # type: ignore[union-attr]
    assert store.list_ids() == ["acct"]
    for other in (RedisTokenStore.generate_key(), None):
        wrong = RedisTokenStore.from_url(redis_server.url, namespace=namespace,
                                         encryption_key=other)
        with pytest.raises(CredentialError) as failed:
            wrong.load("acct")
        assert failed.value.auth_code is AuthErrorCode.ENCRYPTION_ERROR
        assert "secret" not in str(failed.value)
    redis_client.set(f"aipk:{namespace}:oauth:token:copy", raw)  # moved to another id
    with pytest.raises(CredentialError, match="wrong encryption key"):
        store.load("copy")
    with pytest.raises(ConfigurationError, match="generate_key"):
        RedisTokenStore(redis_client, encryption_key="too-short")


def test_every_key_has_a_ttl_and_the_lock_is_free_after_an_update(
        redis_server: Any, redis_client: redis.Redis, namespace: str) -> None:
    store = RedisTokenStore.from_url(redis_server.url, namespace=namespace, token_ttl=3600)
    seen: list[OAuthCredential | None] = []

    def step(current: OAuthCredential | None) -> OAuthCredential:
        seen.append(current)
        assert redis_client.exists(f"aipk:{namespace}:oauth:lock:acct")  # held meanwhile
        return _credential()

    store.update("acct", step)
    assert seen == [None]
    keys = list(redis_client.scan_iter(f"aipk:{namespace}:*"))
    assert sorted(k.decode() for k in keys) == [f"aipk:{namespace}:oauth:ids",
                                                f"aipk:{namespace}:oauth:token:acct"]
    assert all(0 < redis_client.pttl(k) <= 3_600_000 for k in keys)
    assert store.update("acct", lambda current: None) == _credential(
        expires_at=store.load("acct").expires_at)  # type: ignore[union-attr]
    store.delete("acct")
    assert store.load("acct") is None and store.list_ids() == []


def test_a_corrupt_token_names_the_fix(redis_server: Any, redis_client: redis.Redis,
                                       namespace: str) -> None:
    redis_client.set(f"aipk:{namespace}:oauth:token:acct", b"{not json")
    store = RedisTokenStore.from_url(redis_server.url, namespace=namespace)
    with pytest.raises(CredentialError, match=r"delete it") as failed:
        store.load("acct")
    assert failed.value.auth_code is AuthErrorCode.STORAGE_ERROR


def test_a_missing_redis_server_skips_locally_and_fails_in_ci(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    monkeypatch.delenv("AIPK_REDIS_SERVER", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y redis-server"):
        conftest.RedisServer(tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest.RedisServer(tmp_path)

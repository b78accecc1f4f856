"""A real ``redis-server`` on a free loopback port, started for the tests and stopped after.

``AIPK_REDIS_SERVER`` names another server binary to run instead (a Redis 6 or Valkey
``valkey-server``: ``bash dev/redis-servers`` fetches some). Without ``redis-server`` on PATH
the tests that need it are skipped with the reason (install it: ``apt-get install -y
redis-server``; ``dev/setup`` does when run as root), except in CI (``CI=true``), where a
missing server fails the run instead of skipping silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (no persistence); stop and start it again
    on the same port to simulate an outage."""

    def __init__(self, workdir: Path) -> None:
        chosen = os.environ.get("AIPK_REDIS_SERVER")
        if chosen and not os.access(chosen, os.X_OK):
            pytest.fail(f"AIPK_REDIS_SERVER={chosen!r} is not an executable server binary; "
                        f"run bash dev/redis-servers to fetch the tested ones")
        binary = chosen or shutil.which("redis-server")
        if binary is None:
            reason = ("redis-server is not installed: apt-get install -y redis-server "
                      "(dev/setup does this when run as root)")
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"CI=true but {reason}")
            pytest.skip(reason)
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while not self._answers(client):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def pytest_report_header() -> str:
    binary = os.environ.get("AIPK_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        return "aipk-redis: no redis-server"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return f"aipk-redis: {binary}: {version.strip()}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, free to stop and restart."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace() -> str:
    """A fresh key namespace per test, so tests share the server but not state."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()

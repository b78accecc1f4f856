"""pytest fixtures for testing aipk plugins and applications (registered via ``pytest11``).

* ``aipk_emulator_session``: one loopback emulator for the whole test session.
* ``aipk_emulator``: the same emulator, reset (queue, records, key, limits) for each test.

Tests never see the developer's own logins: unless ``AIPK_TOKEN_DIR`` is already set, it
points at an empty temporary directory for the session (clients look there for what
``aipk login`` saved).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from .emulator import Emulator

__all__ = ["aipk_emulator", "aipk_emulator_session"]

_TOKEN_DIR: tempfile.TemporaryDirectory[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _TOKEN_DIR
    if "AIPK_TOKEN_DIR" not in os.environ:
        _TOKEN_DIR = tempfile.TemporaryDirectory(prefix="aipk-tokens-")
        os.environ["AIPK_TOKEN_DIR"] = _TOKEN_DIR.name


def pytest_unconfigure(config: pytest.Config) -> None:
    global _TOKEN_DIR
    if _TOKEN_DIR is not None:
        os.environ.pop("AIPK_TOKEN_DIR", None)
        _TOKEN_DIR.cleanup()
        _TOKEN_DIR = None


@pytest.fixture(scope="session")
def aipk_emulator_session() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def aipk_emulator(aipk_emulator_session: Emulator) -> Emulator:
    aipk_emulator_session.reset()
    return aipk_emulator_session

"""pytest fixtures for testing aipk plugins and applications (registered via ``pytest11``).

* ``aipk_emulator_session``: one loopback emulator for the whole test session.
* ``aipk_emulator``: the same emulator, reset (queue, records, key, limits) for each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .emulator import Emulator

__all__ = ["aipk_emulator", "aipk_emulator_session"]


@pytest.fixture(scope="session")
def aipk_emulator_session() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def aipk_emulator(aipk_emulator_session: Emulator) -> Emulator:
    aipk_emulator_session.reset()
    return aipk_emulator_session

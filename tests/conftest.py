"""Shared fixtures for the cross-package tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aipk import registry
from aipk_testkit.emulator import Emulator


@pytest.fixture(autouse=True)
def no_config_providers_leak() -> Iterator[None]:
    """A config file's custom providers live in the process-wide registry for the life of the
    process; a test that loads one must not hand them to the tests after it."""
    yield
    default = registry._default
    if default is not None and default.pm.get_plugin("aipk.config") is not None:
        default.unregister("aipk.config")


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    """One loopback emulator per test module (a module may define its own ``server``)."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(server: Emulator) -> Emulator:
    """The module's emulator, its queued faults and recorded requests cleared."""
    server.reset()
    return server

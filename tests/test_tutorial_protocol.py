"""docs/tutorial-protocol.md is executed: its files are written to an empty folder, installed
(entry points included), and its tests run: the conformance suite against the emulator taught
the tutorial's protocol, and the tutorial's own tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .docs_blocks import blocks, tutorial_project

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial-protocol.md"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return tutorial_project(PAGE, tmp_path_factory.mktemp("tutorial-protocol"), "aipk-zephyr",
                            6)


def test_the_tutorial_has_its_files() -> None:
    titles = {block.title for block in blocks(PAGE) if block.title}
    assert {"aipk-zephyr/pyproject.toml", "aipk-zephyr/src/aipk_zephyr/plugin.py",
            "aipk-zephyr/src/aipk_zephyr/wire.py", "aipk-zephyr/tests/conftest.py",
            "aipk-zephyr/tests/zephyr_emulator.py", "aipk-zephyr/tests/test_zephyr.py"} <= titles


def test_the_protocol_tutorials_tests_pass(project: tuple[Path, dict[str, str]]) -> None:
    folder, env = project
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"],
        cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 23, summary  # the conformance suite and the tutorial's own tests ran
    assert "failed" not in summary and "error" not in summary
    # zephyr declares tools=True and streaming: the conformance suite skips nothing
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert not skips, skips

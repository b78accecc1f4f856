"""docs/tutorial-plugin.md is executed: its files are written to an empty folder, installed
(entry points included) and its tests and script run against the loopback emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .docs_blocks import blocks, tutorial_project

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial-plugin.md"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return tutorial_project(PAGE, tmp_path_factory.mktemp("tutorial"), "aipk-acme", 5)


def test_the_tutorial_has_its_files() -> None:
    titles = {block.title for block in blocks(PAGE) if block.title}
    assert {"aipk-acme/pyproject.toml", "aipk-acme/src/aipk_acme/plugin.py",
            "aipk-acme/tests/test_acme.py", "aipk-acme/try_it.py"} <= titles


def test_the_tutorial_plugins_tests_pass(project: tuple[Path, dict[str, str]]) -> None:
    folder, env = project
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"],
        cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 10, summary  # the conformance suite and the tutorial's own tests ran
    assert "failed" not in summary and "error" not in summary
    # the only test the conformance suite may skip: acme has no wait header of its own
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("declares no wait header of its own" in line for line in skips), skips


def test_the_tutorial_script_prints_what_the_page_shows(
        project: tuple[Path, dict[str, str]]) -> None:
    folder, env = project
    result = subprocess.run([sys.executable, "try_it.py"], cwd=folder, env=env,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    page = blocks(PAGE)
    script = next(i for i, b in enumerate(page) if b.title == "aipk-acme/try_it.py")
    expected = page[script + 1]
    assert expected.lang == "text"
    assert result.stdout == expected.body


def test_the_cli_lists_the_tutorial_provider(project: tuple[Path, dict[str, str]]) -> None:
    folder, env = project
    result = subprocess.run([sys.executable, "-m", "aipk", "providers"], cwd=folder, env=env,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "acme" in result.stdout and "aipk-acme 0.1.0" in result.stdout

"""`aipk demo` and the other commands run end to end on the loopback emulator."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from aipk import cli
from aipk._demo import run_demo


def test_demo_shows_every_step_and_succeeds() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "Streams arrive as small deltas, decoded as they come." in text
    assert "model asked for get_weather" in text
    assert "client waits 1.00s before retrying" in text
    assert "anthropic POST /anthropic/v1/messages" in text
    assert ":streamGenerateContent" in text
    assert "first call: key 1 -> key 2 (429, then served)" in text
    assert "second call: key 2 only (key 1 backs off for 30s" in text
    assert text.rstrip().endswith("demo complete: all steps behaved as expected")


def test_providers_command_lists_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["providers"]) == 0
    listing = capsys.readouterr().out
    for name in ("openai", "anthropic", "gemini", "groq"):
        assert name in listing
    assert "OPENAI_API_KEY" in listing


def test_unknown_provider_is_a_clean_error_with_the_fix() -> None:
    result = subprocess.run([sys.executable, "-m", "aipk.cli", "models", "nosuch", "--static"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "pip install aipk-nosuch" in result.stderr
    assert "Traceback" not in result.stderr


def test_models_static_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "openai", "--static"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["openai", "gpt-4o-mini", "128,000", "16,384", "0.15", "0.6", "tvj-s",
            "static"] in rows

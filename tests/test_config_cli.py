"""``aipk config check`` and ``aipk config show`` as a user runs them: subprocesses with the
environment they need, on the documented sample config and on broken files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "docs" / "examples" / "aipk.toml"
KEYS = {"OPENAI_API_KEY": "sk-sample-openai", "ANTHROPIC_API_KEY": "sk-ant-sample",
        "GROQ_KEY_1": "gsk-sample-1", "GROQ_KEY_2": "gsk-sample-2"}


def aipk(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("AIPK_", "OPENAI_", "ANTHROPIC_", "GROQ_"))}
    base["AIPK_STRICT_PLUGINS"] = "1"
    return subprocess.run([sys.executable, "-m", "aipk.cli", *args], capture_output=True,
                          text=True, check=False, env={**base, **env}, cwd=cwd)


def test_the_documented_sample_config_passes_check(tmp_path: Path) -> None:
    result = aipk("config", "check", "--config", str(SAMPLE), env=KEYS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{SAMPLE}: OK (3 providers, 1 routers, 2 aliases)"


def test_the_sample_is_found_through_aipk_config_and_fails_without_its_keys(
        tmp_path: Path) -> None:
    env = {**KEYS, "AIPK_CONFIG": str(SAMPLE)}
    del env["GROQ_KEY_2"]
    del env["ANTHROPIC_API_KEY"]
    result = aipk("config", "check", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "2 problems" in result.stderr
    assert "providers.anthropic.api_key: ${ANTHROPIC_API_KEY} is not set; set " \
           "ANTHROPIC_API_KEY" in result.stderr
    assert "providers.groq.api_keys[1]: ${GROQ_KEY_2} is not set; set GROQ_KEY_2" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_show_prints_redacted_values_with_their_origin(tmp_path: Path) -> None:
    result = aipk("config", "show", "--config", str(SAMPLE), "--json",
                  env={**KEYS, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["providers.groq.api_keys[1]"] == {
        "key": "providers.groq.api_keys[1]", "value": "****",
        "origin": "aipk.toml:18 via $GROQ_KEY_2"}
    assert rows["providers.openai.base_url"]["origin"] == "env OPENAI_BASE_URL"
    assert rows["providers.anthropic.base_url"]["origin"] == "default (plugin)"
    assert rows["routers.main.strategy"]["origin"] == "aipk.toml:23"
    assert rows["state.backend"] == {"key": "state.backend", "value": "memory",
                                     "origin": "default"}
    assert all(key not in result.stdout for key in KEYS.values())
    text = aipk("config", "show", "--config", str(SAMPLE), env=KEYS, cwd=tmp_path)
    assert "providers.openai.api_key" in text.stdout and "# aipk.toml:5 via $OPENAI_API_KEY" \
        in text.stdout
    assert all(key not in text.stdout for key in KEYS.values())


def test_check_lists_every_problem_and_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "aipk.toml"
    bad.write_text('[providers.opneai]\napi_key = "${NOPE_1}"\n\n[providers.groq]\n'
                   'api_keys = ["${NOPE_2}"]\nbase_url = "groq.example"\n')
    result = aipk("config", "check", env={}, cwd=tmp_path)     # found as ./aipk.toml
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(lines) == 4, result.stderr
    assert any("${NOPE_1} is not set; set NOPE_1" in line for line in lines)
    assert any("${NOPE_2} is not set; set NOPE_2" in line for line in lines)
    assert any("provider 'opneai' is not installed; did you mean 'openai'?" in line
               for line in lines)
    assert any("providers.groq.base_url: 'groq.example' must start with http://" in line
               for line in lines)


def test_check_reports_a_syntax_error_with_its_position(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text("[providers.openai\n")
    result = aipk("config", "check", "--config", str(bad), env={}, cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:1:" in result.stderr and "not valid TOML" in result.stderr

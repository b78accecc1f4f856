"""The model catalog over real HTTP against the emulator: TTL cache in memory and on disk,
fallback when a listing fails, metadata merged from the static tables, capability search, and
``aipk models`` on the command line."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

import aipk
from aipk import cli
from aipk.catalog import ModelCatalog, ModelQuery, merge_models, user_cache_dir
from aipk.registry import default_registry
from aipk_testkit.emulator import Emulator

KEY = "sk-catalog"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith("AIPK_") and var not in {"AIPK_STRICT_PLUGINS", "AIPK_LOAD_PLUGINS"}:
            monkeypatch.delenv(var)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GROQ_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def listings(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.path.endswith("/models"))


def client(emu: Emulator, key: str = KEY) -> aipk.Client:
    return aipk.Client("openai", base_url=emu.url("openai"), api_key=key)


def test_listing_is_cached_for_the_ttl_and_refresh_forces_a_fetch(emu: Emulator) -> None:
    clock = Clock()
    catalog = ModelCatalog(ttl=100, clock=clock)
    with client(emu) as c:
        first = catalog.models(c)
        assert {m.extra["source"] for m in first} == {"live"}
        assert [m.id for m in catalog.models(c)] == [m.id for m in first]
        assert listings(emu) == 1
        assert {m.extra["source"] for m in catalog.models(c)} == {"cache"}
        clock.now += 101
        catalog.models(c)
        assert listings(emu) == 2
        catalog.models(c, refresh=True)
        assert listings(emu) == 3
    with client(emu, key="sk-other") as other:               # another credential: its own entry
        catalog.models(other)
    assert listings(emu) == 4


def test_live_listing_is_enriched_from_the_static_table(emu: Emulator) -> None:
    with client(emu) as c:
        models = {m.id: m for m in ModelCatalog().models(c)}
    mini = models["gpt-4o-mini"]
    assert mini.input_price == 0.15 and mini.output_price == 0.6      # static prices kept
    assert mini.context_window == 128_000
    assert mini.created == 1686935002                                 # from the live listing


def test_disk_cache_survives_a_new_catalog(emu: Emulator, tmp_path: Path) -> None:
    with client(emu) as c:
        ModelCatalog(disk=True, cache_dir=tmp_path / "models").models(c)
        assert listings(emu) == 1
        files = list((tmp_path / "models").glob("openai-*.json"))
        assert len(files) == 1
        assert KEY not in files[0].read_text()                        # ids only, never keys
        again = ModelCatalog(disk=True, cache_dir=tmp_path / "models").models(c)
    assert listings(emu) == 1
    assert "gpt-4o-mini" in {m.id for m in again}
    assert user_cache_dir({"XDG_CACHE_HOME": "/c"}, "linux") == Path("/c/aipk")
    assert user_cache_dir({"LOCALAPPDATA": "C:/L"}, "win32") == Path("C:/L/aipk/Cache")


def test_a_failed_listing_falls_back_to_the_cache_then_the_static_table(
        emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    catalog = ModelCatalog(ttl=10, clock=clock)
    with client(emu) as c:
        catalog.models(c)
        emu.require_api_key("sk-somebody-else")                      # listings now get 401
        clock.now += 60
        with caplog.at_level(logging.WARNING, logger="aipk.catalog"):
            stale = catalog.models(c)
        assert {m.extra["source"] for m in stale} == {"cache"}
        assert "using the cached list from 60 s ago" in caplog.text
        assert KEY not in caplog.text
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="aipk.catalog"):
            static = ModelCatalog().models(c)
    assert "using the plugin's static list" in caplog.text
    assert [m.id for m in static] == [m.id for m in default_registry().spec("openai").models]


def test_query_filters_on_capabilities_context_and_price() -> None:
    spec = default_registry().spec("openai")
    models = merge_models(None, spec)
    ids = [m.id for m in ModelQuery(tools=True, min_context=200_000,
                                    max_input_price=1.0).filter(models, {"openai": spec})]
    assert ids == ["gpt-4.1-mini"]
    assert [m.id for m in ModelQuery(reasoning=True).filter(models, {"openai": spec})] == \
        ["o3-mini"]
    unknown = aipk.ModelInfo(id="mystery", provider="openai")
    assert not ModelQuery(max_input_price=100).matches(unknown, spec)   # unknown price: no
    assert ModelQuery(text="MINI").matches(models[1], spec)


def _config(tmp_path: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CATALOG_KEY", KEY)
    path = tmp_path / "aipk.toml"
    path.write_text(f"""
[providers.openai]
api_key = "${{CATALOG_KEY}}"
base_url = "{emu.url('openai')}"

[[providers.openai.models]]
id = "gpt-4o-mini"
input_price = 0.1

[[providers.openai.models]]
id = "house-model"
context_window = 300000
tools = true
input_price = 0.2
output_price = 0.4

[catalog]
cache_dir = "{tmp_path / 'models'}"
""")
    path.chmod(0o600)
    return path


def test_models_command_searches_the_configured_providers(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, emu, monkeypatch)
    assert cli.main(["models", "--config", str(path), "--tools", "--min-context", "100000",
                     "--max-input-price", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_id = {(r["provider"], r["id"]): r for r in rows}
    assert by_id[("openai", "gpt-4o-mini")]["input_price"] == 0.1     # the config's override
    assert by_id[("openai", "house-model")]["source"] == "config"
    assert by_id[("openai", "gpt-4.1-mini")]["source"] == "live"
    assert ("gemini", "gemini-2.5-flash") in by_id                    # installed: static table
    assert all(r["tools"] and r["context_window"] >= 100_000 and r["input_price"] <= 1
               for r in rows)
    assert ("openai", "gpt-4o") not in by_id                          # 2.5 USD: too dear
    assert listings(emu) == 1
    assert list((tmp_path / "models").glob("openai-*.json"))          # cached on disk
    assert cli.main(["models", "openai", "--config", str(path), "--search", "house"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["PROVIDER", "MODEL", "CONTEXT", "OUTPUT", "IN", "$/M", "OUT",
                                "$/M", "CAPS", "SOURCE"]
    assert table[1].split() == ["openai", "house-model", "300,000", "-", "0.2", "0.4", "tvj-s",
                                "config"]
    assert listings(emu) == 1                                         # served from the cache


def test_models_command_without_a_key_warns_and_shows_the_static_table(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "openai", "--search", "o3"]) == 0
    captured = capsys.readouterr()
    assert "cannot list openai models live" in captured.err
    assert "OPENAI_API_KEY" in captured.err
    assert "o3-mini" in captured.out and "static" in captured.out

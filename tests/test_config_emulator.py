"""Clients and routers built from config files, end to end over real HTTP against the loopback
emulator (each provider's base_url points at it)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import aipk
from aipk.config import load_config
from aipk.errors import AllTargetsFailedError, ConfigurationError
from aipk_testkit.emulator import Emulator, Fault, Reply

USER = [aipk.Message.user("Hello there")]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith("AIPK_") and var not in {"AIPK_STRICT_PLUGINS", "AIPK_LOAD_PLUGINS"}:
            monkeypatch.delenv(var)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GROQ_API_KEY", "OPENAI_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("AIPK_TOKEN_DIR", str(tmp_path / "tokens"))


def config_file(tmp_path: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMU_URL", emu.url("openai"))
    monkeypatch.setenv("PRIMARY_KEY", "sk-primary")
    monkeypatch.setenv("POOL_KEY_1", "sk-pool-1")
    monkeypatch.setenv("POOL_KEY_2", "sk-pool-2")
    monkeypatch.setenv("ACME_TOKEN", "sk-acme")
    path = tmp_path / "aipk.toml"
    path.write_text("""
[providers.openai]
api_key = "${PRIMARY_KEY}"
base_url = "${EMU_URL}"
default_model = "gpt-4.1-mini"
headers = { X-Team = "research" }
timeout = { connect = 2, read = 5 }
max_retries = 1
options = { organization = "org-config" }

[providers.groq]
api_keys = ["${POOL_KEY_1}", "${POOL_KEY_2}"]
base_url = "${EMU_URL}"

[providers.acme]
protocol = "openai"
base_url = "${EMU_URL}"
api_key_env = "ACME_TOKEN"
default_model = "acme-large"
models = [{ id = "acme-large", context_window = 64000, tools = true, input_price = 0.5 }]

[routers.main]
targets = ["fast", "openai/gpt-4o-mini"]
cooldown = { rate_limit = 30 }
breaker = false

[aliases]
fast = "groq/llama-3.3-70b-versatile"
""", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_client_from_config_sends_the_files_settings(emu: Emulator, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    emu.require_api_key("sk-primary")
    emu.enqueue(Fault.status(500), Reply(text="configured"))
    with aipk.Client.from_config("openai", config=path, sleep=lambda s: None) as client:
        reply = client.chat(messages=USER)
    assert reply.text == "configured"
    sent = emu.requests[-1]
    assert sent.json()["model"] == "gpt-4.1-mini"              # default_model from the file
    assert sent.headers["x-team"] == "research"
    assert sent.headers["openai-organization"] == "org-config"
    assert len(emu.requests) == 2                               # max_retries = 1: one retry
    assert client.timeout.connect == 2.0 and client.timeout.read == 5.0


def test_explicit_arguments_beat_env_which_beats_the_file(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    emu.require_api_key("sk-explicit")
    with aipk.Client.from_config("openai", config=path, api_key="sk-explicit") as client:
        assert client.chat(messages=USER).text == "echo: Hello there"
    assert emu.requests[-1].headers["openai-organization"] == "org-env"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with aipk.Client.from_config("openai", config=path) as client:
        assert client.provider.base_url == "http://127.0.0.1:9/v1"
    with aipk.Client.from_config("openai", config=path, base_url=emu.url("openai")) as client:
        assert client.provider.base_url == emu.url("openai")


def test_found_config_file_and_key_pool(emu: Emulator, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    monkeypatch.setenv("AIPK_CONFIG", str(path))
    emu.require_api_keys("sk-pool-1", "sk-pool-2")
    with aipk.Client.from_config("groq") as client:
        for _ in range(2):
            client.chat(model="llama-3.3-70b-versatile", messages=USER)
    keys = {r.headers["authorization"] for r in emu.requests[-2:]}
    assert keys == {"Bearer sk-pool-1", "Bearer sk-pool-2"}     # round robin over the pool


def test_custom_provider_defined_by_config_alone(emu: Emulator, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    emu.require_api_key("sk-acme")
    with aipk.Client.from_config("acme", config=path) as client:
        assert client.provider.name == "acme"
        assert client.chat(messages=USER).text == "echo: Hello there"
        assert client.capabilities("acme-large").context_window == 64000
    assert emu.requests[-1].json()["model"] == "acme-large"


def test_async_client_from_config(emu: Emulator, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    emu.require_api_key("sk-primary")

    async def run() -> str:
        async with aipk.AsyncClient.from_config("openai", config=path) as client:
            assert isinstance(client, aipk.AsyncClient)
            parts = [t async for t in client.stream(messages=USER).text()]
            return "".join(parts)

    assert asyncio.run(run()) == "echo: Hello there"


def test_router_from_config_fails_over_and_closes_its_clients(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    for key in ("sk-pool-1", "sk-pool-2"):                     # groq's whole key pool
        emu.fail_key(key, Fault.status(429, retry_after=1))
    emu.enqueue(Reply(text="from openai"))
    with aipk.Router.from_config("main", config=path) as router:
        reply = router.chat(messages=USER)
        assert reply.text == "from openai"
        route = aipk.router.route_of(reply)
        assert route is not None
        assert route.tried == ("groq/llama-3.3-70b-versatile", "openai/gpt-4o-mini")
        assert router.breaker is None                            # breaker = false
        assert [r.json()["model"] for r in emu.requests][-1] == "gpt-4o-mini"
        assert {r.json()["model"] for r in emu.requests[:-1]} == {"llama-3.3-70b-versatile"}
        # the rate-limited target cools down for the file's 30 s, beyond the 1 s retry-after
        emu.enqueue(Fault.status(500))
        with pytest.raises(AllTargetsFailedError):
            router.chat(messages=USER)
        states = list(router._core.states)
        # the router is named after its entry: its totals live under that name in the model
        assert router.name == "main"
        totals = router.metrics_model.snapshot().routers["main"]
        assert (totals.requests, totals.successes, totals.errors) == (2, 1, 1)
    assert all(s.client is None for s in states)                # closed with the router


def test_async_router_from_config(emu: Emulator, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    for key in ("sk-pool-1", "sk-pool-2"):
        emu.fail_key(key, None)

    async def run() -> str:
        async with aipk.router.AsyncRouter.from_config("main", config=path) as router:
            return (await router.chat(messages=USER)).text

    assert asyncio.run(run()) == "echo: Hello there"
    assert emu.requests[-1].headers["authorization"] in {"Bearer sk-pool-1", "Bearer sk-pool-2"}


def test_unknown_entries_name_what_is_configured(emu: Emulator, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, emu, monkeypatch)
    config = load_config(path)
    with pytest.raises(ConfigurationError, match=r"no provider 'opneai'.*acme, groq, openai"):
        aipk.Client.from_config("opneai", config=config)
    with pytest.raises(ConfigurationError, match=r"no router 'mian'.*\(configured: main\)"):
        aipk.Router.from_config("mian", config=config)
    assert config.resolve_alias("fast") == ("groq", "llama-3.3-70b-versatile")


def test_oauth_entry_without_a_saved_login_says_to_log_in(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "aipk.toml"
    path.write_text(f'[providers.qwen]\noauth = true\nbase_url = "{emu.url("openai")}"\n')
    with pytest.raises(ConfigurationError, match="run: aipk login qwen"):
        aipk.Client.from_config("qwen", config=path)


def test_openrouter_router_table_from_config(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "aipk.toml"
    path.write_text(f"""
[providers.openrouter]
api_key = "sk-or-config"
base_url = "{emu.url("openai")}"
[providers.openrouter.options.router]
models = ["qwen/qwen3-coder:free", "openai/gpt-4o-mini"]
strategy = "round_robin"
""")
    path.chmod(0o600)  # a file holding a literal key
    with aipk.Client.from_config("openrouter", config=path) as client:
        client.chat(messages=USER)
        client.chat(messages=USER)
    first, second = (r.json() for r in emu.requests[-2:])
    assert first["models"] == ["qwen/qwen3-coder:free", "openai/gpt-4o-mini"]
    assert (first["model"], second["model"]) == ("qwen/qwen3-coder:free", "openai/gpt-4o-mini")


def test_a_misspelled_openrouter_router_strategy_is_a_config_problem(tmp_path: Path) -> None:
    from aipk.config import check_config

    path = tmp_path / "aipk.toml"
    path.write_text('[providers.openrouter.options.router]\nmodels = ["a/b"]\n'
                    'strategy = "round_robbin"\n')
    _, problems = check_config(path)
    assert len(problems) == 1, problems
    assert problems[0].path == "providers.openrouter.options.router"
    assert problems[0].message.startswith("strategy: 'round_robbin' is not one of 'failover'")
    assert "did you mean 'round_robin'?" in problems[0].message
    path.write_text('[providers.openrouter.options.router]\nmodel = ["a/b"]\n')
    _, problems = check_config(path)
    assert [p.message for p in problems] == ["unknown key 'model'; did you mean 'models'?"]

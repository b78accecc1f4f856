"""Config files read from a temporary directory with real environment variables: discovery,
parsing, expansion, strict structuring, and every error path, each naming its fix."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

import aipk
from aipk.config import ConfigWarning, check_config, default_paths, load_config, user_config_dir
from aipk.errors import ConfigFileError, ConfigurationError
from aipk.router._config import _config_kwargs


def write(tmp_path: Path, text: str, name: str = "aipk.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def problems_of(path: Path) -> list[str]:
    config, problems = check_config(path)
    assert config is None
    return [str(p) for p in problems]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith("AIPK_") and var not in {"AIPK_STRICT_PLUGINS", "AIPK_LOAD_PLUGINS"}:
            monkeypatch.delenv(var)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "GROQ_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_order_env_then_cwd_then_user_dir(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "xdg" / "aipk"
    user.mkdir(parents=True)
    write(user, '[aliases]\nwhere = "openai/user"\n')
    assert load_config().settings.aliases["where"] == "openai/user"
    write(tmp_path, '[aliases]\nwhere = "openai/cwd"\n')
    assert load_config().settings.aliases["where"] == "openai/cwd"
    explicit = write(tmp_path / "xdg", '[aliases]\nwhere = "openai/env"\n', "other.toml")
    monkeypatch.setenv("AIPK_CONFIG", str(explicit))
    assert load_config().settings.aliases["where"] == "openai/env"
    assert default_paths()[0] == explicit
    # an explicit path always wins
    assert load_config(tmp_path / "aipk.toml").settings.aliases["where"] == "openai/cwd"


def test_no_file_anywhere_is_an_empty_config() -> None:
    config = load_config()
    assert config.path is None
    assert config.settings.providers == {}


def test_aipk_config_pointing_nowhere_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("AIPK_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigFileError, match="fix or unset AIPK_CONFIG"):
        load_config()
    with pytest.raises(ConfigFileError, match="no config file at"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(("platform", "env", "expected"), [
    ("linux", {"XDG_CONFIG_HOME": "/x/cfg"}, Path("/x/cfg/aipk")),
    ("linux", {}, Path("~/.config/aipk").expanduser()),
    ("darwin", {}, Path("~/Library/Application Support/aipk").expanduser()),
    ("win32", {"APPDATA": "C:/Users/u/AppData/Roaming"},
     Path("C:/Users/u/AppData/Roaming/aipk")),
])
def test_user_config_dir_follows_the_platform(platform: str, env: dict[str, str],
                                              expected: Path) -> None:
    assert user_config_dir(env, platform) == expected


# -- syntax --------------------------------------------------------------------------------------


def test_invalid_toml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\napi_key = "x"\ntimeout = = 3\n')
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert f"{path}:3:" in str(info.value)
    assert "not valid TOML" in str(info.value)


def test_invalid_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  openai:\n    api_key: [unclosed\n", "aipk.yaml")
    with pytest.raises(ConfigFileError, match=rf"{path}:\d+:\d+: not valid YAML"):
        load_config(path)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "aliases:\n  a: openai/x\n  a: openai/y\n", "aipk.yaml")
    with pytest.raises(ConfigFileError, match=rf"{path}:3:3: duplicate key 'a'"):
        load_config(path)


def test_yaml_config_loads_with_origins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_KEY_FOR_TEST", "sk-yaml")
    path = write(tmp_path, "providers:\n  openai:\n    api_key: ${OPENAI_KEY_FOR_TEST}\n"
                           "    max_retries: 1\n", "aipk.yml")
    config = load_config(path)
    assert config.settings.providers["openai"].api_key == aipk.Secret("sk-yaml")
    assert config.document.origin(("providers", "openai", "api_key")) == \
        "aipk.yml:3 via $OPENAI_KEY_FOR_TEST"
    assert config.document.origin(("providers", "openai", "max_retries")) == "aipk.yml:4"


def test_not_utf8_is_an_error_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "aipk.toml"
    path.write_bytes(b'[aliases]\nx = "\xff"\n')
    with pytest.raises(ConfigFileError, match=r"aipk.toml:2: the file is not valid UTF-8"):
        load_config(path)


# -- expansion and keys -------------------------------------------------------------------------


def test_a_missing_variable_is_named_never_sent_empty(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_KEY_1", "gsk-1")
    monkeypatch.setenv("GROQ_KEY_2", "")
    path = write(tmp_path, '[providers.groq]\napi_keys = ["${GROQ_KEY_1}", "${GROQ_KEY_2}", '
                           '"${GROQ_KEY_3}"]\n')
    found = problems_of(path)
    assert ("providers.groq.api_keys[1]: empty after expanding ${GROQ_KEY_2}; set GROQ_KEY_2 "
            "(aipk.toml:2 via $GROQ_KEY_2)") in found
    assert "providers.groq.api_keys[2]: ${GROQ_KEY_3} is not set; set GROQ_KEY_3 " \
           "(aipk.toml:2)" in found
    assert len(found) == 2


def test_defaults_and_literal_dollars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_FOR_TEST", "research")
    path = write(tmp_path, '[providers.openai]\napi_key = "${NOPE_FOR_TEST:-sk-default}"\n'
                           'headers = { X-Team = "${TEAM_FOR_TEST}", X-Price = "$$5" }\n')
    entry = load_config(path).settings.providers["openai"]
    assert entry.api_key == aipk.Secret("sk-default")
    assert entry.headers == {"X-Team": "research", "X-Price": "$5"}


def test_strings_become_numbers_only_when_they_come_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIES_FOR_TEST", "4")
    path = write(tmp_path, '[providers.openai]\nmax_retries = "${RETRIES_FOR_TEST}"\n'
                           'timeout = "${TIMEOUT_FOR_TEST:-30}"\n')
    entry = load_config(path).settings.providers["openai"]
    assert entry.max_retries == 4
    assert entry.timeout is not None and entry.timeout.read == 30.0
    literal = write(tmp_path, '[providers.openai]\nmax_retries = "4"\n[catalog]\n'
                              'disk_cache = "false"\nttl = 2.5\n[routers.r]\n'
                              'targets = ["openai/gpt-4o"]\n'
                              'breaker = { failure_threshold = 2.5 }\n', "literal.toml")
    found = problems_of(literal)
    assert "providers.openai.max_retries: expected a whole number, got '4' (literal.toml:2)" \
        in found
    assert "catalog.disk_cache: expected true or false, got 'false' (literal.toml:4)" in found
    assert any(p.startswith("routers.r.breaker.failure_threshold: expected a whole number")
               for p in found)
    assert len(found) == 3


def test_aipk_env_overrides_beat_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPK_PROVIDERS__OPENAI__MAX_RETRIES", "7")
    path = write(tmp_path, '[providers.openai]\nmax_retries = 1\n')
    config = load_config(path)
    assert config.settings.providers["openai"].max_retries == 7
    assert config.document.origin(("providers", "openai", "max_retries")) == \
        "env AIPK_PROVIDERS__OPENAI__MAX_RETRIES"


# -- structure -------------------------------------------------------------------------------------


def test_every_problem_is_listed_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, """
[providers.openai]
api_kye = "${OPENAI_API_KEY:-x}"
timeout = "slow"

[providers.mistral]
api_key = "k"

[providers.acme]
protocol = "openai"

[routers.main]
targets = ["openai/gpt-4o", "nowhere/model", "fastest"]
strategy = "failovr"

[aliases]
fast = "groq/llama-3.3-70b-versatile"

[sate]
backend = "memcached"
""")
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    text = str(info.value)
    assert "providers.openai.api_kye: unknown key 'api_kye'; did you mean 'api_key'? " \
           "(aipk.toml:3 via $OPENAI_API_KEY)" in text
    assert "sate: unknown key 'sate'; did you mean 'state'?" in text
    assert "routers.main.targets[2]: 'fastest' is neither \"provider/model\" nor an alias; " \
           "did you mean 'fast'?" in text
    assert "expected a table" in text or "providers.openai.timeout" in text
    # structural problems stop before the plugin checks, so fix those and check again
    fixed = path.read_text().replace("api_kye", "api_key").replace('timeout = "slow"\n', "") \
        .replace('"fastest"', '"fast"').replace("[sate]", "[state]")
    path.write_text(fixed)
    found = problems_of(path)
    assert any(p.startswith("providers.mistral: provider 'mistral' is not installed")
               and "pip install aipk-mistral" in p for p in found)
    assert any(p.startswith("providers.acme.base_url: a custom provider needs base_url")
               for p in found)
    assert any(p.startswith("routers.main.targets[1].provider: no provider 'nowhere'")
               and "pip install aipk-nowhere" in p for p in found)
    assert any(p.startswith("routers.main.strategy: unknown strategy 'failovr'; did you mean "
                            "'failover'?") for p in found)
    assert any(p.startswith("state.backend: no state backend 'memcached' is installed") and
               "aipk.state_backends" in p for p in found)
    assert len(found) == 5


def test_check_raises_one_error_holding_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\nbase_url = "ftp://x"\nmax_retries = -1\n'
                           'retry = { jitter = 2.0 }\nlimits = { requests_per_minute = 0 }\n')
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    error = info.value
    assert isinstance(error, ConfigurationError)
    assert len(error.problems) == 4
    assert str(error).startswith(f"config {path}: 4 problems:")
    assert "must start with http:// or https://" in str(error)
    assert "retry.jitter: must be between 0 and 1, got 2.0" in str(error)


def test_custom_provider_with_unknown_protocol_names_the_package(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.acme]\nprotocol = "openaj"\nbase_url = "https://a/v1"\n')
    found = problems_of(path)
    assert len(found) == 1
    assert "no installed plugin speaks protocol 'openaj'; did you mean 'openai'?" in found[0]
    assert "pip install aipk-openai" in found[0]


def test_plugin_options_are_checked_against_the_plugins_schema(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai.options]\norganisation = "org-1"\n'
                           'stream_usage = "yes"\n')
    found = problems_of(path)
    assert any("unknown option 'organisation' for openai; did you mean 'organization'?" in p
               for p in found)
    assert any(p.startswith("providers.openai.options.stream_usage: expected true or false")
               for p in found)


@pytest.mark.parametrize(("provider", "good", "bad", "words"), [
    ("anthropic", 'beta = ["a", "b"]\nclaude_code = true\ndefault_max_tokens = 512\n'
                  'structured_output = "tool"', 'structured_output = "tools"',
     "'tools' is not one of 'output_config', 'tool'; did you mean 'tool'?"),
    ("gemini", 'project_id = "p-1"\nstream_framing = "json-array"\nburst = 3\n'
               'parameters_json_schema = true', 'stream_framing = "ndjson"',
     "'ndjson' is not one of 'sse', 'json-array'"),
    ("openrouter", 'referer = "https://example.com"\ntitle = "My app"\norganization = "o"',
     "refferer = \"x\"", "unknown option 'refferer' for openrouter; did you mean 'referer'?"),
    ("qwen", 'resource_url = "portal.qwen.ai"\nrequests_per_day = 100', "resource_url = 3",
     "resource_url"),
    ("openai", 'structured_output = "json_object"\nrequests_per_minute = 60',
     'structured_output = "json"', "is not one of 'json_schema', 'json_object'"),
])
def test_every_provider_plugin_declares_its_options(tmp_path: Path, provider: str, good: str,
                                                    bad: str, words: str) -> None:
    path = write(tmp_path, f"[providers.{provider}.options]\n{good}\n")
    config, problems = check_config(path)
    assert config is not None and problems == [], problems
    path = write(tmp_path, f"[providers.{provider}.options]\n{bad}\n")
    found = problems_of(path)
    assert len(found) == 1 and found[0].startswith(f"providers.{provider}.options.")
    assert words in found[0]


def test_a_misspelled_state_backend_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, 'state = { backend = "reddis", url = "redis://127.0.0.1:1/0" }\n')
    [problem] = problems_of(path)
    assert problem.startswith("state.backend: no state backend 'reddis' is installed")
    assert "installed: memory, redis); did you mean 'redis'? Otherwise install" in problem


def test_api_key_env_must_be_set_and_only_one_key_source(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\napi_key_env = "NOT_SET_FOR_TEST"\n'
                           'api_key = "${X_FOR_TEST:-k}"\n')
    found = problems_of(path)
    assert any("NOT_SET_FOR_TEST is not set; set NOT_SET_FOR_TEST" in p for p in found)
    assert any("set only one of api_key, api_key_env" in p for p in found)


def test_a_malformed_key_is_named_by_file_and_key_never_as_an_argument(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[providers.openai]\napi_key = "sk-caf\u00e9-secret"\n'
                           '[providers.groq]\napi_keys = ["gsk-good-key", "${BAD_KEY_FOR_TEST}"]\n')
    monkeypatch.setenv("BAD_KEY_FOR_TEST", "gsk-two\u00a0keys")
    found = problems_of(path)
    assert any(p.startswith("providers.openai.api_key: the key has a non-ASCII character at "
                            "character 7") and "write the key alone" in p for p in found)
    assert any(p.startswith("providers.groq.api_keys[1]: the key (from ${BAD_KEY_FOR_TEST}) "
                            "has a non-ASCII character")
               and "set BAD_KEY_FOR_TEST to the key alone" in p for p in found)
    with pytest.raises(ConfigFileError) as error:
        aipk.Client.from_config("openai", config=path)
    message = str(error.value)
    assert str(path) in message and "providers.openai.api_key" in message
    assert "api_key= argument" not in message and "sk-caf" not in message


def test_a_malformed_key_in_api_key_env_names_the_variable_and_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[providers.openai]\napi_key_env = "KEYS_FOR_TEST"\n')
    monkeypatch.setenv("KEYS_FOR_TEST", "sk-good-one, sk-bad\u00a0two")
    with pytest.raises(ConfigurationError) as error:
        aipk.Client.from_config("openai", config=path)
    message = str(error.value)
    assert (f"the environment variable KEYS_FOR_TEST ({path}, providers.openai.api_key_env) "
            "has a non-ASCII character") in message
    assert "set KEYS_FOR_TEST to the key alone" in message
    assert "api_key= argument" not in message and "sk-bad" not in message


# -- permissions ---------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX permission bits")
def test_literal_secret_in_a_readable_file_warns_with_chmod(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\napi_key = "sk-literal-secret"\n')
    path.chmod(0o644)
    with pytest.warns(ConfigWarning) as record:
        load_config(path)
    message = str(record[0].message)
    assert f"chmod 600 {path}" in message
    assert "providers.openai.api_key" in message
    assert "sk-literal-secret" not in message
    path.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(path)
    # env references are not literal secrets: no warning even when readable
    path.write_text('[providers.openai]\napi_key = "${K_FOR_TEST:-x}"\n')
    path.chmod(0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(path)


def test_secrets_never_show_in_errors_or_reprs(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_FOR_TEST", "sk-top-secret")
    path = write(tmp_path, '[providers.openai]\napi_key = "${SECRET_FOR_TEST}"\n'
                           'base_url = "nope"\n')
    _, problems = check_config(path)
    assert problems and "sk-top-secret" not in " ".join(map(str, problems))
    path.write_text('[providers.openai]\napi_key = "${SECRET_FOR_TEST}"\n')
    config = load_config(path)
    assert "sk-top-secret" not in repr(config.settings)




def test_router_settings_become_router_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, '[routers.r]\ntargets = ["openai/gpt-4o-mini", { provider = '
                           '"openai", model = "gpt-4o", name = "big", input_price = 9.0 }]\n'
                           'strategy = "round_robin"\nmax_wait = 2\ncooldown = false\n'
                           'breaker = { failure_threshold = 2 }\n'
                           'fallback_on_context_window = { "gpt-4o-mini" = "gpt-4.1-mini" }\n')
    config = load_config(path)
    kwargs = _config_kwargs(config, "r", asynchronous=False)
    assert kwargs["strategy"] == "round_robin"
    assert kwargs["max_wait"] == 2.0
    assert kwargs["cooldown"] is None
    assert kwargs["breaker"].failure_threshold == 2
    assert kwargs["fallback_on_context_window"] == {"gpt-4o-mini": "gpt-4.1-mini"}
    names = [t.name for t in kwargs["targets"]]
    assert names == ["openai/gpt-4o-mini", "big"]
    assert kwargs["targets"][1].input_price == 9.0
    with aipk.Router.from_config("r", config=config) as router:
        assert [t.name for t in router.targets] == names


def test_show_without_a_file_lists_the_defaults() -> None:
    from aipk.config import show_rows

    rows = {key: (value, origin) for key, value, origin in show_rows(load_config())}
    assert rows["catalog.ttl"] == ("86400.0", "default")
    assert rows["state.backend"] == ("memory", "default")


def test_a_timeout_table_sets_the_total(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\napi_key = "x"\n'
                           'timeout = { read = 60, total = 90 }\n')
    with aipk.Client.from_config("openai", config=path) as client:
        assert client.timeout == aipk.Timeout(read=60, total=90)
    bad = write(tmp_path, '[providers.openai]\napi_key = "x"\ntimeout = { total = -1 }\n',
                "bad.toml")
    assert any("providers.openai.timeout.total" in problem and "positive" in problem
               for problem in problems_of(bad))

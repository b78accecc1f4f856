"""Logins over real HTTP against the emulator's authorization server (127.0.0.1 only): each
flow kind through :func:`aipk.credentials.login`, and ``aipk login`` / ``aipk logout`` end to
end through ``main([...])`` with an in-process plugin."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

pytest.importorskip("aipk_testkit")  # the emulator: absent when aipk-core is tested alone

from aipk import Provider, ProviderSpec, hookimpl
from aipk.cli import main
from aipk.credentials import (
    CredentialError,
    DeviceAuthorization,
    FileTokenStore,
    KeyPool,
    LoginFlow,
    OAuthCredential,
    OAuthEndpoints,
    api_key_credential,
    login,
)
from aipk.errors import AuthErrorCode
from aipk.registry import isolated_registry
from aipk_testkit.emulator import Emulator
from aipk_testkit.emulator._oauth import OAuthHandler, oauth_server

REAL = "https://auth.demo.example"  # never reached: a loopback base_url rebases every flow


def _endpoints(provider: str, **kw: object) -> OAuthEndpoints:
    return OAuthEndpoints(provider=provider, client_id="demo-cli", token_url=f"{REAL}/token",
                          authorize_url=f"{REAL}/authorize",
                          device_authorization_url=f"{REAL}/device", scopes=("chat",),
                          **kw)  # type: ignore[arg-type]


CODE = LoginFlow(kind="authorization_code", endpoints=_endpoints("demo-code"), port=1455,
                 redirect_host="localhost")
DEVICE = LoginFlow(kind="device_code", endpoints=_endpoints("demo-device"), pkce=True)
KEYS = LoginFlow(kind="key_exchange", endpoints=_endpoints("demo-keys"))
FLOWS = {flow.provider: flow for flow in (CODE, DEVICE, KEYS)}


class DemoPlugin:
    @hookimpl
    def aipk_providers(self) -> Sequence[ProviderSpec]:
        return [ProviderSpec(name=name, protocol="demo", default_base_url="https://x.example",
                             env_vars=(f"{name.upper().replace('-', '_')}_API_KEY",))
                for name in [*FLOWS, "demo-none"]]

    @hookimpl
    def aipk_login_flow(self, provider: Provider) -> LoginFlow | None:
        return FLOWS.get(provider.name)


@pytest.fixture
def oauth(aipk_emulator: Emulator) -> OAuthHandler:
    handler = oauth_server(aipk_emulator)
    handler.reset()
    handler.device_interval = 0.01
    return handler


@pytest.fixture
def base_url(aipk_emulator: Emulator) -> str:
    return aipk_emulator.url("openai")


def browser(url: str) -> bool:
    """A user who signs in at once: follow the redirects to the loopback callback."""
    return httpx.get(url, follow_redirects=True, timeout=5).status_code == 200


def _queries(emu: Emulator, path: str) -> list[dict[str, str]]:
    return [dict(parse_qsl(r.query)) for r in emu.requests if r.path == path]


def _bodies(emu: Emulator, path: str) -> list[bytes]:
    return [r.body for r in emu.requests if r.path == path]


def _url_printed(capsys: pytest.CaptureFixture[str], future: Future[object]) -> str:
    """Wait for the 'Open this address' line a --no-browser login prints to stderr."""
    deadline = time.monotonic() + 5
    seen = ""
    while time.monotonic() < deadline and not future.done():
        seen += capsys.readouterr().err
        for line in seen.splitlines():
            if line.startswith("Open this address to sign in: "):
                return line.split(": ", 1)[1]
        time.sleep(0.01)
    raise AssertionError(f"no sign-in address printed; stderr so far: {seen!r}")


# -- login(): each kind --------------------------------------------------------------------

def test_authorization_code_login_over_the_loopback_callback(
        aipk_emulator: Emulator, oauth: OAuthHandler, base_url: str) -> None:
    cred = login(CODE, base_url=base_url, open_browser=browser, timeout=5,
                 credential_id="work")
    assert cred.id == "work" and cred.refresh_token is not None
    assert oauth.access_token_valid(cred.access_token.reveal())
    assert oauth.refresh_token_state(cred.refresh_token.reveal()) == "active"
    assert oauth.grants["authorization_code"] == 1
    (query,) = _queries(aipk_emulator, "/oauth/authorize")
    assert query["client_id"] == "demo-cli" and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"].startswith("http://127.0.0.1:")  # rebased: any free port
    assert not query["redirect_uri"].startswith("http://127.0.0.1:1455/")


def test_without_a_browser_the_address_is_printed(
        oauth: OAuthHandler, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(login, CODE, base_url=base_url, open_browser=None, timeout=5)
        assert browser(_url_printed(capsys, future))
        cred = future.result(10)
    assert oauth.access_token_valid(cred.access_token.reveal())


def test_a_browser_that_cannot_open_falls_back_to_printing(
        oauth: OAuthHandler, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(login, CODE, base_url=base_url, open_browser=lambda url: False,
                             timeout=5)
        assert browser(_url_printed(capsys, future))
        assert oauth.access_token_valid(future.result(10).access_token.reveal())


def test_wrong_state_is_refused_before_any_exchange(oauth: OAuthHandler, base_url: str) -> None:
    oauth.send_wrong_state("forged")
    with pytest.raises(CredentialError, match="start the login again") as info:
        login(CODE, base_url=base_url, open_browser=browser, timeout=5)
    assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED
    assert oauth.grants["authorization_code"] == 0


def test_no_callback_within_the_timeout(oauth: OAuthHandler, base_url: str) -> None:
    with pytest.raises(CredentialError, match=r"no sign-in arrived within 0.2s"):
        login(CODE, base_url=base_url, open_browser=lambda url: True, timeout=0.2)


def test_a_busy_callback_port_is_reported_with_the_fix() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        flow = LoginFlow(kind="authorization_code", endpoints=CODE.endpoints,
                         port=busy.getsockname()[1])
        with pytest.raises(CredentialError, match="stop the other login") as info:
            login(flow, open_browser=browser, timeout=1)
    assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED


def test_device_login_with_pkce_keeps_resource_url(
        aipk_emulator: Emulator, oauth: OAuthHandler, base_url: str) -> None:
    oauth.script_device("authorization_pending", "authorization_pending")
    oauth.token_extra = {"resource_url": "portal.qwen.ai"}
    shown: list[DeviceAuthorization] = []
    cred = login(DEVICE, base_url=base_url, show=shown.append, credential_id="laptop")
    assert oauth.access_token_valid(cred.access_token.reveal())
    assert dict(cred.extra) == {"resource_url": "portal.qwen.ai"}
    assert len(shown) == 1 and shown[0].user_code
    (start,) = _bodies(aipk_emulator, "/oauth/device/code")
    form = dict(parse_qsl(start.decode()))
    assert form["code_challenge_method"] == "S256" and form["code_challenge"]
    polls = [dict(parse_qsl(b.decode())) for b in _bodies(aipk_emulator, "/oauth/token")]
    assert len(polls) == 3 and all(p["code_verifier"] for p in polls)


def test_device_login_denied(oauth: OAuthHandler, base_url: str) -> None:
    oauth.script_device(outcome="deny")
    with pytest.raises(CredentialError, match="denied") as info:
        login(DEVICE, base_url=base_url, show=lambda d: None)
    assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED


def test_key_exchange_returns_a_permanent_key_for_a_key_pool(
        aipk_emulator: Emulator, oauth: OAuthHandler, base_url: str) -> None:
    result = login(KEYS, base_url=base_url, open_browser=browser, timeout=5,
                   credential_id="laptop")
    key = result.access_token.reveal()
    assert oauth.key_valid(key)
    assert (result.refresh_token, result.expires_at) == (None, None)
    assert key not in repr(result)
    (query,) = _queries(aipk_emulator, "/oauth/auth")
    assert query["callback_url"].startswith("http://127.0.0.1:")
    assert query["code_challenge_method"] == "S256"
    (body,) = _bodies(aipk_emulator, "/oauth/auth/keys")
    sent = json.loads(body)
    assert set(sent) == {"code", "code_verifier", "code_challenge_method"}
    pool = KeyPool.from_keys("demo-keys", {"old": "sk-old"})
    pool.add(api_key_credential(result))
    assert {pool.acquire().id, pool.acquire().id} == {"old", "laptop"}
    assert pool.get("laptop").secret == result.access_token


def test_key_exchange_denied_and_unavailable(oauth: OAuthHandler, base_url: str) -> None:
    oauth.deny_authorization("access_denied")
    with pytest.raises(CredentialError, match="access_denied") as info:
        login(KEYS, base_url=base_url, open_browser=browser, timeout=5)
    assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED
    oauth.deny_authorization(None)
    oauth.fail_token_requests(503)
    with pytest.raises(CredentialError, match="retry later") as info:
        login(KEYS, base_url=base_url, open_browser=browser, timeout=5)
    assert info.value.auth_code is AuthErrorCode.PROVIDER_UNAVAILABLE
    assert info.value.retryable


def test_explicit_oauth_url_wins(aipk_emulator: Emulator, oauth: OAuthHandler) -> None:
    cred = login(CODE, base_url="https://api.demo.example/v1",
                 oauth_url=aipk_emulator.base_url + "/oauth", open_browser=browser, timeout=5)
    assert oauth.access_token_valid(cred.access_token.reveal())


# -- aipk login / aipk logout --------------------------------------------------------------

@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The CLI with only DemoPlugin installed, tokens under tmp_path, a browser that signs in."""
    monkeypatch.setenv("AIPK_TOKEN_DIR", str(tmp_path / "tokens"))
    monkeypatch.setattr("webbrowser.open", browser)
    with isolated_registry([DemoPlugin()]):
        yield tmp_path / "tokens"


def _no_secret(text: str, cred: OAuthCredential) -> None:
    for secret in (cred.access_token, cred.refresh_token):
        if secret is not None:
            assert secret.reveal() not in text


def test_cli_login_writes_a_private_token_file(
        cli: Path, oauth: OAuthHandler, base_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.json"
    assert main(["login", "demo-code", "--base-url", base_url, "--token-file", str(path),
                 "--id", "work"]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cred = FileTokenStore(path).load("work")
    assert cred is not None and oauth.access_token_valid(cred.access_token.reveal())
    out = capsys.readouterr()
    assert "Logged in to demo-code" in out.out and str(path) in out.out
    _no_secret(out.out + out.err, cred)


def test_cli_default_token_file_and_device_flow(
        cli: Path, oauth: OAuthHandler, base_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "demo-device", "--base-url", base_url]) == 0
    path = cli / "demo-device.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cred = FileTokenStore(path).load("default")
    assert cred is not None and oauth.access_token_valid(cred.access_token.reveal())
    out = capsys.readouterr()
    assert "enter the code" in out.err
    _no_secret(out.out + out.err, cred)


def test_cli_no_browser_prints_the_address(
        cli: Path, oauth: OAuthHandler, base_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def forbidden(url: str) -> bool:
        raise AssertionError("--no-browser opened a browser")

    monkeypatch.setattr("webbrowser.open", forbidden)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(main, ["login", "demo-code", "--base-url", base_url,
                                    "--no-browser", "--timeout", "5"])
        assert browser(_url_printed(capsys, future))
        assert future.result(10) == 0
    assert FileTokenStore(cli / "demo-code.json").list_ids() == ["default"]


def test_cli_key_exchange_saves_the_key(cli: Path, oauth: OAuthHandler, base_url: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "demo-keys", "--base-url", base_url, "--id", "k"]) == 0
    saved = FileTokenStore(cli / "demo-keys.json").load("k")
    assert saved is not None and oauth.key_valid(saved.access_token.reveal())
    assert api_key_credential(saved).kind == "api_key"
    out = capsys.readouterr().out
    assert "saved an API key" in out and saved.access_token.reveal() not in out


@pytest.mark.parametrize(("argv", "message"), [
    (["login", "demo-none"], "provider 'demo-none' has no login flow; set DEMO_NONE_API_KEY "
                             "instead"),
    (["login", "nope"], "demo-code"),  # UnknownProviderError lists what is installed
])
def test_cli_login_errors_name_the_fix(cli: Path, argv: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not cli.exists()


def test_cli_failed_login_saves_nothing(cli: Path, oauth: OAuthHandler, base_url: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    oauth.deny_authorization("access_denied")
    assert main(["login", "demo-code", "--base-url", base_url, "--timeout", "5"]) == 1
    assert "start the login again" in capsys.readouterr().err
    assert not (cli / "demo-code.json").exists()


def test_cli_logout(cli: Path, oauth: OAuthHandler, base_url: str,
                   capsys: pytest.CaptureFixture[str]) -> None:
    for cid in ("a", "b"):
        assert main(["login", "demo-device", "--base-url", base_url, "--id", cid]) == 0
    assert main(["logout", "demo-device", "--id", "a"]) == 0
    assert FileTokenStore(cli / "demo-device.json").list_ids() == ["b"]
    capsys.readouterr()
    assert main(["logout", "demo-device", "--id", "a"]) == 1
    assert "no credential 'a'" in capsys.readouterr().err
    assert main(["logout", "demo-code"]) == 1
    assert "saved: none" in capsys.readouterr().err


def test_login_from_two_threads_keeps_both(cli: Path, oauth: OAuthHandler,
                                           base_url: str) -> None:
    results: list[int] = []

    def run(cid: str) -> None:
        results.append(main(["login", "demo-device", "--base-url", base_url, "--id", cid]))

    threads = [threading.Thread(target=run, args=(cid,)) for cid in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [0, 0]
    assert sorted(FileTokenStore(cli / "demo-device.json").list_ids()) == ["x", "y"]

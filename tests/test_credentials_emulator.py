"""OAuth flows over real HTTP against the emulator's authorization server (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import attrs
import httpx
import pytest

from aipk import Secret
from aipk.credentials import (
    PKCE,
    AuthorizationRequest,
    CredentialError,
    DeviceAuthorization,
    FileTokenStore,
    OAuthClient,
    OAuthCredential,
    OAuthEndpoints,
    OAuthManager,
)
from aipk.errors import AuthErrorCode
from aipk_testkit.emulator import Emulator
from aipk_testkit.emulator._oauth import OAuthHandler, oauth_server

LOGIN_HINT = "run: aipk login demo"


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def oauth(server: Emulator) -> OAuthHandler:
    handler = oauth_server(server)
    handler.reset()
    return handler


@pytest.fixture
def endpoints(server: Emulator) -> OAuthEndpoints:
    base = server.base_url + "/oauth"
    return OAuthEndpoints(provider="demo", client_id="demo-cli", token_url=base + "/token",
                          authorize_url=base + "/authorize",
                          device_authorization_url=base + "/device/code",
                          scopes=("chat", "offline"))


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.append(seconds)


class FakeMonotonic:
    """Advances only when the flow sleeps."""

    def __init__(self, sleeps: Sleeps) -> None:
        self.sleeps = sleeps

    def __call__(self) -> float:
        return sum(self.sleeps)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(endpoints: OAuthEndpoints, sleeps: Sleeps) -> OAuthClient:
    return OAuthClient(endpoints, sleep=sleeps, async_sleep=sleeps.asleep,
                       monotonic=FakeMonotonic(sleeps), login_hint=LOGIN_HINT)


def browser(url: str) -> bool:
    """A user who signs in at once: follow the redirect to the loopback callback."""
    return httpx.get(url, follow_redirects=True, timeout=5).status_code == 200


def assert_no_secret(error: BaseException, *secrets: str | Secret | None) -> None:
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            assert value not in str(error)
            assert value not in repr(error)


# -- authorization code + PKCE --------------------------------------------------------------

def test_browser_login_full_loop(client: OAuthClient, oauth: OAuthHandler) -> None:
    cred = client.login(open_browser=browser, timeout=5, credential_id="work")
    assert cred.id == "work"
    assert oauth.access_token_valid(cred.access_token.reveal())
    assert cred.refresh_token is not None
    assert oauth.refresh_token_state(cred.refresh_token.reveal()) == "active"
    assert cred.scopes == ("chat", "offline")
    assert cred.expires_at is not None
    assert oauth.grants["authorization_code"] == 1


def test_async_browser_login(client: OAuthClient, oauth: OAuthHandler) -> None:
    async def open_browser(url: str) -> bool:
        async with httpx.AsyncClient() as http:
            return (await http.get(url, follow_redirects=True)).status_code == 200

    cred = asyncio.run(client.alogin(open_browser=open_browser, timeout=5))
    assert oauth.access_token_valid(cred.access_token.reveal())


def test_wrong_state_in_the_callback_is_rejected_before_any_exchange(
        client: OAuthClient, oauth: OAuthHandler) -> None:
    oauth.send_wrong_state("attacker-state")
    with pytest.raises(CredentialError) as info:
        client.login(open_browser=browser, timeout=5)
    error = info.value
    assert error.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED
    assert not error.retryable
    assert "start the login again" in str(error)
    assert oauth.grants["authorization_code"] == 0


def test_denied_authorization(client: OAuthClient, oauth: OAuthHandler) -> None:
    oauth.deny_authorization("access_denied")
    with pytest.raises(CredentialError, match="access_denied") as info:
        client.login(open_browser=browser, timeout=5)
    assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED


def _authorize(client: OAuthClient, redirect: str = "http://127.0.0.1:9/cb"
               ) -> tuple[AuthorizationRequest, dict[str, str]]:
    request = client.authorization_request(redirect)
    answer = httpx.get(request.url, follow_redirects=False)
    assert answer.status_code == 302
    return request, dict(parse_qsl(urlsplit(answer.headers["location"]).query))


def test_pkce_verifier_mismatch_and_code_reuse_are_refused(client: OAuthClient,
                                                           oauth: OAuthHandler) -> None:
    request, params = _authorize(client)
    forged = attrs.evolve(request, pkce=PKCE.generate())
    with pytest.raises(CredentialError, match="start the login again") as info:
        client.complete(forged, params)
    assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED
    assert info.value.status == 400
    assert_no_secret(info.value, params["code"])
    with pytest.raises(CredentialError, match="already used"):
        client.complete(request, params)


def test_json_token_requests(endpoints: OAuthEndpoints, oauth: OAuthHandler) -> None:
    client = OAuthClient(attrs.evolve(endpoints, token_format="json",
                                      extra_headers={"anthropic-beta": "oauth-2025-04-20"}))
    request, params = _authorize(client)
    cred = client.complete(request, params)
    assert oauth.access_token_valid(cred.access_token.reveal())


def test_unknown_client_is_a_configuration_error(client: OAuthClient,
                                                 oauth: OAuthHandler) -> None:
    oauth.required_client_id = "someone-else"
    request, params = _authorize(client)
    with pytest.raises(CredentialError, match="client id 'demo-cli'") as info:
        client.complete(request, params)
    assert info.value.auth_code is AuthErrorCode.INVALID_CONFIG


# -- refresh --------------------------------------------------------------------------------

def seeded(oauth: OAuthHandler, cid: str = "default") -> OAuthCredential:
    data = oauth.issue()
    return OAuthCredential(id=cid, access_token=data["access_token"],
                           refresh_token=data["refresh_token"], expires_at=0.0)


def test_refresh_rotates_the_refresh_token(client: OAuthClient, oauth: OAuthHandler) -> None:
    old = seeded(oauth)
    new = client.refresh(old)
    assert new.refresh_token is not None and old.refresh_token is not None
    assert new.refresh_token != old.refresh_token
    assert oauth.refresh_token_state(old.refresh_token.reveal()) == "rotated"
    assert oauth.access_token_valid(new.access_token.reveal())
    with pytest.raises(CredentialError) as info:
        client.refresh(old)  # the rotated-away token no longer works
    error = info.value
    assert error.auth_code is AuthErrorCode.INVALID_CREDENTIALS
    assert not error.retryable
    assert LOGIN_HINT in str(error)
    assert_no_secret(error, old.refresh_token, old.access_token)


def test_refresh_without_rotation_keeps_the_refresh_token(client: OAuthClient,
                                                          oauth: OAuthHandler) -> None:
    oauth.rotate_refresh_tokens = False
    old = seeded(oauth)
    assert client.refresh(old).refresh_token == old.refresh_token
    assert asyncio.run(client.arefresh(old)).refresh_token == old.refresh_token


def test_revoked_refresh_token_tells_the_user_to_log_in_again(client: OAuthClient,
                                                             oauth: OAuthHandler) -> None:
    old = seeded(oauth)
    oauth.revoke()
    with pytest.raises(CredentialError) as info:
        asyncio.run(client.arefresh(old))
    assert info.value.auth_code is AuthErrorCode.INVALID_CREDENTIALS
    assert "revoked" in str(info.value)
    assert LOGIN_HINT in str(info.value)
    assert_no_secret(info.value, old.refresh_token)


def test_token_endpoint_outage_is_retryable(client: OAuthClient, oauth: OAuthHandler) -> None:
    oauth.fail_token_requests(503)
    with pytest.raises(CredentialError, match="retry later") as info:
        client.refresh(seeded(oauth))
    assert info.value.auth_code is AuthErrorCode.REFRESH_FAILED
    assert info.value.retryable
    assert info.value.status == 503


def test_unreachable_token_endpoint(endpoints: OAuthEndpoints) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OAuthClient(attrs.evolve(endpoints, token_url=f"http://127.0.0.1:{port}/token"))
    with pytest.raises(CredentialError, match="could not reach") as info:
        client.refresh(OAuthCredential(access_token="a-token", refresh_token="r-token"))
    assert info.value.auth_code is AuthErrorCode.REFRESH_FAILED
    assert str(info.value).startswith("[demo] ")


# -- device authorization grant -------------------------------------------------------------

def test_device_flow_with_pending_and_slow_down(client: OAuthClient, oauth: OAuthHandler,
                                                sleeps: Sleeps) -> None:
    oauth.script_device("authorization_pending", "authorization_pending", "slow_down")
    shown: list[DeviceAuthorization] = []
    cred = client.device_login(show=shown.append, credential_id="laptop")
    assert shown[0].user_code
    assert shown[0].verification_uri == "https://example.invalid/device"
    assert sleeps == [5.0, 5.0, 5.0, 10.0]  # +5 s after slow_down
    assert cred.id == "laptop"
    assert oauth.access_token_valid(cred.access_token.reveal())
    assert shown[0].device_code.reveal() not in repr(shown[0])


def test_async_device_flow_with_pkce(client: OAuthClient, oauth: OAuthHandler,
                                     sleeps: Sleeps) -> None:
    oauth.script_device("authorization_pending")
    cred = asyncio.run(client.adevice_login(show=lambda d: None, pkce=True))
    assert oauth.access_token_valid(cred.access_token.reveal())
    assert sleeps == [5.0, 5.0]


@pytest.mark.parametrize(("outcome", "message"), [
    ("deny", "denied"), ("expire", "expired before the sign-in was approved"),
])
def test_device_flow_denied_or_expired(client: OAuthClient, oauth: OAuthHandler,
                                       outcome: str, message: str) -> None:
    oauth.script_device("authorization_pending", outcome=outcome)  # type: ignore[arg-type]
    with pytest.raises(CredentialError, match=message) as info:
        client.device_login(show=lambda d: None)
    assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED
    assert "run the login again" in str(info.value)


def test_device_code_lifetime_bounds_the_polling(client: OAuthClient, oauth: OAuthHandler,
                                                 sleeps: Sleeps) -> None:
    oauth.device_expires_in = 12.0
    oauth.script_device(*["authorization_pending"] * 10)
    with pytest.raises(CredentialError, match="expired"):
        client.device_login(show=lambda d: None)
    assert sleeps == [5.0, 5.0]
    assert oauth.grants["urn:ietf:params:oauth:grant-type:device_code"] == 2


# -- the manager over real HTTP, with a file store -----------------------------------------

def test_manager_refreshes_persists_and_a_second_process_adopts(
        client: OAuthClient, oauth: OAuthHandler, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json", login_hint=LOGIN_HINT)
    first_login = client.login(open_browser=browser, timeout=5, credential_id="me")
    store.save(attrs.evolve(first_login, expires_at=0.0))  # pretend it expired
    saved: list[OAuthCredential] = []
    one = OAuthManager.from_store("demo", store, refresh=client.refresh,
                                  arefresh=client.arefresh, on_refresh=saved.append)
    two = OAuthManager.from_store("demo", store, refresh=client.refresh)
    fresh = one.acquire()
    assert fresh.secret is not None
    assert oauth.access_token_valid(fresh.secret.reveal())
    on_disk = json.loads((tmp_path / "tokens.json").read_text())["credentials"]["me"]
    assert on_disk["access_token"] == fresh.secret.reveal()
    assert first_login.refresh_token is not None
    assert on_disk["refresh_token"] != first_login.refresh_token.reveal()  # rotation saved
    assert [c.access_token for c in saved] == [fresh.secret]
    assert two.acquire() == fresh  # adopted from the file: no second refresh
    assert oauth.grants["refresh_token"] == 1


def test_manager_with_revoked_credential_fails_with_login_advice(
        client: OAuthClient, oauth: OAuthHandler) -> None:
    mgr = OAuthManager("demo", [seeded(oauth, "a"), seeded(oauth, "b")],
                       refresh=client.refresh, arefresh=client.arefresh,
                       login_hint=LOGIN_HINT)
    oauth.revoke()
    with pytest.raises(CredentialError) as info:
        asyncio.run(mgr.aacquire())
    assert info.value.auth_code is AuthErrorCode.INVALID_CREDENTIALS
    assert LOGIN_HINT in str(info.value)
    assert oauth.grants["refresh_token"] == 2  # each account tried once, then given up
    assert mgr.health_summary().available == 0

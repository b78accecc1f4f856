"""PKCE, state and authorization URLs (no network); the flows over HTTP are in
tests/test_credentials_emulator.py."""

from __future__ import annotations

import base64
import hmac
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk.credentials import (
    PKCE,
    CredentialError,
    LoopbackServer,
    OAuthClient,
    OAuthEndpoints,
    check_state,
    new_state,
    pkce_challenge,
)
from aipk.errors import AuthErrorCode

ENDPOINTS = OAuthEndpoints(provider="demo", client_id="client-1",
                           token_url="https://auth.example/token",
                           authorize_url="https://auth.example/authorize?prompt=login",
                           scopes=("read", "write"), client_secret="shh-client-secret",
                           extra_authorize_params={"audience": "api"})


def test_rfc7636_appendix_b_vector() -> None:
    # The RFC's octets base64url-encode to "...-mB92..." (a copy with "-mJ92" and challenge
    # "E9Melhoa2OwvFrEXXc7fj..." circulates; that pair is not the RFC's and does not hash).
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    octets = bytes([116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
                    22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121])
    assert base64.urlsafe_b64encode(octets).rstrip(b"=").decode() == verifier
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert PKCE.generate(verifier).challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_generated_pkce_pairs_are_valid_and_distinct() -> None:
    first, second = PKCE.generate(), PKCE.generate()
    verifier = first.verifier.reveal()
    assert 43 <= len(verifier) <= 128
    assert first.challenge == pkce_challenge(verifier)
    assert first.verifier != second.verifier
    assert first.method == "S256"
    assert verifier not in repr(first)


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "has spaces" * 5, "é" * 50])
def test_invalid_verifiers_are_rejected(verifier: str) -> None:
    with pytest.raises(ValueError, match="43 to 128"):
        PKCE.generate(verifier)


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~",
               min_size=43, max_size=128))
def test_challenge_is_43_urlsafe_chars_without_padding(verifier: str) -> None:
    challenge = PKCE.generate(verifier).challenge
    assert len(challenge) == 43
    assert "=" not in challenge


def test_state_is_random_and_checked_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    state = new_state()
    assert len(state) >= 43
    assert state != new_state()
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    check_state(state, state)
    assert calls == [(state.encode(), state.encode())]
    for wrong in ("other", "", None):
        with pytest.raises(CredentialError) as info:
            check_state(state, wrong, provider="demo")
        assert info.value.auth_code is AuthErrorCode.OAUTH_FLOW_FAILED
        assert "start the login again" in str(info.value)
        assert str(info.value).startswith("[demo] ")


def test_authorization_request_url() -> None:
    client = OAuthClient(ENDPOINTS)
    request = client.authorization_request("http://127.0.0.1:5555/callback")
    parts = urlsplit(request.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "auth.example"
    assert query == {
        "prompt": "login", "response_type": "code", "client_id": "client-1",
        "redirect_uri": "http://127.0.0.1:5555/callback", "state": request.state,
        "code_challenge": request.pkce.challenge, "code_challenge_method": "S256",
        "scope": "read write", "audience": "api",
    }
    assert "shh-client-secret" not in request.url
    assert request.state not in repr(request)
    assert request.pkce.verifier.reveal() not in repr(request)
    assert "shh-client-secret" not in repr(ENDPOINTS)
    assert request.scopes == ("read", "write")


def test_flows_need_their_endpoints() -> None:
    bare = OAuthClient(OAuthEndpoints(provider="demo", client_id="c", token_url="https://t"))
    with pytest.raises(CredentialError, match="authorize_url") as info:
        bare.authorization_request("http://127.0.0.1/cb")
    assert info.value.auth_code is AuthErrorCode.INVALID_CONFIG
    with pytest.raises(CredentialError, match="device_authorization_url"):
        bare.start_device()


def test_loopback_server_catches_the_redirect_and_ignores_other_paths() -> None:
    with LoopbackServer("/cb") as server:
        assert server.redirect_uri == f"http://127.0.0.1:{server.port}/cb"
        assert httpx.get(f"http://127.0.0.1:{server.port}/favicon.ico").status_code == 404
        page = httpx.get(server.redirect_uri + "?code=abc&state=xyz")
        assert page.status_code == 200
        assert "Signed in" in page.text
        assert "abc" not in page.text
        httpx.get(server.redirect_uri + "?code=second&state=later")
        assert server.wait(1.0) == {"code": "abc", "state": "xyz"}  # the first one wins


def test_loopback_server_times_out_with_advice() -> None:
    with LoopbackServer() as server, pytest.raises(CredentialError, match="start the login"):
        server.wait(0.01)

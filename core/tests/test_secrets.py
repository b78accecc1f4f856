"""Credentials are checked when built and masked wherever aipk shows text: check_credential,
redact / redact_error (property-tested), request reprs, key pools, OAuth credentials, router
targets."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aipk
from aipk import HttpRequest, Secret
from aipk._http import declare_secret_headers
from aipk._secrets import check_credential, header_problem, redact, redact_error
from aipk.credentials import KeyPool, OAuthCredential
from aipk.errors import AuthenticationError, ConfigurationError, NetworkError
from aipk.router import Target

#: Tests that build a real client need a provider plugin and the emulator; the core's isolated
#: session (only aipk-core installed) skips them, the full suite runs them.
needs_plugins = pytest.mark.skipif(
    importlib.util.find_spec("aipk_openai") is None
    or importlib.util.find_spec("aipk_testkit") is None,
    reason="needs aipk-openai and aipk-testkit installed (the full suite runs it)")

CANARY = "sk-canary-1d7c9e0b5a3f4e2d8c6b"


def test_surrounding_whitespace_is_stripped() -> None:
    assert check_credential(f"  {CANARY}\n", where="x", fix="y") == CANARY
    assert check_credential(f"{CANARY}\r\n", where="x", fix="y") == CANARY


@pytest.mark.parametrize(("value", "problem"), [
    ("", "is empty"),
    (" \n\t", "is empty"),
    ("sk-abc\ndef-ghij", "line break"),
    ("sk-abc\rdef-ghij", "line break"),
    ("sk-abc\x00def", "control character"),
    ("sk-abc\tdef", "control character"),
    ("sk-abcdé-fghij", "non-ASCII"),
    ("sk-abc\u00a0def", "non-ASCII"),
])
def test_malformed_values_name_where_and_the_fix_not_the_value(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_credential(value, where="the environment variable ACME_API_KEY",
                         fix="set it to the key alone")
    message = str(caught.value)
    assert problem in message
    assert "the environment variable ACME_API_KEY" in message
    assert "set it to the key alone" in message
    if value.strip():
        assert value.strip() not in message


def test_a_non_string_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="is a bytes, not a string"):
        check_credential(b"sk-abc", where="x", fix="pass a str")


@given(st.text())
def test_check_credential_accepts_exactly_one_line_of_printable_ascii(value: str) -> None:
    stripped = value.strip()
    if stripped and stripped.isascii() and stripped.isprintable():
        assert check_credential(value, where="w", fix="f") == stripped
    else:
        with pytest.raises(ConfigurationError) as caught:
            check_credential(value, where="w", fix="f")
        assert len(stripped) < 4 or stripped not in str(caught.value)


# -- redaction ---------------------------------------------------------------------------------


def test_redact_masks_the_whole_secret_and_a_partial_echo() -> None:
    secret = Secret(CANARY)
    text = (f"Incorrect API key provided: {CANARY}. Or: {CANARY[:8]}{'*' * 10}{CANARY[-4:]}; "
            f"ok")
    masked = redact(text)
    assert CANARY not in masked
    assert CANARY[:8] not in masked
    assert masked.startswith("Incorrect API key provided: ****. Or: ****")
    assert masked.endswith("; ok")
    del secret


def test_a_secret_no_longer_alive_is_no_longer_masked() -> None:
    value = "sk-transient-0a1b2c3d4e5f"
    secret = Secret(value)
    assert redact(value) == "****"
    del secret
    import gc
    gc.collect()
    assert redact(value) == value


@given(prefix=st.text(max_size=30), suffix=st.text(max_size=30),
       secret=st.text(min_size=4, max_size=60))
def test_redact_never_leaves_a_held_secret(prefix: str, suffix: str, secret: str) -> None:
    held = Secret(secret)
    masked = redact(prefix + secret + suffix + secret)
    assert secret not in masked
    assert held.reveal() == secret


def test_redact_error_masks_message_args_body_headers_and_the_chain() -> None:
    secret = Secret(CANARY)
    cause = RuntimeError(f"Illegal header value b'Bearer {CANARY}'")
    error = AuthenticationError(
        f"Incorrect API key provided: {CANARY}", provider="openai", status=401,
        body={"error": {"message": f"key {CANARY}", "param": [CANARY]}},
        headers={"x-echo": CANARY})
    error.__cause__ = cause
    error.__context__ = ValueError(CANARY)
    redact_error(error)
    seen = [str(error), repr(error), repr(error.args), repr(error.body), repr(error.headers),
            str(cause), repr(error.__context__), error.message]
    assert all(CANARY not in text for text in seen), seen
    assert error.status == 401 and error.provider == "openai"
    del secret


def test_network_error_str_repr_and_message_never_show_a_held_secret() -> None:
    secret = Secret(CANARY)
    error = NetworkError(f"LocalProtocolError: Illegal header value b'Bearer {CANARY}\\n'",
                         provider="openai")
    redact_error(error)
    assert CANARY not in str(error) + repr(error) + error.message
    del secret


# -- request reprs -------------------------------------------------------------------------------


def test_request_repr_hides_declared_named_and_secret_valued_headers() -> None:
    secret = Secret(CANARY)
    declare_secret_headers(["X-Acme-Sig"])
    request = HttpRequest(url="https://api.acme.test/v1/chat", headers={
        "Authorization": f"Bearer {CANARY}",
        "X-Acme-Token": "t0k3n-plugin-own",        # the name says it is a credential
        "X-Acme-Sig": "declared-by-the-spec",       # ProviderSpec.secret_headers
        "X-Whatever": f"prefix {CANARY} suffix",     # holds a live secret's value
        "Content-Type": "application/json",
    })
    text = repr(request)
    for hidden in (CANARY, "t0k3n-plugin-own", "declared-by-the-spec"):
        assert hidden not in text
    assert "application/json" in text
    assert repr(request.with_headers(Extra="1")).count("****") == 4
    del secret


def test_request_repr_masks_a_secret_in_the_url() -> None:
    secret = Secret(CANARY)
    request = HttpRequest(method="GET", url=f"https://api.acme.test/v1/{CANARY}/models")
    assert CANARY not in repr(request)
    del secret


def test_header_problem_names_the_header_not_the_value() -> None:
    assert header_problem({"Authorization": "Bearer ok"}) is None
    problem = header_problem({"Authorization": f"Bearer {CANARY}\n"})
    assert problem is not None and "'Authorization'" in problem and CANARY not in problem


# -- where credentials come from -----------------------------------------------------------------


@needs_plugins
def test_client_api_key_is_stripped_and_checked() -> None:
    with aipk.Client("openai", api_key=f"{CANARY}\n", base_url="http://127.0.0.1:9/v1") as c:
        credential = c.credentials.acquire()
        assert credential.secret is not None and credential.secret.reveal() == CANARY
    for bad, problem in ((f"{CANARY}\r\nX-Injected: 1", "line break"), (CANARY + "é", "non-ASCII"),
                         ("   ", "is empty")):
        with pytest.raises(ConfigurationError) as caught:
            aipk.Client("openai", api_key=bad, base_url="http://127.0.0.1:9/v1")
        assert "the api_key= argument" in str(caught.value) and problem in str(caught.value)
        assert CANARY not in str(caught.value)


@needs_plugins
def test_a_key_list_names_the_item() -> None:
    with pytest.raises(ConfigurationError, match=r"the api_key= list, item 1 has a line break"):
        aipk.Client("openai", api_key=["sk-good-key-1", f"{CANARY}\nx"],
                    base_url="http://127.0.0.1:9/v1")


@needs_plugins
def test_env_var_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f"sk-good-key-1,{CANARY}\x07")
    with pytest.raises(ConfigurationError) as caught:
        aipk.Client("openai")
    message = str(caught.value)
    assert "OPENAI_API_KEY (key 2 of its comma-separated list)" in message
    assert "control character" in message and "export OPENAI_API_KEY=" in message
    assert CANARY not in message
    monkeypatch.setenv("OPENAI_API_KEY", f"{CANARY}\n")  # $(cat keyfile)
    with aipk.Client("openai") as client:
        credential = client.credentials.acquire()
        assert credential.secret is not None and credential.secret.reveal() == CANARY


def test_key_pool_and_env_pool_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="key 'b' of the openai key pool has a line"):
        KeyPool.from_keys("openai", {"a": "sk-a-123456", "b": f"{CANARY}\n\nmore"})
    with pytest.raises(ConfigurationError, match="environment variable ACME_KEYS has a non-ASCII"):
        KeyPool.from_env("openai", "ACME_KEYS", environ={"ACME_KEYS": "sk-é-123456"})
    pool = KeyPool.from_keys("openai", [f"{CANARY}\n"])
    assert [m.secret.reveal() for m in pool if m.secret] == [CANARY]


@needs_plugins
def test_prebuilt_credentials_must_be_exact() -> None:
    credential = aipk.Credential(kind="api_key", secret=Secret(f"{CANARY}\n"), id="mine")
    with pytest.raises(ConfigurationError, match=r"credential= argument \(id 'mine'\) has "
                                                 r"whitespace around it"):
        aipk.Client("openai", credential=credential, base_url="http://127.0.0.1:9/v1")


def test_oauth_tokens_are_checked_as_loaded() -> None:
    assert OAuthCredential(id="acct", access_token=f"{CANARY}\n").access_token.reveal() == CANARY
    with pytest.raises(ConfigurationError) as caught:
        OAuthCredential(id="acct", access_token=f"tok-{CANARY}\r\nSet-Cookie: x")
    assert "OAuth credential 'acct'" in str(caught.value) and CANARY not in str(caught.value)


def test_router_targets_are_checked() -> None:
    assert Target(provider="openai", model="m", api_key=f"{CANARY}\n").api_key == Secret(CANARY)
    with pytest.raises(ConfigurationError, match="router Target's api_key= argument"):
        Target(provider="openai", model="m", api_key="sk-\x1b[31m-red")


@needs_plugins
def test_client_headers_are_checked() -> None:
    with pytest.raises(ConfigurationError) as caught:
        aipk.Client("openai", api_key="sk-abc-123456", base_url="http://127.0.0.1:9/v1",
                    headers={"X-Team": f"{CANARY}\r\nX-Evil: 1"})
    assert "'X-Team'" in str(caught.value) and CANARY not in str(caught.value)


def test_an_equal_secret_dying_does_not_unmask_the_survivor() -> None:
    value = "sk-twin-9f8e7d6c5b4a"
    first, second = Secret(value), Secret(value)
    del first
    import gc
    gc.collect()
    assert redact(f"key {value}") == "key ****"
    del second


class _AcmePlugin:
    """A plugin that signs with its own header name, which no name rule would catch."""

    @aipk.hookimpl
    def aipk_build_request(self, provider: aipk.Provider, request: aipk.ChatRequest,
                           stream: bool) -> HttpRequest:
        return HttpRequest(url=provider.url("/chat"), json={"model": request.model})

    @aipk.hookimpl
    def aipk_apply_credential(self, provider: aipk.Provider, http_request: HttpRequest,
                              credential: aipk.Credential) -> HttpRequest:
        assert credential.secret is not None
        return http_request.with_headers(**{"X-Acme-Mac": "v1=" + credential.secret.reveal()[::-1],
                                            "X-Acme-Seal": credential.secret.reveal()})


@needs_plugins
def test_a_plugins_declared_secret_header_and_a_header_holding_the_secret_are_hidden() -> None:
    from aipk_testkit.fixtures import make_engine

    spec = aipk.ProviderSpec(name="acme-sig", protocol="acme-sig",
                             default_base_url="https://api.acme.test/v1",
                             secret_headers=("X-Acme-Mac",))
    credential = aipk.Credential(kind="api_key", secret=Secret(CANARY), id="acme")
    engine = make_engine(spec, {"acme-sig": _AcmePlugin()}, credential=credential)
    signed, _ = engine.build(aipk.ChatRequest(model="m", messages=[aipk.Message.user("x")]),
                             stream=False)
    text = repr(signed)
    assert CANARY not in text and CANARY[::-1] not in text
    assert text.count("****") == 2


def test_a_token_file_with_a_broken_token_names_the_file_not_the_token(tmp_path: object) -> None:
    import json
    import os
    from pathlib import Path

    from aipk.credentials import CredentialError, FileTokenStore

    path = Path(str(tmp_path)) / "tokens.json"
    entry = {"access_token": f"{CANARY}\r\nX-Injected: 1", "refresh_token": None}
    path.write_text(json.dumps({"version": 1, "credentials": {"acct": entry}}))
    os.chmod(path, 0o600)
    with pytest.raises(CredentialError) as caught:
        FileTokenStore(path).load("acct")
    assert str(path) in str(caught.value) and "'acct'" in str(caught.value)
    assert CANARY not in str(caught.value) + repr(caught.value)


def test_a_refresh_returning_a_broken_token_is_a_clean_credential_error() -> None:
    from aipk.credentials import CredentialError, OAuthManager
    from aipk.errors import AuthErrorCode

    def refresh(old: OAuthCredential) -> OAuthCredential:
        return OAuthCredential(id=old.id, access_token=f"tok-{CANARY}\nSet-Cookie: x")

    manager = OAuthManager("openai", [OAuthCredential(id="acct", access_token="old-token-1234",
                                                      refresh_token="refresh-1234",
                                                      expires_at=0)], refresh=refresh)
    with pytest.raises(CredentialError) as caught:
        manager.token("acct", force=True)
    assert caught.value.auth_code is AuthErrorCode.INVALID_CONFIG
    assert "OAuth credential 'acct'" in str(caught.value)
    assert CANARY not in str(caught.value) + repr(caught.value)


# A garbage collection while the masking filter reads the held secrets may finalize an
# abandoned HTTP response (httpx's body iterator of a stream the caller broke off), whose close
# logs a DEBUG line through the same filter on the same thread.
_GC_IN_THE_FILTER = """
import gc, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(message)s")
from aipk._secrets import remember
log = logging.getLogger("httpcore.http11")

class Collecting:  # a held secret whose reading happens to set off a collection
    def reveal(self):
        gc.collect()
        return "sk-gc-SECRETVALUE-0123456789"

class AbandonedResponse:
    def __del__(self):
        log.debug("response_closed.complete for sk-gc-SECRETVALUE-0123456789")

held = Collecting()
remember(held)
garbage = AbandonedResponse()
garbage.cycle = garbage  # freed only by a collection
del garbage
gc.disable()  # no collection before the filter's
log.debug("receive_response_headers.complete")
print("done")
"""


def test_a_collection_inside_the_log_filter_that_logs_again_does_not_deadlock() -> None:
    import subprocess
    import sys

    try:
        ran = subprocess.run([sys.executable, "-c", _GC_IN_THE_FILTER], capture_output=True,
                             text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the masking log filter deadlocked on its own lock")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.rstrip().endswith("done")
    assert "response_closed.complete for ****" in ran.stdout
    assert "SECRETVALUE" not in ran.stdout

"""An OAuth 2.0 authorization server (mount ``/oauth``), scriptable from tests.

Endpoints:

* ``GET /oauth/authorize``: checks ``response_type=code``, ``client_id``, ``redirect_uri``,
  ``state`` and an S256 ``code_challenge``, then redirects (302) to ``redirect_uri`` with
  ``code`` and ``state`` (the state can be scripted wrong, or an ``error`` sent instead);
* ``POST /oauth/token`` (form or JSON body): grants ``authorization_code`` (PKCE verified, codes
  single-use), ``refresh_token`` (rotated by default: the old one stops working) and
  ``urn:ietf:params:oauth:grant-type:device_code`` (scripted ``authorization_pending`` /
  ``slow_down`` answers, then approve, deny or expire); errors are RFC 6749 JSON;
* ``POST /oauth/device/code``: a device code, user code and verification URI;
* OpenRouter's PKCE key exchange: ``GET /oauth/auth`` (``callback_url``, S256
  ``code_challenge``) redirects to ``callback_url`` with ``code``; ``POST /oauth/auth/keys``
  (JSON ``code``, ``code_verifier``, ``code_challenge_method``) answers ``{"key": …}`` once the
  verifier matches, a permanent key (`OAuthHandler.key_valid()`).

``token_extra`` adds fields to every token response (e.g. Qwen's ``resource_url``).

Get the handler of a running emulator with `oauth_server()` and script it::

    oauth = oauth_server(emu)
    oauth.script_device("authorization_pending", "slow_down", outcome="approve")
    oauth.revoke()                 # every refresh token now gets invalid_grant
    oauth.token_extra = {"resource_url": "portal.qwen.ai"}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qsl, urlencode

from ._protocol import ChatCall, ProtocolHandler, Rendered, RequestError, register
from ._ratelimit import RateLimitSnapshot
from ._types import RecordedRequest, Reply

if TYPE_CHECKING:
    from ._server import Emulator

__all__ = ["OAuthHandler", "oauth_server"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
Outcome = Literal["approve", "deny", "expire"]


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    used: bool = False


@dataclass
class _Device:
    client_id: str
    scope: str
    challenge: str | None
    script: deque[str]
    outcome: Outcome
    done: bool = False


@dataclass
class _Script:
    responses: list[str] = field(default_factory=list)
    outcome: Outcome = "approve"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _json(status: int, data: dict[str, Any]) -> Rendered:
    return Rendered(status=status, headers=[("content-type", "application/json"),
                                            ("cache-control", "no-store")],
                    body=json.dumps(data).encode())


@register
class OAuthHandler(ProtocolHandler):
    """The authorization server's state and endpoints (one per emulator)."""

    name = "oauth"
    mount = "/oauth"

    def __init__(self, models: Sequence[str] | None = None) -> None:
        super().__init__(models)
        self._lock = threading.Lock()
        self.reset()

    # -- scripting (call from the test's thread) --------------------------------------------

    def reset(self) -> None:
        """Forget every code, token and script; back to the defaults."""
        with self._lock:
            self.expires_in: float = 3600.0
            self.rotate_refresh_tokens = True
            self.required_client_id: str | None = None
            self.device_interval = 5.0
            self.device_expires_in = 600.0
            self._codes: dict[str, _Code] = {}
            self._access: dict[str, float] = {}
            self._refresh: dict[str, str] = {}  # token -> "active" | "revoked" | "rotated"
            self._devices: dict[str, _Device] = {}
            self._device_script = _Script()
            self._failures: deque[int] = deque()
            self._state_override: str | None = None
            self._authorize_error: str | None = None
            self.grants: Counter[str] = Counter()
            self.token_extra: dict[str, str] = {}
            self._key_codes: dict[str, str] = {}  # code -> S256 challenge
            self._keys: set[str] = set()

    def script_device(self, *responses: str, outcome: Outcome = "approve") -> None:
        """For device codes issued from now on: answer polls with ``responses`` in order
        (``"authorization_pending"``, ``"slow_down"``), then ``outcome``."""
        with self._lock:
            self._device_script = _Script(list(responses), outcome)

    def fail_token_requests(self, *statuses: int) -> None:
        """Answer the next token requests with these HTTP error statuses."""
        with self._lock:
            self._failures.extend(statuses)

    def send_wrong_state(self, state: str | None = "forged-state") -> None:
        """Redirect from ``/authorize`` with this state instead of the client's."""
        self._state_override = state

    def deny_authorization(self, error: str | None = "access_denied") -> None:
        """Redirect from ``/authorize`` with ``error`` instead of a code."""
        self._authorize_error = error

    def revoke(self, refresh_token: str | None = None) -> None:
        """Revoke one refresh token, or all of them (and their access tokens)."""
        with self._lock:
            if refresh_token is not None:
                self._refresh[refresh_token] = "revoked"
                return
            for token in self._refresh:
                self._refresh[token] = "revoked"
            self._access.clear()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired from now on."""
        with self._lock:
            for token in self._access:
                self._access[token] = 0.0

    def issue(self, *, expires_in: float | None = None, scope: str = "") -> dict[str, Any]:
        """A token response as if a login had just happened (to seed a test)."""
        with self._lock:
            return self._tokens(scope, expires_in)

    def access_token_valid(self, token: str) -> bool:
        """True for an access token this server issued that is neither expired nor revoked."""
        return self._access.get(token, 0.0) > time.time()

    def key_valid(self, key: str) -> bool:
        """True for an API key this server issued through the key exchange."""
        return key in self._keys

    def refresh_token_state(self, token: str) -> str | None:
        """``"active"``, ``"rotated"``, ``"revoked"``, or None for an unknown token."""
        return self._refresh.get(token)

    # -- ProtocolHandler ----------------------------------------------------------------------

    def route(self, method: str, path: str) -> str | None:
        return {("GET", "/authorize"): "authorize", ("POST", "/token"): "token",
                ("POST", "/device/code"): "device_code", ("GET", "/auth"): "key_authorize",
                ("POST", "/auth/keys"): "key_exchange"}.get((method, path))

    def check_auth(self, request: RecordedRequest, accepts: Callable[[str], bool]) -> (
            Rendered | None):
        return None  # the token endpoint authenticates clients itself

    def parse_chat(self, request: RecordedRequest, path: str) -> ChatCall:
        raise RequestError(404, "the OAuth server has no chat endpoint")

    def answer(self, endpoint: str, path: str, request: RecordedRequest) -> Rendered:
        with self._lock:
            if endpoint == "authorize":
                return self._authorize(dict(parse_qsl(request.query)))
            if endpoint == "key_authorize":
                return self._key_authorize(dict(parse_qsl(request.query)))
            form = self._form(request)
            if endpoint == "key_exchange":
                self.grants["key_exchange"] += 1
                if self._failures:
                    return self.render_error(self._failures.popleft())
                return self._key_exchange(form)
            self.grants[form.get("grant_type", endpoint)] += 1
            if self.required_client_id is not None and form.get("client_id") != \
                    self.required_client_id:
                return self.render_error(401, "unknown client", code="invalid_client")
            if self._failures:
                return self.render_error(self._failures.popleft())
            if endpoint == "device_code":
                return self._device_code(form)
            return self._token(form)

    def render_reply(self, reply: Reply, call: ChatCall, usage: tuple[int, int]) -> Rendered:
        raise RequestError(404, "the OAuth server has no chat endpoint")

    def render_error(self, status: int, message: str | None = None, *, code: str | None = None,
                     param: str | None = None, error_type: str | None = None,
                     retry_after: float | None = None) -> Rendered:
        default = {400: "invalid_request", 401: "invalid_client", 404: "not_found",
                   429: "slow_down"}.get(status, "server_error")
        return _json(status, {"error": code or default,
                              "error_description": message or f"HTTP {status}"})

    def error_event(self, message: str, code: str | None) -> bytes:
        return b""

    def malformed_body(self, invalid_utf8: bool) -> bytes:
        return b"\xff" if invalid_utf8 else b"{"

    def malformed_event(self, invalid_utf8: bool) -> bytes:
        return b""

    def rate_limit_headers(self, snapshot: RateLimitSnapshot) -> list[tuple[str, str]]:
        return []

    # -- endpoints (under the lock) ----------------------------------------------------------

    @staticmethod
    def _form(request: RecordedRequest) -> dict[str, str]:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(request.body or b"{}")
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        return dict(parse_qsl(request.body.decode("utf-8", "replace")))

    def _authorize(self, query: dict[str, str]) -> Rendered:
        required = ("response_type", "client_id", "redirect_uri", "state", "code_challenge")
        missing = [name for name in required if not query.get(name)]
        if missing or query["response_type"] != "code" or \
                query.get("code_challenge_method") != "S256":
            return self.render_error(400, f"bad authorization request (missing {missing}, "
                                          f"or not response_type=code with S256)")
        redirect = query["redirect_uri"]
        if self._authorize_error is not None:
            params = {"error": self._authorize_error, "state": query["state"]}
        else:
            code = "code_" + secrets.token_urlsafe(16)
            self._codes[code] = _Code(query["client_id"], redirect, query["code_challenge"],
                                      query.get("scope", ""))
            params = {"code": code, "state": self._state_override or query["state"]}
        sep = "&" if "?" in redirect else "?"
        return Rendered(status=302, headers=[("location", redirect + sep + urlencode(params))])

    def _tokens(self, scope: str, expires_in: float | None = None) -> dict[str, Any]:
        lifetime = self.expires_in if expires_in is None else expires_in
        access = "at_" + secrets.token_urlsafe(24)
        refresh = "rt_" + secrets.token_urlsafe(24)
        self._access[access] = time.time() + lifetime
        self._refresh[refresh] = "active"
        data: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                "expires_in": lifetime, "refresh_token": refresh}
        if scope:
            data["scope"] = scope
        return {**self.token_extra, **data}

    def _grant_error(self, error: str, description: str) -> Rendered:
        return _json(400, {"error": error, "error_description": description})

    def _token(self, form: dict[str, str]) -> Rendered:
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = self._codes.get(form.get("code", ""))
            if code is None or code.used:
                return self._grant_error("invalid_grant", "unknown or already used code")
            code.used = True
            if form.get("redirect_uri") != code.redirect_uri:
                return self._grant_error("invalid_grant", "redirect_uri does not match")
            if not hmac.compare_digest(_challenge(form.get("code_verifier", "")),
                                       code.challenge):
                return self._grant_error("invalid_grant", "PKCE verification failed")
            return _json(200, self._tokens(code.scope))
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            state = self._refresh.get(token)
            if state != "active":
                return self._grant_error("invalid_grant",
                                         f"refresh token {state or 'unknown'}")
            data = self._tokens("")
            if self.rotate_refresh_tokens:
                self._refresh[token] = "rotated"
            else:
                del self._refresh[data["refresh_token"]]
                data["refresh_token"] = token
            return _json(200, data)
        if grant == DEVICE_GRANT:
            device = self._devices.get(form.get("device_code", ""))
            if device is None or device.done:
                return self._grant_error("invalid_grant", "unknown or used device code")
            if device.challenge is not None and not hmac.compare_digest(
                    _challenge(form.get("code_verifier", "")), device.challenge):
                return self._grant_error("invalid_grant", "PKCE verification failed")
            if device.script:
                step = device.script.popleft()
                return self._grant_error(step, step.replace("_", " "))
            device.done = True
            if device.outcome == "deny":
                return self._grant_error("access_denied", "the user denied the request")
            if device.outcome == "expire":
                return self._grant_error("expired_token", "the device code expired")
            return _json(200, self._tokens(device.scope))
        return self._grant_error("unsupported_grant_type", f"grant_type {grant!r}")

    def _key_authorize(self, query: dict[str, str]) -> Rendered:
        callback, challenge = query.get("callback_url", ""), query.get("code_challenge", "")
        if not callback.startswith(("http://", "https://")) or not challenge or \
                query.get("code_challenge_method") != "S256":
            return self.render_error(400, "bad /auth request (needs an http(s) callback_url "
                                          "and an S256 code_challenge)")
        if self._authorize_error is not None:
            params = {"error": self._authorize_error}
        else:
            code = "orc_" + secrets.token_urlsafe(16)
            self._key_codes[code] = challenge
            params = {"code": code}
        sep = "&" if "?" in callback else "?"
        return Rendered(status=302, headers=[("location", callback + sep + urlencode(params))])

    def _key_exchange(self, form: dict[str, str]) -> Rendered:
        # OpenRouter's documented errors and shape: 400 wrong method, 403 bad code/verifier.
        if form.get("code_challenge_method") != "S256":
            return _json(400, {"error": {"code": 400, "message": "Invalid code_challenge_method"}})
        challenge = self._key_codes.pop(form.get("code", ""), None)
        if challenge is None or not hmac.compare_digest(
                _challenge(form.get("code_verifier", "")), challenge):
            return _json(403, {"error": {"code": 403, "message": "Invalid code or code_verifier"}})
        key = "sk-or-emu-" + secrets.token_urlsafe(24)
        self._keys.add(key)
        return _json(200, {"key": key, "user_id": "user_emulator"})

    def _device_code(self, form: dict[str, str]) -> Rendered:
        device_code = "dc_" + secrets.token_urlsafe(16)
        user_code = secrets.token_hex(4).upper()
        script = self._device_script
        self._devices[device_code] = _Device(form.get("client_id", ""), form.get("scope", ""),
                                             form.get("code_challenge"),
                                             deque(script.responses), script.outcome)
        return _json(200, {
            "device_code": device_code, "user_code": user_code,
            "verification_uri": "https://example.invalid/device",
            "verification_uri_complete": f"https://example.invalid/device?code={user_code}",
            "expires_in": self.device_expires_in, "interval": self.device_interval,
        })


def oauth_server(emulator: Emulator) -> OAuthHandler:
    """The OAuth handler of ``emulator`` (started with the ``oauth`` protocol, the default)."""
    try:
        handler = emulator._handlers["oauth"]
    except KeyError:
        raise ValueError("this emulator does not serve the oauth protocol") from None
    return cast(OAuthHandler, handler)

"""OAuth login flows and token requests, provider-neutral.

* Authorization code with PKCE S256 (RFC 7636) and a ``state`` checked in constant time, with a
  loopback callback server on 127.0.0.1 for command-line logins (RFC 8252).
* Device authorization grant (RFC 8628): ``authorization_pending``, ``slow_down`` (+5 s),
  ``expired_token``, ``access_denied``.
* Code exchange and refresh (form-encoded by default, JSON for providers that want it), keeping
  the old refresh token when the response brings no new one.

A provider plugin supplies an [`OAuthEndpoints`][aipk.credentials._flows.OAuthEndpoints] record;
[`OAuthClient`][aipk.credentials._flows.OAuthClient] does the rest, synchronously or with
``a``-prefixed coroutines. Each exchange is written once as a generator of steps (POST this, sleep
that) and driven by a sync or an async driver, so the two APIs cannot drift apart. Clock and sleeps
are injectable.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import urlencode

import attrs

from aipk._providers import Secret
from aipk.errors import AuthErrorCode

from ._errors import CredentialError, scrub
from ._loopback import LoopbackServer
from ._oauthrecords import (
    PKCE,
    AuthorizationRequest,
    DeviceAuthorization,
    OAuthEndpoints,
    check_state,
    new_state,
)
from ._oauthtoken import OAuthCredential

if TYPE_CHECKING:
    import httpx

__all__ = ["OAuthClient"]

T = TypeVar("T")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Token-response fields OAuthCredential has attributes for; other string fields go to ``extra``.
_TOKEN_FIELDS = frozenset({"access_token", "refresh_token", "expires_in", "scope", "token_type",
                           "account_id"})


@attrs.frozen(kw_only=True)
class _Post:
    url: str
    fields: dict[str, str] = attrs.field(repr=False)
    json: bool
    headers: Mapping[str, str]


@attrs.frozen
class _Sleep:
    seconds: float


@attrs.frozen(kw_only=True)
class _Answer:
    status: int  # 0: no response
    data: Any = None
    failure: str | None = None


Steps = Generator[_Post | _Sleep, _Answer | None, T]

_Op = Literal["refresh", "exchange", "device"]


def _webbrowser_open(url: str) -> bool:
    import webbrowser

    return webbrowser.open(url)


def _show_device(device: DeviceAuthorization) -> None:
    where = device.verification_uri_complete or device.verification_uri
    print(f"To sign in, open {where} and enter the code {device.user_code}", file=sys.stderr)


class OAuthClient:
    """Token requests and logins against one provider's `OAuthEndpoints`.

    Pass your own ``http`` / ``async_http`` clients to reuse connections (they are not closed);
    otherwise one is created per operation with ``timeout`` seconds. ``clock`` stamps
    expiries; ``monotonic``, ``sleep`` and ``async_sleep`` drive device-flow polling.
    """

    def __init__(
        self,
        endpoints: OAuthEndpoints,
        *,
        http: httpx.Client | None = None,
        async_http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        login_hint: str | None = None,
    ) -> None:
        self.endpoints = endpoints
        self._http = http
        self._async_http = async_http
        self.timeout = timeout
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._async_sleep = async_sleep
        self.login_hint = login_hint or f"run: aipk login {endpoints.provider}"

    def __repr__(self) -> str:
        return f"<OAuthClient provider={self.endpoints.provider!r}>"

    # -- authorization code + PKCE -------------------------------------------------------

    def authorization_request(self, redirect_uri: str, *, scopes: Sequence[str] | None = None,
                              state: str | None = None,
                              pkce: PKCE | None = None) -> AuthorizationRequest:
        """A new login: the URL to open, with a fresh state and PKCE pair."""
        ep = self.endpoints
        if not ep.authorize_url:
            raise self._error("the OAuthEndpoints have no authorize_url; this provider "
                              "may only support the device flow", AuthErrorCode.INVALID_CONFIG)
        chosen = tuple(ep.scopes if scopes is None else scopes)
        pkce = pkce or PKCE.generate()
        state = state or new_state()
        query = {
            "response_type": "code", "client_id": ep.client_id, "redirect_uri": redirect_uri,
            "state": state, "code_challenge": pkce.challenge,
            "code_challenge_method": pkce.method, **ep.extra_authorize_params,
        }
        if chosen:
            query["scope"] = " ".join(chosen)
        sep = "&" if "?" in ep.authorize_url else "?"
        return AuthorizationRequest(url=ep.authorize_url + sep + urlencode(query),
                                    redirect_uri=redirect_uri, state=state, pkce=pkce,
                                    scopes=chosen)

    def complete(self, request: AuthorizationRequest, callback: Mapping[str, str], *,
                 credential_id: str = "default") -> OAuthCredential:
        """Check the callback's state, then exchange its code for tokens."""
        return self._run(self._exchange_steps(request, callback, credential_id))

    async def acomplete(self, request: AuthorizationRequest, callback: Mapping[str, str], *,
                        credential_id: str = "default") -> OAuthCredential:
        return await self._arun(self._exchange_steps(request, callback, credential_id))

    def login(self, *, open_browser: Callable[[str], object] | None = None,
              timeout: float = 300.0, scopes: Sequence[str] | None = None,
              credential_id: str = "default", port: int = 0) -> OAuthCredential:
        """The whole command-line login: start a loopback server, open the browser at the
        authorization URL (``webbrowser.open`` by default), wait for the redirect, check the
        state, exchange the code."""
        open_browser = open_browser or _webbrowser_open
        with LoopbackServer(self.endpoints.redirect_path, port=port) as server:
            request = self.authorization_request(server.redirect_uri, scopes=scopes)
            if open_browser(request.url) is False:
                print(f"Open this address to sign in: {request.url}", file=sys.stderr)
            params = server.wait(timeout, provider=self.endpoints.provider)
        return self.complete(request, params, credential_id=credential_id)

    async def alogin(self, *, open_browser: Callable[[str], object] | None = None,
                     timeout: float = 300.0, scopes: Sequence[str] | None = None,
                     credential_id: str = "default", port: int = 0) -> OAuthCredential:
        """`login()` for asyncio (``open_browser`` may be a coroutine function)."""
        open_browser = open_browser or _webbrowser_open
        with LoopbackServer(self.endpoints.redirect_path, port=port) as server:
            request = self.authorization_request(server.redirect_uri, scopes=scopes)
            opened = open_browser(request.url)
            if inspect.isawaitable(opened):
                opened = await opened
            if opened is False:
                print(f"Open this address to sign in: {request.url}", file=sys.stderr)
            params = await asyncio.to_thread(server.wait, timeout,
                                             provider=self.endpoints.provider)
        return await self.acomplete(request, params, credential_id=credential_id)

    # -- refresh ---------------------------------------------------------------------------

    def refresh(self, credential: OAuthCredential) -> OAuthCredential:
        """New tokens for ``credential`` (the old refresh token is kept unless rotated).
        Usable as ``OAuthManager(refresh=client.refresh)``."""
        return self._run(self._refresh_steps(credential))

    async def arefresh(self, credential: OAuthCredential) -> OAuthCredential:
        return await self._arun(self._refresh_steps(credential))

    # -- device authorization grant ----------------------------------------------------------

    def start_device(self, *, scopes: Sequence[str] | None = None,
                     pkce: bool = False) -> DeviceAuthorization:
        """Ask for a device code (``pkce=True`` adds a challenge, as Qwen requires)."""
        return self._run(self._device_start_steps(scopes, pkce))

    async def astart_device(self, *, scopes: Sequence[str] | None = None,
                            pkce: bool = False) -> DeviceAuthorization:
        return await self._arun(self._device_start_steps(scopes, pkce))

    def poll_device(self, device: DeviceAuthorization, *,
                    credential_id: str = "default") -> OAuthCredential:
        """Poll until the user approves (tokens), denies, or the code expires (errors)."""
        return self._run(self._device_poll_steps(device, credential_id))

    async def apoll_device(self, device: DeviceAuthorization, *,
                           credential_id: str = "default") -> OAuthCredential:
        return await self._arun(self._device_poll_steps(device, credential_id))

    def device_login(self, *, show: Callable[[DeviceAuthorization], object] = _show_device,
                     scopes: Sequence[str] | None = None, pkce: bool = False,
                     credential_id: str = "default") -> OAuthCredential:
        """The whole device login: get a code, ``show`` it to the user, poll for tokens."""
        device = self.start_device(scopes=scopes, pkce=pkce)
        show(device)
        return self.poll_device(device, credential_id=credential_id)

    async def adevice_login(self, *, show: Callable[[DeviceAuthorization], object] = _show_device,
                            scopes: Sequence[str] | None = None, pkce: bool = False,
                            credential_id: str = "default") -> OAuthCredential:
        device = await self.astart_device(scopes=scopes, pkce=pkce)
        shown = show(device)
        if inspect.isawaitable(shown):
            await shown
        return await self.apoll_device(device, credential_id=credential_id)

    # -- the steps -------------------------------------------------------------------------

    def _post(self, url: str, fields: dict[str, str]) -> Generator[_Post, _Answer | None,
                                                                    _Answer]:
        ep = self.endpoints
        if ep.client_secret is not None:
            fields["client_secret"] = ep.client_secret.reveal()
        answer = yield _Post(url=url, fields=fields, json=ep.token_format == "json",
                             headers={"accept": "application/json", **ep.extra_headers})
        assert answer is not None
        return answer

    def _exchange_steps(self, request: AuthorizationRequest, callback: Mapping[str, str],
                        credential_id: str) -> Steps[OAuthCredential]:
        provider = self.endpoints.provider
        check_state(request.state, callback.get("state"), provider=provider)
        if "error" in callback:
            reason = scrub(str(callback.get("error_description") or callback["error"]), [])
            raise self._error(f"the sign-in was not completed ({reason}); start the login "
                              f"again", AuthErrorCode.OAUTH_FLOW_FAILED)
        code = callback.get("code")
        if not code:
            raise self._error("the sign-in callback carried no authorization code; start the "
                              "login again", AuthErrorCode.OAUTH_FLOW_FAILED)
        fields = {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": request.redirect_uri, "client_id": self.endpoints.client_id,
            "code_verifier": request.pkce.verifier.reveal(),
        }
        if self.endpoints.state_in_token_request:
            fields["state"] = request.state
        answer = yield from self._post(self.endpoints.token_url, fields)
        data = self._tokens(answer, "exchange", credential_id, [code])
        return self._credential(data, credential_id, None, request.scopes)

    def _refresh_steps(self, credential: OAuthCredential) -> Steps[OAuthCredential]:
        if credential.refresh_token is None:
            raise self._error(f"credential {credential.id!r} has no refresh token: "
                              f"{self.login_hint}", AuthErrorCode.INVALID_CREDENTIALS)
        answer = yield from self._post(self.endpoints.token_url, {
            "grant_type": "refresh_token", "refresh_token": credential.refresh_token.reveal(),
            "client_id": self.endpoints.client_id,
        })
        data = self._tokens(answer, "refresh", credential.id,
                            [credential.refresh_token, credential.access_token])
        return self._credential(data, credential.id, credential, credential.scopes)

    def _device_start_steps(self, scopes: Sequence[str] | None,
                            use_pkce: bool) -> Steps[DeviceAuthorization]:
        ep = self.endpoints
        if not ep.device_authorization_url:
            raise self._error("the OAuthEndpoints have no device_authorization_url; this "
                              "provider may only support the browser login",
                              AuthErrorCode.INVALID_CONFIG)
        chosen = tuple(ep.scopes if scopes is None else scopes)
        fields = {"client_id": ep.client_id}
        if chosen:
            fields["scope"] = " ".join(chosen)
        pkce = PKCE.generate() if use_pkce else None
        if pkce is not None:
            fields.update(code_challenge=pkce.challenge, code_challenge_method=pkce.method)
        answer = yield from self._post(ep.device_authorization_url, fields)
        data = answer.data
        if answer.status != 200 or not isinstance(data, dict):
            raise self._failure(answer, "device", "", [])
        try:
            return DeviceAuthorization(
                device_code=Secret(str(data["device_code"])), user_code=str(data["user_code"]),
                verification_uri=str(data.get("verification_uri")
                                     or data["verification_url"]),
                verification_uri_complete=data.get("verification_uri_complete"),
                expires_in=float(data.get("expires_in") or 600.0),
                interval=float(data.get("interval") or 5.0), pkce=pkce, scopes=chosen)
        except (KeyError, TypeError, ValueError):
            raise self._error("the device authorization response lacks device_code, user_code "
                              "or verification_uri; check device_authorization_url",
                              AuthErrorCode.OAUTH_FLOW_FAILED) from None

    def _device_poll_steps(self, device: DeviceAuthorization,
                           credential_id: str) -> Steps[OAuthCredential]:
        deadline = self._monotonic() + device.expires_in
        interval = max(device.interval, 0.0)
        fields = {"grant_type": DEVICE_GRANT, "device_code": device.device_code.reveal(),
                  "client_id": self.endpoints.client_id}
        if device.pkce is not None:
            fields["code_verifier"] = device.pkce.verifier.reveal()
        while True:
            if self._monotonic() + interval > deadline:
                raise self._device_expired()
            yield _Sleep(interval)
            answer = yield from self._post(self.endpoints.token_url, dict(fields))
            if answer.status == 200:
                data = self._tokens(answer, "device", credential_id, [device.device_code])
                return self._credential(data, credential_id, None, device.scopes)
            error = answer.data.get("error") if isinstance(answer.data, dict) else None
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5.0
                continue
            if error == "expired_token":
                raise self._device_expired()
            if error == "access_denied":
                raise self._error("the sign-in was denied in the browser; run the login again "
                                  "and approve it", AuthErrorCode.OAUTH_FLOW_FAILED,
                                  answer.status)
            raise self._failure(answer, "device", credential_id, [device.device_code])

    def _device_expired(self) -> CredentialError:
        return self._error("the device code expired before the sign-in was approved; run the "
                           "login again and approve it sooner", AuthErrorCode.OAUTH_FLOW_FAILED)

    # -- responses -------------------------------------------------------------------------

    def _error(self, message: str, code: AuthErrorCode, status: int = 0) -> CredentialError:
        return CredentialError(message, provider=self.endpoints.provider, auth_code=code,
                               status=status)

    def _tokens(self, answer: _Answer, op: _Op, credential_id: str,
                hide: Sequence[Secret | str | None]) -> dict[str, Any]:
        data = answer.data
        if answer.status == 200 and isinstance(data, dict):
            if isinstance(data.get("access_token"), str) and data["access_token"]:
                return data
            code = (AuthErrorCode.REFRESH_FAILED if op == "refresh"
                    else AuthErrorCode.OAUTH_FLOW_FAILED)
            raise self._error("the token endpoint answered without an access_token; check "
                              "token_url", code, answer.status)
        raise self._failure(answer, op, credential_id, hide)

    def _failure(self, answer: _Answer, op: _Op, credential_id: str,
                 hide: Sequence[Secret | str | None]) -> CredentialError:
        status = answer.status
        refresh = op == "refresh"
        who = f"credential {credential_id!r}" if credential_id else "the login"
        if status == 0:
            return self._error(
                f"could not reach the token endpoint ({answer.failure}); check the network, "
                f"then retry", AuthErrorCode.REFRESH_FAILED if refresh
                else AuthErrorCode.NETWORK_ERROR)
        data = answer.data if isinstance(answer.data, dict) else {}
        error = str(data.get("error") or "")
        detail = scrub(str(data.get("error_description") or error or f"HTTP {status}"), hide)
        if error == "invalid_grant":
            if refresh:
                return self._error(
                    f"the refresh token of {who} was rejected ({detail}): it expired or was "
                    f"revoked; {self.login_hint}", AuthErrorCode.INVALID_CREDENTIALS, status)
            return self._error(
                f"the authorization was rejected ({detail}): the code expired or was already "
                f"used; start the login again", AuthErrorCode.OAUTH_FLOW_FAILED, status)
        if error in ("invalid_client", "unauthorized_client") or (status == 401 and not error):
            return self._error(
                f"the token endpoint rejected client id {self.endpoints.client_id!r} "
                f"({detail}); check the OAuthEndpoints client_id and client_secret",
                AuthErrorCode.INVALID_CONFIG, status)
        if error == "invalid_scope":
            return self._error(f"the requested scopes were refused ({detail}); ask only for "
                               f"scopes this client may use", AuthErrorCode.SCOPE_INSUFFICIENT,
                               status)
        if status == 429 or status >= 500:
            return self._error(
                f"the token endpoint is unavailable (HTTP {status}: {detail}); retry later",
                AuthErrorCode.REFRESH_FAILED if refresh else AuthErrorCode.PROVIDER_UNAVAILABLE,
                status)
        if refresh:
            return self._error(f"refreshing {who} failed ({detail}); retry, or "
                               f"{self.login_hint}", AuthErrorCode.REFRESH_FAILED, status)
        return self._error(f"the sign-in failed ({detail}); start the login again",
                           AuthErrorCode.OAUTH_FLOW_FAILED, status)

    def _credential(self, data: Mapping[str, Any], credential_id: str,
                    previous: OAuthCredential | None,
                    requested: Sequence[str]) -> OAuthCredential:
        expires_at: float | None = None
        raw = data.get("expires_in")
        if raw is not None:
            try:
                expires_at = self._clock() + float(raw)
            except (TypeError, ValueError):
                expires_at = None
            if expires_at is not None and not math.isfinite(expires_at):
                expires_at = None  # "nan", 1e999: an expiry no clock reaches
        scope = data.get("scope")
        if isinstance(scope, str):
            scopes: tuple[str, ...] = tuple(scope.split())
        elif isinstance(scope, list):
            scopes = tuple(str(s) for s in scope)
        else:
            scopes = previous.scopes if previous is not None else tuple(requested)
        account = data.get("account_id")
        nested = data.get("account")
        if account is None and isinstance(nested, dict):
            account = nested.get("uuid") or nested.get("id")
        if account is None and previous is not None:
            account = previous.account_id
        refresh = data.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:  # absent, or not a token at all
            refresh = None
        if refresh is None and previous is not None:
            refresh = previous.refresh_token
        extra = {k: v for k, v in data.items() if k not in _TOKEN_FIELDS and isinstance(v, str)}
        return OAuthCredential(
            id=credential_id, access_token=Secret(str(data["access_token"])),
            refresh_token=refresh, expires_at=expires_at, scopes=scopes,
            account_id=None if account is None else str(account),
            token_type=str(data.get("token_type") or "Bearer"),
            extra={**(previous.extra if previous is not None else {}), **extra})

    # -- drivers ---------------------------------------------------------------------------

    def _run(self, steps: Steps[T]) -> T:
        import httpx

        client = self._http or httpx.Client(timeout=self.timeout)
        try:
            step = next(steps)
            while True:
                if isinstance(step, _Sleep):
                    self._sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    response = client.post(step.url, headers=dict(step.headers),
                                           **_body(step))
                    answer = _Answer(status=response.status_code, data=_json(response))
                except (httpx.TransportError, httpx.DecodingError) as exc:
                    answer = _unanswered(exc)
                step = steps.send(answer)
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            steps.close()
            if client is not self._http:
                client.close()

    async def _arun(self, steps: Steps[T]) -> T:
        import httpx

        client = self._async_http or httpx.AsyncClient(timeout=self.timeout)
        try:
            step = next(steps)
            while True:
                if isinstance(step, _Sleep):
                    await self._async_sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    response = await client.post(step.url, headers=dict(step.headers),
                                                 **_body(step))
                    answer = _Answer(status=response.status_code, data=_json(response))
                except (httpx.TransportError, httpx.DecodingError) as exc:
                    answer = _unanswered(exc)
                step = steps.send(answer)
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            steps.close()
            if client is not self._async_http:
                await client.aclose()


def _body(step: _Post) -> dict[str, Any]:
    return {"json": step.fields} if step.json else {"data": step.fields}


def _unanswered(exc: Exception) -> _Answer:
    """The answer for a token request that got no usable response: a connection failure, or
    a body that does not match its ``Content-Encoding`` (httpx's ``DecodingError``)."""
    import httpx

    if isinstance(exc, httpx.DecodingError):
        return _Answer(status=0, failure="its answer does not match its Content-Encoding "
                                         "header: check any proxy in between")
    return _Answer(status=0, failure=type(exc).__name__)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None

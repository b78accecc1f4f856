"""The sans-IO engine both clients share: build, observe, parse, decode, classify.

`Engine` turns a [`ChatRequest`][aipk.ChatRequest] into bytes to send and turns what comes back
(status, headers, body bytes or body chunks) into responses, stream events and typed errors,
through the plugin hooks. It does no I/O, so [`Client`][aipk.Client] and
[`AsyncClient`][aipk.AsyncClient] differ only in how they send and wait.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._http import (
    AUTH_HEADERS,
    HttpRequest,
    Timeout,
    _c_encode,
    declare_secret_headers,
    encode_json,
    redact_url,
)
from ._messages import ChatRequest
from ._providers import Credential, ModelInfo, Provider
from ._ratelimit import RateLimitState, RateLimitTracker
from ._records import SET_CLASS, record_builder
from ._responses import ChatResponse, Usage
from ._retry import RetryPolicy
from ._secrets import check_exact, header_problem, masked, redact_error
from ._tokens import TokenCount, TokenCountCall, estimate_tokens
from .errors import (
    ContextWindowExceededError,
    InvalidRequestError,
    PluginError,
    ProviderError,
    RateLimitError,
    ResponseError,
)
from .framing import make_framer, parse_json_bytes
from .limits import ClientLimits, Limiter
from .observability import Metrics
from .observability._call import Call, Telemetry
from .registry import Registry
from .state import BucketStore, StateStore

if TYPE_CHECKING:
    from ._session import StreamSession

__all__ = ["Engine"]

log = logging.getLogger("aipk.http")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "inference-id")


#: what `Engine.chat_response` fills in a plugin's new ChatResponse with (see record_builder)
_ResponseBuilder = record_builder(ChatResponse)


def request_id_of(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _ignoring_event(function: Callable[[], object]) -> Callable[[object], object]:
    """An ``aipk_observe`` implementation declaring no ``event`` argument, called with one."""
    return lambda event: function()


class Engine:
    """Everything a client does that is not sending bytes or waiting.

    Requests are prepared once (`prepare()`) and signed per attempt (`sign()`) with
    whichever credential the client's pool chose; state is keyed by that credential's id.
    ``credential`` is the default for callers that pass none (tests, one fixed key).
    """

    def __init__(
        self,
        *,
        registry: Registry,
        provider: Provider,
        credential: Credential | None = None,
        retry: RetryPolicy,
        tracker: RateLimitTracker | None = None,
        limits: ClientLimits | None = None,
        clock: Callable[[], float] = time.time,
        store: StateStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        # Per-provider callers: only plugins that can answer for it, called positionally in
        # hookspec order (see Registry.hooks_for and FastHook).
        self._hooks = registry.hooks_for(provider)
        self.provider = provider
        self.credential = credential
        self.retry = retry
        self.tracker = tracker or RateLimitTracker()
        #: where calls are recorded (``metrics``) and who observes them
        self.telemetry = Telemetry(
            provider.name, provider.base_url, metrics,
            ((m.id, m.input_price, m.output_price) for m in provider.spec.models))
        self._observe = registry.pm.hook.aipk_observe  # live: observers loaded later too
        self.clock = clock
        self.limiter = Limiter(limits or ClientLimits.from_options(provider.options),
                               store=store if isinstance(store, BucketStore) else None,
                               scope=provider.name)
        self._checked: Credential | None = None
        if provider.spec.secret_headers:
            declare_secret_headers(provider.spec.secret_headers)
        #: model id -> context window, where the static table knows it
        self._windows: dict[str, int] = {
            m.id: m.context_window for m in provider.spec.models
            if m.context_window is not None}
        self._bind()

    def _bind(self) -> None:
        """Take each hook's current plan (a lone implementation is called directly)."""
        hooks = self._hooks
        self._build = hooks.aipk_build_request.call
        self._apply = hooks.aipk_apply_credential.call
        self._parse_limits = hooks.aipk_parse_rate_limits.call
        self._parse = hooks.aipk_parse_response.call
        self._decoder = hooks.aipk_stream_decoder.call
        self._map_error = hooks.aipk_map_error.call
        self._retry_after = hooks.aipk_retry_after.call
        self._models_request = hooks.aipk_models_request.call
        self._parse_models = hooks.aipk_parse_models.call
        self._count_tokens = hooks.aipk_count_tokens_request.call
        self.telemetry.observers = tuple(
            impl.function if impl.argnames else _ignoring_event(impl.function)
            for impl in reversed(self._observe.get_hookimpls()))

    def _refresh(self) -> None:
        """Once per request: pick up plugins registered or removed since the last one."""
        hooks = self._hooks
        if hooks.changes.generation != hooks.generation:  # `hooks.stale`, inline
            hooks.replan()
            self._bind()

    def start_call(self, request: ChatRequest, stream: bool) -> Call:
        """A chat call begins: its recorder (metrics, observers, log), with the observers
        registered up to now."""
        hooks = self._hooks
        if hooks.changes.generation != hooks.generation:  # `hooks.stale`, inline: per call
            self._refresh()
        return Call(self.telemetry, request, stream)

    # -- requests ------------------------------------------------------------------------

    def build(self, request: ChatRequest, stream: bool,
              credential: Credential | None = None) -> tuple[HttpRequest, bytes | None]:
        """The signed HTTP request for ``request`` and its encoded body."""
        return self.sign(self.prepare(request, stream), credential)

    def prepare(self, request: ChatRequest, stream: bool, *,
                headers: Mapping[str, str] | None = None, timeout: Timeout | None = None,
                extra_body: Mapping[str, Any] | None = None) -> HttpRequest:
        """The unsigned HTTP request for ``request`` (sign it per attempt), with this call's
        own ``headers`` (over the client's), ``timeout`` and ``extra_body`` (merged into the
        JSON body last, over everything the plugin built)."""
        if stream and not self.provider.spec.capabilities.streaming:
            raise InvalidRequestError(
                f"provider {self.provider.name!r} does not support streaming; use chat()",
                provider=self.provider.name, field="stream",
            )
        hooks = self._hooks
        if hooks.changes.generation != hooks.generation:  # `self._refresh()`, inline
            self._refresh()
        provider = self.provider
        built = self._build(provider, request, stream)
        if type(built) is not HttpRequest:
            if built is None:
                raise self._no_plugin("aipk_build_request")
            if not isinstance(built, HttpRequest):
                raise PluginError(
                    f"aipk_build_request returned a {type(built).__name__} for provider "
                    f"{self.provider.name!r}; a plugin must return an aipk.HttpRequest "
                    f"(method, url, headers, json=body), or None for providers it does not "
                    f"serve")
        # `self._finish(built, stream)`, inline
        if provider.headers:
            built = built.merge_headers(provider.headers)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s stream=%s", provider.name, built.method,
                      redact_url(built.url), stream)
        if headers or timeout is not None or extra_body:
            return self._per_call(built, headers, timeout, extra_body)
        return built

    def _per_call(self, built: HttpRequest, headers: Mapping[str, str] | None,
                  timeout: Timeout | None, extra_body: Mapping[str, Any] | None) -> HttpRequest:
        """``built`` with one call's options (paid only by calls that pass some)."""
        name = self.provider.name
        merged_headers = dict(built.headers)
        if headers:
            for key, value in headers.items():
                if key.lower() in AUTH_HEADERS:
                    raise InvalidRequestError(
                        f"headers= may not set {key!r}: the credential sets it; pass api_key= "
                        f"or credential= to the client instead",
                        provider=name, field="headers")
                if not isinstance(value, str):
                    raise InvalidRequestError(
                        f"header {key!r} must be a string, not {type(value).__name__}",
                        provider=name, field="headers")
                merged_headers[key] = value
            problem = header_problem(headers)
            if problem is not None:
                raise InvalidRequestError(
                    f"{problem} in headers=; header names and values must be one line of "
                    f"printable ASCII", provider=name, field="headers")
        body = built.json
        if extra_body:
            if not isinstance(body, dict):
                raise InvalidRequestError(
                    f"extra_body= needs a JSON object body, and provider {name!r} sends none "
                    f"for this request", provider=name, field="extra_body")
            body = {**body, **extra_body}
        return attrs.evolve(built, headers=merged_headers, json=body,
                            timeout=timeout if timeout is not None else built.timeout)

    def _finish(self, built: HttpRequest, stream: bool) -> HttpRequest:
        """Add the user's own headers (``Client(headers=...)``, they win over the plugin's)
        and log the request, redacted, at debug level."""
        provider = self.provider
        if provider.headers:
            built = built.merge_headers(provider.headers)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s stream=%s", provider.name, built.method,
                      redact_url(built.url), stream)
        return built

    def sign(self, built: HttpRequest, credential: Credential | None = None) -> (
            tuple[HttpRequest, bytes | None]):
        """``built`` carrying ``credential`` (default: the engine's), and its encoded body."""
        chosen = credential or self.credential
        if chosen is None:
            raise PluginError("Engine.sign needs a credential: pass one, or give the Engine "
                              "a default credential")
        if chosen is not self._checked:  # once per credential in a row, not per request
            self._check(chosen)
        signed = self._apply(self.provider, built, chosen)
        if type(signed) is not HttpRequest:  # None, or a subclass with a body() of its own
            if signed is None:
                raise self._no_plugin("aipk_apply_credential")
            return signed, signed.body()
        # `HttpRequest.body()` and `encode_json()` inline (two calls less per attempt)
        content = signed.content
        if content is None:
            data = signed.json
            if data is not None:
                content = (encode_json(data) if _c_encode is None
                           else "".join(_c_encode(data, 0)).encode())
        return signed, content

    def _check(self, credential: Credential) -> None:
        """Refuse, before anything is sent (or logged by the HTTP library), a credential from
        a source that was not checked when the client was built (a custom CredentialSource,
        a key added to a pool later) whose secret cannot go into a header."""
        if credential.secret is not None:
            check_exact(credential.secret.reveal(), where=f"credential {credential.id!r}",
                        fix="fix the key in the credential source it came from")
        self._checked = credential

    def prepare_models(self) -> HttpRequest | None:
        """The unsigned model-listing request, or None if the provider has no listing."""
        self._refresh()
        built: HttpRequest | None = self._models_request(self.provider)
        return None if built is None else self._finish(built, False)

    def models_request(self, credential: Credential | None = None) -> (
            tuple[HttpRequest, bytes | None] | None):
        """The signed model-listing request and its body, or None."""
        built = self.prepare_models()
        return None if built is None else self.sign(built, credential)

    def prepare_count(self, request: ChatRequest) -> TokenCountCall | None:
        """How to count ``request``'s tokens with the provider (unsigned), or None when its
        plugin has no count endpoint (then use `estimate_tokens()`)."""
        self._refresh()
        call: TokenCountCall | None = self._count_tokens(self.provider, request)
        if call is None:
            return None
        return TokenCountCall(request=self._finish(call.request, False), parse=call.parse)

    def token_count(self, call: TokenCountCall, request: ChatRequest, body: bytes,
                    headers: Mapping[str, str]) -> TokenCount:
        """The provider's count from its answer to ``call``."""
        request_id = request_id_of(headers)
        data = self.decode_json(body, request_id)
        try:
            count = int(call.parse(data))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise masked(ResponseError(
                f"the token count answer has an unexpected shape ({type(exc).__name__}: "
                f"{exc}); upgrade the {self.provider.name} plugin if the provider changed it",
                provider=self.provider.name, request_id=request_id), exc) from None
        return TokenCount(input_tokens=count, estimated=False, provider=self.provider.name,
                          model=request.model)

    def check_context(self, request: ChatRequest) -> None:
        """Raise ContextWindowExceededError, before sending, when the local estimate of
        ``request``'s input plus its ``max_tokens`` exceeds the model's context window (a
        model whose window the plugin's static table does not know always passes)."""
        window = self._windows.get(request.model)
        if window is None:
            return
        tokens = estimate_tokens(request)
        needed = tokens + (request.max_tokens or 0)
        if needed > window:
            raise ContextWindowExceededError(
                f"the request needs about {needed} tokens ({tokens} input, estimated, plus "
                f"max_tokens={request.max_tokens or 0}), more than {request.model!r}'s "
                f"context window of {window}; send fewer or shorter messages, lower "
                f"max_tokens, or pick a model with a larger window",
                provider=self.provider.name, status=0, tokens=needed, context_window=window)

    def _key(self, model: str, credential_id: str | None) -> tuple[str, str, str]:
        if credential_id is None:
            credential_id = self.credential.id if self.credential is not None else "none"
        return (self.provider.spec.name, credential_id, model)  # `Provider.name`, inline

    def _no_plugin(self, hook: str) -> PluginError:
        return PluginError(
            f"no installed plugin implements {hook} for provider {self.provider.name!r} "
            f"(protocol {self.provider.protocol!r}); install or upgrade its plugin package"
        )

    # -- responses -----------------------------------------------------------------------

    def observe(self, status: int, headers: Mapping[str, str], model: str,
                credential_id: str | None = None) -> RateLimitState | None:
        """Merge the rate-limit state a response reports into the tracker, under the
        credential that was used (default: the engine's)."""
        state = self._parse_limits(self.provider, status, headers, self.clock())
        if state is None:
            return None
        if credential_id is None:  # `_key()`, inline: every response has its limits read
            credential_id = self.credential.id if self.credential is not None else "none"
        return self.tracker.update((self.provider.spec.name, credential_id, model), state)

    def decode_json(self, body: bytes, request_id: str | None) -> Any:
        try:
            return parse_json_bytes(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise self._not_json(exc, request_id) from None

    def _not_json(self, exc: Exception, request_id: str | None) -> ResponseError:
        return masked(ResponseError(  # retryable: a body cut short or garbled on the way
            f"the response body is not valid JSON ({exc}): it was cut short, or the "
            f"provider or a proxy in between sent something else; retry, or check base_url",
            provider=self.provider.name, request_id=request_id, retryable=True,
        ), exc)

    def chat_response(self, request: ChatRequest, body: bytes, headers: Mapping[str, str],
                      rate_limit: RateLimitState | None) -> ChatResponse:
        # `request_id_of()`, its first header inline: OpenAI's, and most providers' answers
        request_id = headers.get("x-request-id") or request_id_of(headers)
        try:  # decode_json() inline: a call less per answer
            data = parse_json_bytes(body)
        except (ValueError, RecursionError) as exc:
            raise self._not_json(exc, request_id) from None
        try:
            parsed = self._parse(self.provider, request, data, headers)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise masked(ResponseError(
                f"the response has an unexpected shape ({type(exc).__name__}: {exc}); "
                f"upgrade the {self.provider.name} plugin if the provider changed its format",
                provider=self.provider.name, request_id=request_id,
            ), exc) from None
        if parsed is None:
            raise self._no_plugin("aipk_parse_response")
        response: ChatResponse = parsed
        usage = response.usage
        cost = None
        if usage is not None and response.cost is None and self.telemetry.prices:
            cost = self.telemetry.cost(request.model, usage, response.model)  # `self.cost()`
        if type(response) is ChatResponse and response.request_id is None and (
                response.rate_limit is None):
            # The plugin's new record, not yet seen by anyone else (the hook's contract): fill
            # in what only the transport knows in place. A copy of this 12-field frozen record
            # cost 7% of aipk's per-request work.
            SET_CLASS(response, _ResponseBuilder)
            filling: Any = response
            filling.request_id = request_id
            filling.rate_limit = rate_limit
            if cost is not None:
                filling.cost = cost
            filling.__class__ = ChatResponse
        else:
            response = response.with_transport_info(request_id, rate_limit, cost)
        if request.response_format is not None:
            from ._structured import with_parsed  # loaded by the first structured answer

            return with_parsed(response, request.response_format)
        return response

    def cost(self, model: str, usage: Usage | None, answered_by: str | None = None) -> (
            float | None):
        """US dollars for ``usage`` on ``model`` (or the model that ``answered_by``, e.g. a
        dated version of an alias) at the plugin's static prices, or None."""
        return self.telemetry.cost(model, usage, answered_by)

    def error(self, status: int, headers: Mapping[str, str], body: bytes,
              model: str = "", credential_id: str | None = None) -> ProviderError:
        """The typed error for an HTTP error response; a rate-limit error's ``retry_after``
        (from headers, from the body as Gemini's, or from the provider's own signal through
        ``aipk_retry_after``) also goes into the tracker."""
        self._refresh()  # errors may come without a prepare (tests, routers)
        request_id = request_id_of(headers)
        data: Any
        try:
            data = json.loads(body) if body else None
        except (ValueError, RecursionError):
            data = body.decode("utf-8", errors="replace")[:2000]
        error = self._map_error(self.provider, status, headers, data, request_id)
        if error is None:  # the built-in plugin always answers; guard against its removal
            raise self._no_plugin("aipk_map_error")
        result: ProviderError = error
        redact_error(result)  # a provider may echo the key: "Incorrect API key provided: sk-…"
        if isinstance(result, RateLimitError):
            hint = self._retry_after(self.provider, status, headers, self.clock())
            if hint is not None:
                result.retry_after = float(hint)
        if isinstance(result, RateLimitError) and result.retry_after is not None:
            now = self.clock()
            self.tracker.update(self._key(model, credential_id),
                                RateLimitState(not_before=now + result.retry_after,
                                               observed_at=now))
        return result

    def models(self, body: bytes, headers: Mapping[str, str]) -> list[ModelInfo]:
        request_id = request_id_of(headers)
        data = self.decode_json(body, request_id)
        try:
            parsed = self._parse_models(self.provider, data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise masked(ResponseError(
                f"the model listing has an unexpected shape ({type(exc).__name__}: {exc}); "
                f"check base_url, or upgrade the {self.provider.name} plugin if the provider "
                f"changed its format", provider=self.provider.name, request_id=request_id,
            ), exc) from None
        return list(parsed) if parsed is not None else list(self.provider.spec.models)

    def open_stream(self, request: ChatRequest, headers: Mapping[str, str],
                    rate_limit: RateLimitState | None) -> StreamSession:
        from ._session import StreamSession  # a process that never streams never loads it
        from ._sniff import SniffingFramer

        self._refresh()
        decoder = self._decoder(self.provider, request)
        if decoder is None:
            raise self._no_plugin("aipk_stream_decoder")
        framing = getattr(decoder, "framing", None)
        content_type = headers.get("content-type")
        if framing == "json-array" or (framing in (None, "sse") and not (
                content_type and content_type.startswith("text/event-stream"))):
            # not announced as an event stream (a JSON error, an HTML page … or a mislabelled
            # one), or a JSON array whose label is the same as a JSON error object's
            return StreamSession(self, decoder, request, request_id_of(headers), rate_limit,
                                 SniffingFramer(content_type))
        try:
            framer = make_framer(framing)
        except ValueError as exc:
            raise PluginError(f"the stream decoder for {self.provider.name!r} declares a "
                              f"framing the core cannot build: {exc}") from None
        return StreamSession(self, decoder, request, request_id_of(headers), rate_limit, framer)

    # -- admission -----------------------------------------------------------------------

    def admission_delay(self, model: str, body: bytes | None, policy: RetryPolicy | None,
                        credential_id: str | None = None) -> float:
        """Seconds to wait before sending, from client-side limits and what the provider last
        said (retry-after, exhausted windows). Raises RateLimitError instead of waiting longer
        than the retry policy's ``max_retry_after``."""
        tokens = len(body) // 4 if body else 0
        if credential_id is None:
            credential_id = self.credential.id if self.credential is not None else "none"
        # `tracked_wait()` and `_key()`, inline: every request asks
        tracked = self.tracker.wait_time((self.provider.spec.name, credential_id, model),
                                         self.clock(), tokens)
        booked = 0.0
        limiter = self.limiter
        if limiter.active:
            cap = (policy or self.retry).max_retry_after
            if tracked <= cap:  # else refused below, without booking
                booked = limiter.reserve(tokens, credential_id, cap)
        if not booked and not tracked:  # the common case
            return 0.0
        refused = self._refusal(booked, tracked, policy)
        if refused is not None:
            raise refused
        return max(booked, tracked)

    async def aadmission_delay(self, model: str, body: bytes | None,
                               policy: RetryPolicy | None,
                               credential_id: str | None = None) -> float:
        """`admission_delay()` for a limiter whose store books asynchronously
        (``limiter.asynchronous``): the event loop is free while the store answers."""
        tokens = len(body) // 4 if body else 0
        tracked = self.tracked_wait(model, tokens, credential_id)
        cap = (policy or self.retry).max_retry_after
        booked = 0.0
        if tracked <= cap:  # else refused below, without booking
            booked = await self.limiter.areserve(tokens, self._key(model, credential_id)[1],
                                                 cap)
        if not booked and not tracked:
            return 0.0
        refused = self._refusal(booked, tracked, policy)
        if refused is not None:
            raise refused
        return max(booked, tracked)

    def _refusal(self, booked: float, tracked: float,
                 policy: RetryPolicy | None) -> RateLimitError | None:
        """The error for a wait longer than the policy allows, else None."""
        delay = max(booked, tracked)
        cap = (policy or self.retry).max_retry_after
        if delay <= cap:
            return None
        source = "client-side limits" if booked >= tracked else "the provider's rate limits"
        return RateLimitError(
            f"{source} allow the next request in {delay:.1f}s, longer than "
            f"max_retry_after={cap:g}s; wait, or raise RetryPolicy(max_retry_after=...)",
            provider=self.provider.name, retry_after=delay, status=0,
        )

    def tracked_wait(self, model: str, tokens: int, credential_id: str | None) -> float:
        """Seconds the provider's last reported limits say to wait with this credential."""
        if credential_id is None:  # `_key()`, inline: asked for each key a pool considers
            credential_id = self.credential.id if self.credential is not None else "none"
        return self.tracker.wait_time((self.provider.spec.name, credential_id, model),
                                      self.clock(), tokens)

    # -- retries -------------------------------------------------------------------------

    def retry_delay(self, attempt: int, error: ProviderError, policy: RetryPolicy | None) -> (
            float | None):
        return (policy or self.retry).delay(attempt, error)

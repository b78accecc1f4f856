"""One call's recorder: what the clients call at the call boundary, and the send loop calls
per attempt, retry and failover. It feeds the `Metrics`, the observers (plugins
implementing ``aipk_observe``) and the ``aipk.client`` logger.

With no observer installed, a call costs its metrics updates and a few attribute checks; the
event records are built (and their module loaded) only for observers.
"""

from __future__ import annotations

import itertools
import logging
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._model import Metrics

if TYPE_CHECKING:
    from aipk._messages import ChatRequest
    from aipk._responses import ChatResponse, Usage

__all__ = ["Call", "Telemetry"]

log = logging.getLogger("aipk.client")
_observer_log = logging.getLogger("aipk.observe")
_ids = itertools.count(1)
_events_module: Any = None


def _events() -> Any:
    """The event records' module, loaded when the first observer needs it (an import
    statement per event would cost more than building the record)."""
    global _events_module
    if _events_module is None:
        from . import _events as module

        _events_module = module
    return _events_module

Observer = Callable[[Any], object]


class Telemetry:
    """Where one engine's calls are recorded and who observes them."""

    __slots__ = ("_started", "base_url", "metrics", "observers", "partial_tokens", "prices",
                 "provider")

    def __init__(self, provider: str, base_url: str, metrics: Metrics | None,
                 prices: Iterable[tuple[str, float | None, float | None]] = ()) -> None:
        self.provider = provider
        self.base_url = base_url
        self.metrics = metrics if metrics is not None else Metrics()
        #: the functions of the plugins implementing ``aipk_observe``
        self.observers: tuple[Observer, ...] = ()
        #: model -> (input, output) US dollars per million tokens, for models with both
        self.prices = {model: (inp, out) for model, inp, out in prices
                       if inp is not None and out is not None}
        #: ``(credential id, tokens)``: tell the credential source of the tokens a stream
        #: reported before it failed or was closed (its ``add_tokens``)
        self.partial_tokens: Callable[[str, int], object] | None = None
        #: the metrics' count of this provider's calls started (`Metrics.started()`), taken
        #: at the first call (before it, the provider has no in-flight entry)
        self._started: itertools.count[int] | None = None

    def start(self, request: ChatRequest, stream: bool) -> Call:
        """A call begins: count it in flight and tell the observers (`Call()` does)."""
        return Call(self, request, stream)

    def started_count(self) -> itertools.count[int]:
        """The count of this provider's calls started, taken from the metrics once."""
        if self._started is None:
            self._started = self.metrics._started_counter(self.provider)
        return self._started

    def emit(self, event: object) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:  # noqa: BLE001 - an observer must never break a call
                _observer_log.warning("aipk_observe implementation %r failed on %s",
                                      getattr(observer, "__qualname__", observer),
                                      type(event).__name__, exc_info=True)

    def cost(self, model: str, usage: Usage | None, answered_by: str | None = None) -> (
            float | None):
        """US dollars for ``usage`` on ``model`` (or on the model that ``answered_by``, a
        dated version of an alias, say) at the plugin's static prices; None when a price or
        a count the provider did not send is unknown."""
        price = self.prices.get(model)
        if price is None and type(answered_by) is str:  # a garbled body may name no model
            price = self.prices.get(answered_by)
        if price is None or usage is None:
            return None
        given, made = usage.input_tokens, usage.output_tokens
        if given is None or made is None:
            return None
        return (given * price[0] + made * price[1]) / 1e6


def _partial_tokens(add: Callable[[str, int], object], credential_id: str, usage: Usage,
                    error: BaseException | None) -> None:
    """Add the tokens a stream reported before it failed with ``error`` (None: the caller
    stopped it) to its credential (``add``: the source's ``add_tokens``). A source that
    raises here is logged and noted on ``error``: the call keeps its own outcome."""
    try:
        add(credential_id, usage.total_tokens or 0)
    except Exception as exc:  # noqa: BLE001 - logged, and attached to the call's error
        from aipk._reporting import reporting_failed  # on this failure only

        reporting_failed(exc, getattr(add, "__self__", add), "the stream's tokens",
                         credential_id, error)


class Call:
    """One call's outcome, recorded once (the first of finished, failed or cancelled wins)."""

    __slots__ = ("attempts", "credential_id", "done", "first_token", "id", "model", "partial",
                 "started", "stream", "telemetry", "unannounced")

    def __init__(self, telemetry: Telemetry, request: ChatRequest, stream: bool) -> None:
        """The call begins: it is counted in flight and the observers are told."""
        self.telemetry = telemetry
        self.id = next(_ids)
        self.model = request.model
        self.stream = stream
        self.started = telemetry.metrics.clock()
        self.first_token: float | None = None
        #: a first token the observers have not heard of yet
        self.unannounced = False
        #: the attempts sent so far and the credential of the last: the send loop
        #: (`aipk._sending.send_steps`) sets both before each attempt
        self.credential_id = "none"
        self.attempts = 0
        self.done = False
        #: a stream's accumulator (anything with ``usage``): the usage reported so far, which
        #: a stream that fails or is closed early still counts
        self.partial: Any = None
        next(telemetry._started or telemetry.started_count())  # Metrics.started(), inline
        if telemetry.observers:
            event = _events().CallStarted(
                call_id=self.id, provider=telemetry.provider, model=self.model, stream=stream,
                base_url=telemetry.base_url, request=request, started_at=self.started)
            telemetry.emit(event)

    # -- per attempt (the send loop) -------------------------------------------------------

    def retried(self, wait: float, error: BaseException) -> None:
        """The attempt failed with ``error``; the call retries after ``wait`` seconds."""
        tel = self.telemetry
        tel.metrics.retried(tel.provider, self.model, self.credential_id)
        request_id = getattr(error, "request_id", None)
        if log.isEnabledFor(logging.WARNING):
            log.warning(
                "%s %s attempt %d failed (%s, request id %s, credential %s); retrying in "
                "%.3fs", tel.provider, self.model, self.attempts, type(error).__name__,
                request_id, self.credential_id, wait,
                extra={"aipk_provider": tel.provider, "aipk_model": self.model,
                       "aipk_credential_id": self.credential_id, "aipk_attempt": self.attempts,
                       "aipk_wait": wait, "aipk_request_id": request_id,
                       "aipk_error_type": type(error).__name__})
        if tel.observers:
            event = _events().CallRetried(
                call_id=self.id, provider=tel.provider, model=self.model,
                credential_id=self.credential_id, attempt=self.attempts, wait=wait,
                error_type=type(error).__name__, request_id=request_id)
            tel.emit(event)

    def failed_over(self, error: BaseException, to_credential_id: str) -> None:
        """The attempt failed with ``error``; the next goes to ``to_credential_id`` at once."""
        tel = self.telemetry
        tel.metrics.failed_over(tel.provider, self.model, self.credential_id)
        if log.isEnabledFor(logging.WARNING):
            log.warning("%s %s attempt %d failed (%s, credential %s); failing over to %s",
                        tel.provider, self.model, self.attempts, type(error).__name__,
                        self.credential_id, to_credential_id,
                        extra={"aipk_provider": tel.provider, "aipk_model": self.model,
                               "aipk_credential_id": self.credential_id,
                               "aipk_attempt": self.attempts,
                               "aipk_error_type": type(error).__name__})
        if tel.observers:
            event = _events().CallFailedOver(
                call_id=self.id, provider=tel.provider, model=self.model,
                credential_id=self.credential_id, to_credential_id=to_credential_id,
                error_type=type(error).__name__)
            tel.emit(event)

    # -- the call boundary (the clients) ---------------------------------------------------

    def got_first_token(self) -> None:
        """A stream is handing out its first event now: its time to first token. Observers
        hear of it from `announce_first_token()`, called once the caller has the event,
        so that their work is not part of the time to first token."""
        tel = self.telemetry
        self.first_token = tel.metrics.clock() - self.started
        self.unannounced = bool(tel.observers)

    def announce_first_token(self) -> None:
        """Tell the observers about the first event (once; the call's end does it too, for a
        stream closed right after its first event)."""
        if not self.unannounced:
            return
        self.unannounced = False
        tel = self.telemetry
        event = _events().FirstToken(
            call_id=self.id, provider=tel.provider, model=self.model,
            time_to_first_token=self.first_token)
        tel.emit(event)

    def finished(self, credential_id: str, usage: Usage | None,
                 response: ChatResponse | Callable[[], ChatResponse],
                 cost: float | types.EllipsisType | None = ...) -> None:
        """The caller got its answer (``response``, or a function building it for observers),
        costing ``cost`` (the answer's own ``ChatResponse.cost``; default: ``usage`` priced
        at the model's prices)."""
        if self.done:
            return
        self.done = True
        self.credential_id = credential_id
        if self.unannounced:
            self.announce_first_token()
        tel = self.telemetry
        metrics = tel.metrics
        latency = metrics.clock() - self.started
        if cost is ...:
            cost = tel.cost(self.model, usage) if tel.prices else None
        # Metrics.finished(), without its keywords and lookup call (once per call)
        series = metrics._series.get((tel.provider, self.model, credential_id))
        if series is None:
            series = metrics._get(tel.provider, self.model, credential_id)
        series.succeeded(latency, self.first_token, usage, cost)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s answered in %.3fs after %d attempt(s) (credential %s)",
                      tel.provider, self.model, latency, self.attempts, credential_id,
                      extra={"aipk_provider": tel.provider, "aipk_model": self.model,
                             "aipk_credential_id": credential_id,
                             "aipk_attempt": self.attempts, "aipk_latency": latency})
        if tel.observers:
            answer = response if not callable(response) else response()
            event = _events().CallFinished(
                call_id=self.id, provider=tel.provider, model=self.model,
                credential_id=credential_id, stream=self.stream, latency=latency,
                time_to_first_token=self.first_token, attempts=self.attempts, usage=usage,
                cost=cost, response=answer)
            tel.emit(event)

    def failed(self, error: BaseException) -> None:
        """The caller got ``error`` (a cancelled task or closed generator: see
        `cancelled()`)."""
        if self.done:
            return
        if isinstance(error, GeneratorExit) or type(error).__name__ == "CancelledError":
            self.cancelled()  # the caller gave up: asyncio task cancelled, generator closed
            return
        self.done = True
        if self.unannounced:
            self.announce_first_token()
        tel = self.telemetry
        metrics = tel.metrics
        latency = metrics.clock() - self.started
        name = type(error).__name__
        cut = getattr(error, "partial", None)  # IncompleteStreamError: the answer so far
        usage = cut.usage if cut is not None else (
            self.partial.usage if self.partial is not None else None)
        cost = None
        if usage is not None:
            cost = tel.cost(self.model, usage) if tel.prices else None
            if tel.partial_tokens is not None:
                _partial_tokens(tel.partial_tokens, self.credential_id, usage, error)
        metrics.failed(tel.provider, self.model, self.credential_id, error_type=name,
                       time_to_first_token=self.first_token, usage=usage, cost=cost)
        if log.isEnabledFor(logging.WARNING):
            request_id = getattr(error, "request_id", None)
            log.warning("%s %s failed after %d attempt(s) in %.3fs: %s (request id %s, "
                        "credential %s)", tel.provider, self.model, self.attempts, latency,
                        name, request_id, self.credential_id,
                        extra={"aipk_provider": tel.provider, "aipk_model": self.model,
                               "aipk_credential_id": self.credential_id,
                               "aipk_attempt": self.attempts, "aipk_latency": latency,
                               "aipk_request_id": request_id, "aipk_error_type": name})
        if tel.observers:
            event = _events().CallFailed(
                call_id=self.id, provider=tel.provider, model=self.model,
                credential_id=self.credential_id, stream=self.stream, latency=latency,
                attempts=self.attempts, error_type=name, error=error, usage=usage, cost=cost)
            tel.emit(event)

    def cancelled(self) -> None:
        """The caller closed the stream before its end."""
        if self.done:
            return
        self.done = True
        if self.unannounced:
            self.announce_first_token()
        tel = self.telemetry
        latency = tel.metrics.clock() - self.started
        usage = self.partial.usage if self.partial is not None else None
        cost = None
        if usage is not None:
            cost = tel.cost(self.model, usage) if tel.prices else None
            if tel.partial_tokens is not None:
                _partial_tokens(tel.partial_tokens, self.credential_id, usage, None)
        tel.metrics.cancelled(tel.provider, self.model, self.credential_id,
                              time_to_first_token=self.first_token, usage=usage, cost=cost)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s stream closed by the caller after %.3fs", tel.provider,
                      self.model, latency,
                      extra={"aipk_provider": tel.provider, "aipk_model": self.model,
                             "aipk_credential_id": self.credential_id,
                             "aipk_attempt": self.attempts, "aipk_latency": latency})
        if tel.observers:
            event = _events().CallCancelled(
                call_id=self.id, provider=tel.provider, model=self.model,
                credential_id=self.credential_id, latency=latency, attempts=self.attempts,
                usage=usage, cost=cost)
            tel.emit(event)

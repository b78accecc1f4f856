"""The provider conformance suite: what every aipk provider plugin must do, checked over real
HTTP against the loopback emulator.

Subclass `ProviderConformance` in your plugin's tests and say which provider and which
emulator protocol it speaks::

    from aipk_testkit.conformance import ProviderConformance

    class TestAcmeConformance(ProviderConformance):
        provider = "acme"          # your provider id
        protocol = "openai"        # the wire protocol the emulator should speak

The ``aipk_emulator`` fixture comes from this package's pytest plugin (registered through the
``pytest11`` entry point), so nothing else is needed. Each test asserts behaviour users rely on:
text and tool calls, streaming, usage, rate-limit headers, retries, typed errors.

The suite reads the provider's declared [`Capabilities`][aipk.Capabilities]: tool tests are skipped
for a provider that declares ``tools=False``, stream tests for ``streaming=False``. Class attributes
adapt it to the provider's wire: ``parameter_paths`` says where each request parameter lands in the
JSON body (``{"temperature": ("options", "temperature")}`` for a provider that nests sampling
options), and ``wait_header`` names the provider's own wait header, if it has one, as ``(name, units
per second)`` (``("acme-wait-ms", 1000.0)``): the plugin must turn it into the wait (the
``aipk_retry_after`` hook), and the suite checks that the client waits that long.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest

import aipk
from aipk.errors import (
    AuthenticationError,
    BadRequestError,
    NetworkError,
    RateLimitError,
    ResponseError,
    ServerError,
    StreamError,
)

from .emulator import Emulator, Fault, Reply, ToolCallSpec

__all__ = ["ProviderConformance"]

_WEATHER = aipk.Tool(
    name="get_weather", description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]},
)


class _Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class ProviderConformance:
    """Base class of the conformance tests; set ``provider`` (and ``protocol``, ``model``)."""

    provider: ClassVar[str]
    protocol: ClassVar[str] = "openai"
    model: ClassVar[str] = "conformance-model"
    api_key: ClassVar[str] = "sk-conformance-0123456789"
    #: where ``temperature`` and ``top_p`` land in the request body, as key paths
    parameter_paths: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "temperature": ("temperature",), "top_p": ("top_p",)}
    #: the provider's own wait header and its units per second, e.g. ("acme-wait-ms", 1000.0)
    wait_header: ClassVar[tuple[str, float] | None] = None

    def capabilities(self) -> aipk.Capabilities:
        """What the provider declares it supports (its spec's capabilities)."""
        return aipk.registry.default_registry().spec(self.provider).capabilities

    def _require(self, capability: str) -> None:
        if not getattr(self.capabilities(), capability):
            pytest.skip(f"{self.provider} declares {capability}=False")

    def sent_parameter(self, body: Mapping[str, Any], name: str) -> Any:
        """The value of request parameter ``name`` in a sent ``body`` (None when absent)."""
        value: Any = body
        for key in self.parameter_paths[name]:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        return value

    @pytest.fixture
    def sleeps(self) -> _Sleeps:
        return _Sleeps()

    @pytest.fixture
    def client(self, aipk_emulator: Emulator, sleeps: _Sleeps) -> Iterator[aipk.Client]:
        with aipk.Client(self.provider, base_url=aipk_emulator.url(self.protocol),
                         api_key=self.api_key, sleep=sleeps) as client:
            yield client

    def _user(self, text: str = "Hello") -> list[aipk.Message]:
        return [aipk.Message.user(text)]

    # -- chat ----------------------------------------------------------------------------

    def test_chat_text_and_usage(self, aipk_emulator: Emulator, client: aipk.Client) -> None:
        aipk_emulator.enqueue(Reply(text="conformance answer", usage=(7, 3)))
        reply = client.chat(model=self.model, messages=self._user())
        assert reply.text == "conformance answer"
        assert reply.provider == self.provider
        assert reply.finish_reason is aipk.FinishReason.STOP
        assert reply.usage is not None and reply.usage.input_tokens == 7
        assert reply.usage.output_tokens == 3

    def test_unset_fields_are_not_sent(self, aipk_emulator: Emulator,
                                       client: aipk.Client) -> None:
        client.chat(model=self.model, messages=self._user(), temperature=0)
        body = aipk_emulator.requests[-1].json()
        assert self.sent_parameter(body, "temperature") == 0
        assert self.sent_parameter(body, "top_p") is None

    def test_chat_tool_calls(self, aipk_emulator: Emulator, client: aipk.Client) -> None:
        self._require("tools")
        aipk_emulator.enqueue(Reply(tool_calls=[
            ToolCallSpec(name="get_weather", arguments='{"city": "Oslo"}'),
            ToolCallSpec(name="get_weather", arguments='{"city": "Lima"}')]))
        reply = client.chat(model=self.model, messages=self._user(), tools=[_WEATHER])
        assert reply.finish_reason is aipk.FinishReason.TOOL_CALLS
        assert [c.name for c in reply.tool_calls] == ["get_weather", "get_weather"]
        assert [c.parsed_arguments() for c in reply.tool_calls] == [{"city": "Oslo"},
                                                                     {"city": "Lima"}]
        assert len({c.id for c in reply.tool_calls}) == 2

    # -- streaming -----------------------------------------------------------------------

    def test_stream_text_usage_finish(self, aipk_emulator: Emulator,
                                      client: aipk.Client) -> None:
        self._require("streaming")
        aipk_emulator.enqueue(Reply(text="streamed conformance text", chunk_size=5,
                                    usage=(4, 6)))
        with client.stream(model=self.model, messages=self._user()) as stream:
            events = list(stream)
        text = "".join(e.text for e in events if isinstance(e, aipk.TextDelta))
        assert text == "streamed conformance text"
        assert sum(isinstance(e, aipk.TextDelta) for e in events) >= 5
        finishes = [e for e in events if isinstance(e, aipk.FinishEvent)]
        assert [f.reason for f in finishes] == [aipk.FinishReason.STOP]
        response = stream.response
        assert response.text == text
        assert response.usage is not None and response.usage.output_tokens == 6

    def test_stream_tool_calls(self, aipk_emulator: Emulator, client: aipk.Client) -> None:
        self._require("streaming")
        self._require("tools")
        aipk_emulator.enqueue(Reply(tool_calls=[
            ToolCallSpec(name="get_weather", arguments='{"city": "Paris, France"}'),
            ToolCallSpec(name="get_weather", arguments='{"city": "Quito"}')]))
        stream = client.stream(model=self.model, messages=self._user(), tools=[_WEATHER])
        deltas = [e for e in stream if isinstance(e, aipk.ToolCallDelta)]
        assert {d.index for d in deltas} == {0, 1}
        calls = stream.response.tool_calls
        assert [c.parsed_arguments()["city"] for c in calls] == ["Paris, France", "Quito"]
        assert stream.response.finish_reason is aipk.FinishReason.TOOL_CALLS

    # -- limits, retries and errors ------------------------------------------------------

    def test_rate_limit_state_from_headers(self, aipk_emulator: Emulator,
                                           client: aipk.Client) -> None:
        aipk_emulator.set_rate_limit(requests=10, tokens=5000, window=60.0)
        reply = client.chat(model=self.model, messages=self._user())
        state = reply.rate_limit
        assert state is not None
        windows = state.windows()
        assert windows, "the plugin parses the provider's rate-limit headers"
        assert any(w.limit == 10 and w.remaining == 9 for w in windows.values())
        assert all(w.reset_at is None or w.reset_at >= state.observed_at
                   for w in windows.values())

    def test_429_retry_after_is_honoured(self, aipk_emulator: Emulator, client: aipk.Client,
                                         sleeps: _Sleeps) -> None:
        aipk_emulator.enqueue(Fault.status(429, retry_after=2.0))
        aipk_emulator.enqueue(Reply(text="after waiting"))
        assert client.chat(model=self.model, messages=self._user()).text == "after waiting"
        assert sleeps == [2.0]

    def test_providers_own_wait_header_is_honoured(self, aipk_emulator: Emulator,
                                                   client: aipk.Client,
                                                   sleeps: _Sleeps) -> None:
        if self.wait_header is None:
            pytest.skip(f"{self.provider} declares no wait header of its own")
        name, per_second = self.wait_header
        aipk_emulator.enqueue(Fault.status(429, headers={name: f"{2.5 * per_second:g}"}))
        aipk_emulator.enqueue(Reply(text="after the provider's wait"))
        reply = client.chat(model=self.model, messages=self._user())
        assert reply.text == "after the provider's wait"
        assert sleeps == [2.5]

    def test_429_without_retries_is_a_rate_limit_error(self, aipk_emulator: Emulator,
                                                       client: aipk.Client) -> None:
        aipk_emulator.enqueue(Fault.status(429, retry_after=3.0))
        with pytest.raises(RateLimitError) as info:
            client.chat(model=self.model, messages=self._user(),
                        retry=aipk.RetryPolicy(max_retries=0))
        assert info.value.retry_after == 3.0 and info.value.provider == self.provider

    def test_server_error_is_retryable(self, aipk_emulator: Emulator, client: aipk.Client,
                                       sleeps: _Sleeps) -> None:
        aipk_emulator.enqueue(Fault.status(503))
        aipk_emulator.enqueue(Reply(text="recovered"))
        assert client.chat(model=self.model, messages=self._user()).text == "recovered"
        assert len(sleeps) == 1
        aipk_emulator.enqueue(Fault.status(500))
        with pytest.raises(ServerError) as info:
            client.chat(model=self.model, messages=self._user(),
                        retry=aipk.RetryPolicy(max_retries=0))
        assert info.value.retryable and info.value.status == 500

    def test_bad_request_is_not_retried(self, aipk_emulator: Emulator, client: aipk.Client,
                                        sleeps: _Sleeps) -> None:
        aipk_emulator.enqueue(Fault.status(400))
        with pytest.raises(BadRequestError) as info:
            client.chat(model=self.model, messages=self._user())
        assert not info.value.retryable and sleeps == []
        assert info.value.message  # the provider's own words are kept

    def test_wrong_key_is_an_authentication_error(self, aipk_emulator: Emulator,
                                                  client: aipk.Client) -> None:
        aipk_emulator.require_api_key("sk-some-other-key")
        with pytest.raises(AuthenticationError) as info:
            client.chat(model=self.model, messages=self._user())
        assert self.api_key not in str(info.value) and self.api_key not in repr(info.value)
        assert not info.value.retryable

    def test_in_band_stream_error(self, aipk_emulator: Emulator, client: aipk.Client) -> None:
        self._require("streaming")
        aipk_emulator.enqueue(Fault.inband_error(message="Overloaded", code="overloaded",
                                                 after_events=6))
        got: list[aipk.StreamEvent] = []
        with pytest.raises(StreamError, match="Overloaded"):
            got.extend(client.stream(model=self.model, messages=self._user()))
        assert got  # a stream that delivered events is never restarted

    def test_truncated_stream_is_detected(self, aipk_emulator: Emulator,
                                          client: aipk.Client) -> None:
        self._require("streaming")
        aipk_emulator.enqueue(Fault.truncate(after_events=6))
        with pytest.raises(ResponseError):
            list(client.stream(model=self.model, messages=self._user()))

    @pytest.mark.parametrize("cut", [6, -1])
    def test_stream_cut_short_keeps_the_partial_answer(self, aipk_emulator: Emulator,
                                                       client: aipk.Client, cut: int) -> None:
        """A body that ends before the protocol's terminator, once events were delivered
        (here: after ``cut`` events, or all but the last), is an IncompleteStreamError carrying
        what arrived. (A cut before the first event is retried: see the test after this.)"""
        text = "Partial answers are kept on the error."
        aipk_emulator.enqueue(Fault.truncate(after_events=cut, reply=Reply(text=text,
                                                                           chunk_size=5)))
        received = ""
        with pytest.raises(aipk.IncompleteStreamError) as info:
            for event in client.stream(model=self.model, messages=self._user()):
                if type(event) is aipk.TextDelta:
                    received += event.text
        error = info.value
        assert isinstance(error, ResponseError) and error.retryable
        assert error.partial.provider == self.provider
        assert error.partial.text.startswith(received) and text.startswith(error.partial.text)

    def test_reset_mid_stream_is_a_network_error(self, aipk_emulator: Emulator,
                                                 client: aipk.Client) -> None:
        self._require("streaming")
        aipk_emulator.enqueue(Fault.reset_mid_stream(after_events=6))
        with pytest.raises(NetworkError):
            list(client.stream(model=self.model, messages=self._user()))

    def test_a_stream_cut_before_its_first_event_is_retried(
            self, aipk_emulator: Emulator, client: aipk.Client, sleeps: _Sleeps) -> None:
        aipk_emulator.enqueue(Fault.reset_after_headers(), Fault.truncate(after_events=0),
                              Reply(text="whole"))
        text = "".join(client.stream(model=self.model, messages=self._user()).text())
        assert text == "whole" and len(sleeps) == 2

    def test_malformed_body_is_retried_then_a_response_error(
            self, aipk_emulator: Emulator, client: aipk.Client, sleeps: _Sleeps) -> None:
        aipk_emulator.enqueue(Fault.malformed_json(), Reply(text="whole"))
        assert client.chat(model=self.model, messages=self._user()).text == "whole"
        aipk_emulator.enqueue(*[Fault.malformed_json()] * 3)
        with pytest.raises(ResponseError):
            client.chat(model=self.model, messages=self._user())
        assert len(sleeps) == 3

    def test_models(self, client: aipk.Client) -> None:
        models = client.models()
        assert models and all(m.provider == self.provider for m in models)
        assert all(m.id for m in models)

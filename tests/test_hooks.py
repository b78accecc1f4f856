"""One test per hookspec, each through a real client against the emulator, plus meta-tests:
every hookspec is documented in docs/hooks.md and has a ``test_hook_<name>`` here."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import aipk
import aipk.framing
import aipk_openai.plugin
from aipk import hookspecs
from aipk.registry import Registry
from aipk.sse import ServerSentEvent
from aipk_openai import wire
from aipk_testkit.emulator import Emulator, Fault, Reply, emulated_token_count

ROOT = Path(__file__).resolve().parents[1]
USER = [aipk.Message.user("hi")]


def _hookspec_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("aipk_")]


def test_every_hookspec_is_documented() -> None:
    doc = (ROOT / "docs" / "hooks.md").read_text()
    documented = set(re.findall(r"^## (aipk_\w+)$", doc, flags=re.MULTILINE))
    assert documented == set(_hookspec_names())


def test_every_hookspec_has_a_test() -> None:
    tests = {name for name in dir(sys.modules[__name__]) if name.startswith("test_hook_")}
    assert {f"test_hook_{name}" for name in _hookspec_names()} <= tests


def test_every_hookspec_has_one_docstring_and_annotations() -> None:
    for name in _hookspec_names():
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and "\n" not in fn.__doc__.strip(), name
        assert "return" in fn.__annotations__, name


def client_with(emu: Emulator, *plugins: object, provider: str = "openai") -> aipk.Client:
    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, name="openai")
    for plugin in plugins:
        registry.register(plugin, name=type(plugin).__name__)
    return aipk.Client(provider, base_url=emu.url("openai"), api_key="sk-hooks",
                       registry=registry, sleep=lambda s: None)


def test_hook_aipk_providers(emu: Emulator) -> None:
    class Acme:
        @aipk.hookimpl
        def aipk_providers(self) -> Sequence[aipk.ProviderSpec]:
            return [aipk.ProviderSpec(name="acme", protocol="openai",
                                      default_base_url="http://127.0.0.1:1/v1",
                                      env_vars=("ACME_API_KEY",))]

    emu.enqueue(Reply(text="from acme"))
    with client_with(emu, Acme(), provider="acme") as client:
        assert client.provider.name == "acme"
        assert client.chat(model="m", messages=USER).text == "from acme"


def test_hook_aipk_build_request(emu: Emulator) -> None:
    class Tracer:
        @aipk.hookimpl(wrapper=True)
        def aipk_build_request(self, provider: aipk.Provider, request: aipk.ChatRequest,
                               stream: bool) -> Any:
            built = yield
            return built.merge_headers({"x-trace-id": f"{provider.name}-{stream}"})

    with client_with(emu, Tracer()) as client:
        client.chat(model="m", messages=USER)
        list(client.stream(model="m", messages=USER))
    assert [r.headers["x-trace-id"] for r in emu.requests] == ["openai-False", "openai-True"]


def test_hook_aipk_apply_credential(emu: Emulator) -> None:
    class XApiKey:
        @aipk.hookimpl(tryfirst=True)
        def aipk_apply_credential(self, provider: aipk.Provider, http_request: aipk.HttpRequest,
                                  credential: aipk.Credential) -> aipk.HttpRequest:
            assert credential.secret is not None
            return http_request.merge_headers({"x-api-key": credential.secret.reveal()})

    with client_with(emu, XApiKey()) as client:
        client.chat(model="m", messages=USER)
    headers = emu.requests[-1].headers
    assert headers["x-api-key"] == "sk-hooks" and "authorization" not in headers


def test_hook_aipk_parse_rate_limits(emu: Emulator) -> None:
    class Daily:
        @aipk.hookimpl(tryfirst=True)
        def aipk_parse_rate_limits(self, provider: aipk.Provider, status: int,
                                   headers: Mapping[str, str], now: float) -> aipk.RateLimitState:
            base = wire.parse_rate_limits(status, headers, now) or aipk.RateLimitState()
            daily = aipk.RateLimitWindow(limit=1000, remaining=990)
            return aipk.RateLimitState(requests=base.requests, daily_requests=daily,
                                       observed_at=now)

    emu.set_rate_limit(requests=5, tokens=100, window=60)
    with client_with(emu, Daily()) as client:
        reply = client.chat(model="m", messages=USER)
    assert reply.rate_limit is not None
    assert reply.rate_limit.daily_requests == aipk.RateLimitWindow(limit=1000, remaining=990)
    assert reply.rate_limit.requests is not None and reply.rate_limit.requests.limit == 5


def test_hook_aipk_parse_response(emu: Emulator) -> None:
    class Shout:
        @aipk.hookimpl(wrapper=True)
        def aipk_parse_response(self, provider: aipk.Provider, request: aipk.ChatRequest,
                                data: Any, headers: Mapping[str, str]) -> Any:
            response = yield
            message = aipk.Message.assistant(response.text.upper())
            return aipk.ChatResponse(provider=response.provider, model=response.model,
                                     message=message, extra={"raw_id": data["id"]})

    emu.enqueue(Reply(text="quiet"))
    with client_with(emu, Shout()) as client:
        reply = client.chat(model="m", messages=USER)
    assert reply.text == "QUIET" and reply.extra["raw_id"].startswith("chatcmpl-")


def test_hook_aipk_stream_decoder(emu: Emulator) -> None:
    class Counting(wire.OpenAIStreamDecoder):
        seen = 0

        def feed(self, event: ServerSentEvent) -> Sequence[aipk.StreamEvent]:
            Counting.seen += 1
            return super().feed(event)

    class Plugin:
        @aipk.hookimpl(tryfirst=True)
        def aipk_stream_decoder(self, provider: aipk.Provider,
                                request: aipk.ChatRequest) -> Counting:
            return Counting(provider)

    emu.enqueue(Reply(text="abcdefgh", chunk_size=2))
    with client_with(emu, Plugin()) as client:
        stream = client.stream(model="m", messages=USER)
        assert "".join(stream.text()) == "abcdefgh"
    assert Counting.seen >= 6  # role chunk, 4 deltas, finish, usage, [DONE]


def test_a_decoder_bug_names_the_decoder(emu: Emulator) -> None:
    class Forgetful(wire.OpenAIStreamDecoder):  # its feed() returns text, not stream events
        def feed(self, event: ServerSentEvent) -> Sequence[aipk.StreamEvent]:
            return ["text"]  # type: ignore[list-item]

    class Plugin:
        @aipk.hookimpl(tryfirst=True)
        def aipk_stream_decoder(self, provider: aipk.Provider,
                                request: aipk.ChatRequest) -> Forgetful:
            return Forgetful(provider)

    with client_with(emu, Plugin()) as client, pytest.raises(aipk.errors.ResponseError) as info:
        list(client.stream(model="m", messages=USER))
    message = str(info.value)
    assert "could not be decoded (AttributeError:" in message
    assert f"by {__name__}.test_a_decoder_bug_names_the_decoder.<locals>.Forgetful" in message
    assert "or that stream decoder (of the provider's plugin) has a bug" in message


def test_a_build_request_of_the_wrong_type_is_a_plugin_error(emu: Emulator) -> None:
    class Plugin:
        @aipk.hookimpl(tryfirst=True)
        def aipk_build_request(self, provider: aipk.Provider, request: aipk.ChatRequest,
                               stream: bool) -> Any:
            return {"url": provider.url("chat/completions")}

    with client_with(emu, Plugin()) as client, pytest.raises(aipk.errors.PluginError) as info:
        client.chat(model="m", messages=USER)
    assert str(info.value) == (
        "aipk_build_request returned a dict for provider 'openai'; a plugin must return an "
        "aipk.HttpRequest (method, url, headers, json=body), or None for providers it does "
        "not serve")
    assert emu.requests == []


def test_a_decoder_brings_its_own_framer(emu: Emulator) -> None:
    """A third-party framing: the decoder's ``framing`` is a callable returning an
    ``aipk.Framer``; a framer's ValueError is a ResponseError; an unknown name a PluginError."""

    class CountingFramer:
        chunks = 0

        def __init__(self) -> None:
            self._sse = aipk.framing.SSEDecoder()

        def feed(self, chunk: bytes) -> list[ServerSentEvent]:
            CountingFramer.chunks += 1
            return self._sse.feed(chunk)

        def close(self) -> list[ServerSentEvent]:
            return self._sse.close()

    class Refusing(CountingFramer):
        def feed(self, chunk: bytes) -> list[ServerSentEvent]:
            raise ValueError("not my framing")

    framings: list[object] = [CountingFramer, Refusing, "xml"]

    class Plugin:
        @aipk.hookimpl_for(protocol="openai", tryfirst=True)
        def aipk_stream_decoder(self, provider: aipk.Provider) -> wire.OpenAIStreamDecoder:
            decoder = type("Framed", (wire.OpenAIStreamDecoder,), {
                "__slots__": (), "framing": framings.pop(0)})(provider)
            return decoder

    assert isinstance(CountingFramer(), aipk.Framer)
    emu.enqueue(Reply(text="abcdefgh", chunk_size=2))
    with client_with(emu, Plugin()) as client:
        assert "".join(client.stream(model="m", messages=USER).text()) == "abcdefgh"
        assert CountingFramer.chunks >= 6  # one HTTP chunk per event
        with pytest.raises(aipk.ResponseError, match="not my framing"):
            list(client.stream(model="m", messages=USER))
        with pytest.raises(aipk.PluginError, match="unknown stream framing 'xml'"):
            list(client.stream(model="m", messages=USER))


def test_hook_aipk_map_error(emu: Emulator) -> None:
    class QuotaError(aipk.RateLimitError):
        pass

    class Plugin:
        @aipk.hookimpl(tryfirst=True)
        def aipk_map_error(self, provider: aipk.Provider, status: int,
                           headers: Mapping[str, str], data: Any,
                           request_id: str | None) -> aipk.ProviderError | None:
            if status != 429:
                return None
            return QuotaError("daily quota", provider=provider.name, retry_after=None,
                              request_id=request_id)

    emu.enqueue(Fault.status(429, retry_after=1))
    emu.enqueue(Fault.status(429, retry_after=1))
    emu.enqueue(Fault.status(429, retry_after=1))
    with client_with(emu, Plugin()) as client, pytest.raises(QuotaError) as info:
        client.chat(model="m", messages=USER, retry=aipk.RetryPolicy(max_retries=0))
    assert info.value.request_id and str(info.value).startswith("[openai")


def test_hook_aipk_retry_after(emu: Emulator) -> None:
    class Plugin:
        @aipk.hookimpl_for(protocol="openai")
        def aipk_retry_after(self, provider: aipk.Provider, status: int,
                             headers: Mapping[str, str], now: float) -> float | None:
            raw = headers.get("acme-wait-ms")
            return float(raw) / 1000 if raw else None

    sleeps: list[float] = []
    emu.enqueue(Fault.status(429, retry_after=9, headers={"acme-wait-ms": "1500"}))
    emu.enqueue(Reply(text="waited"))
    emu.enqueue(Fault.status(429, retry_after=4))  # no provider header: retry-after stands
    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, name="openai")
    registry.register(Plugin(), name="wait-header")
    with aipk.Client("openai", base_url=emu.url("openai"), api_key="sk-hooks",
                     registry=registry, sleep=sleeps.append) as client:
        assert client.chat(model="m", messages=USER).text == "waited"
        assert sleeps == [1.5]  # the provider's header, over retry-after: 9
        with pytest.raises(aipk.RateLimitError) as info:
            client.chat(model="m", messages=USER, retry=aipk.RetryPolicy(max_retries=0))
    assert info.value.retry_after == 4.0


def test_hook_aipk_models_request(emu: Emulator) -> None:
    class Plugin:
        @aipk.hookimpl(tryfirst=True)
        def aipk_models_request(self, provider: aipk.Provider) -> aipk.HttpRequest:
            return aipk.HttpRequest(method="GET", url=provider.url("models?limit=2"))

    with client_with(emu, Plugin()) as client:
        assert client.models()
    assert emu.requests[-1].query.endswith("limit=2")


def test_hook_aipk_parse_models(emu: Emulator) -> None:
    class Plugin:
        @aipk.hookimpl(tryfirst=True)
        def aipk_parse_models(self, provider: aipk.Provider,
                              data: Any) -> list[aipk.ModelInfo]:
            return [aipk.ModelInfo(id=f"x-{m['id']}", provider=provider.name)
                    for m in data["data"]]

    with client_with(emu, Plugin()) as client:
        ids = [m.id for m in client.models()]
    assert ids and all(i.startswith("x-") for i in ids)


def test_hook_aipk_count_tokens_request(emu: Emulator) -> None:
    class Plugin:
        """Counts with the emulator's Anthropic-style endpoint on the OpenAI protocol."""

        @aipk.hookimpl
        def aipk_count_tokens_request(self, provider: aipk.Provider,
                                      request: aipk.ChatRequest) -> aipk.TokenCountCall:
            url = emu.url("anthropic") + "/v1/messages/count_tokens"
            return aipk.TokenCountCall(
                request=aipk.HttpRequest(url=url, headers={"anthropic-version": "2023-06-01"},
                                         json={"model": request.model, "messages": [
                                             {"role": "user", "content": "hi"}]}),
                parse=lambda data: data["input_tokens"] * 10)

    with client_with(emu) as plain:
        estimate = plain.count_tokens(model="gpt-4o-mini", messages=USER)
    assert estimate.estimated and emu.requests == []
    with client_with(emu, Plugin()) as client:
        counted = client.count_tokens(model="gpt-4o-mini", messages=USER)
    assert not counted.estimated
    assert counted.input_tokens == 10 * emulated_token_count("hi", 1)
    assert emu.requests[-1].path.endswith("/v1/messages/count_tokens")


def test_hook_aipk_login_flow(emu: Emulator) -> None:
    from aipk.credentials import LoginFlow, OAuthEndpoints, login, login_flow
    from aipk_testkit.emulator._oauth import oauth_server

    class Acme:
        @aipk.hookimpl
        def aipk_providers(self) -> Sequence[aipk.ProviderSpec]:
            return [aipk.ProviderSpec(name="acme", protocol="openai",
                                      default_base_url="https://api.acme.example/v1",
                                      env_vars=("ACME_API_KEY",))]

        @aipk.hookimpl
        def aipk_login_flow(self, provider: aipk.Provider) -> LoginFlow | None:
            if provider.name != "acme":
                return None
            return LoginFlow(kind="device_code", endpoints=OAuthEndpoints(
                provider="acme", client_id="acme-cli", token_url="https://id.acme.example/t",
                device_authorization_url="https://id.acme.example/d"))

    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, name="openai")
    registry.register(Acme(), name="acme")
    oauth = oauth_server(emu)
    oauth.reset()
    oauth.device_interval = 0.01
    flow = login_flow("acme", registry=registry)
    assert flow.endpoints.client_id == "acme-cli"
    cred = login(flow, base_url=emu.url("openai"), show=lambda device: None)
    assert oauth.access_token_valid(cred.access_token.reveal())
    with pytest.raises(aipk.ConfigurationError, match="'groq' has no login flow; set GROQ_API"):
        login_flow("groq", registry=registry)


def test_hook_aipk_config_options(emu: Emulator) -> None:
    import attrs

    from aipk.config import option_schema, parse_config
    from aipk.errors import ConfigFileError

    @attrs.frozen
    class AcmeOptions:
        region: str = "eu"
        priority: int = 0

    class Acme:
        @aipk.hookimpl
        def aipk_providers(self) -> Sequence[aipk.ProviderSpec]:
            return [aipk.ProviderSpec(name="acme", protocol="openai",
                                      default_base_url=emu.url("openai"))]

        @aipk.hookimpl
        def aipk_config_options(self, provider: aipk.ProviderSpec) -> type | None:
            return AcmeOptions if provider.name == "acme" else None

    registry = Registry(entry_points=False)
    registry.register(aipk_openai.plugin, name="openai")
    registry.register(Acme(), name="acme-plugin")
    schema = option_schema(registry, registry.spec("acme"))
    assert schema["region"] is str and schema["priority"] is int
    assert schema["organization"] is str                        # aipk-openai's, by protocol
    with pytest.raises(ConfigFileError) as info:
        parse_config('[providers.acme]\napi_key = "k"\noptions = { regoin = "us", '
                     'priority = "high" }\n', registry=registry)
    text = str(info.value)
    assert "providers.acme.options.regoin: unknown option 'regoin' for acme; did you mean " \
           "'region'?" in text
    assert "providers.acme.options.priority: expected a whole number, got 'high'" in text
    config = parse_config('[providers.acme]\napi_key = "sk-acme"\noptions = { region = "us" }\n',
                          registry=registry)
    with aipk.Client.from_config("acme", config=config) as client:
        assert client.provider.options["region"] == "us"
        assert client.chat(model="m", messages=USER).text == "echo: hi"


def test_hook_aipk_observe(emu: Emulator) -> None:
    class Observer:
        def __init__(self) -> None:
            self.seen: list[str] = []

        @aipk.hookimpl
        def aipk_observe(self, event: Any) -> None:
            self.seen.append(type(event).__name__)

    observer = Observer()
    emu.enqueue(Reply(text="watched"))
    with client_with(emu, observer) as client:
        assert client.chat(model="m", messages=USER).text == "watched"
    assert observer.seen == ["CallStarted", "CallFinished"]

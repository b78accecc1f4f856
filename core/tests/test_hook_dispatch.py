"""Per-provider hook dispatch: each Engine calls only the plugins that can answer for its
provider (Registry.hooks_for), through FastHook, which must behave exactly like pluggy."""

from __future__ import annotations

import warnings
from collections.abc import Generator, Sequence
from typing import Any

import pluggy
import pytest

import aipk
from aipk import (
    ChatRequest,
    ChatResponse,
    Credential,
    HttpRequest,
    Provider,
    ProviderSpec,
    RetryPolicy,
)
from aipk._core import Engine
from aipk.registry import Registry

REQUEST = ChatRequest(model="m", messages=[aipk.Message.user("hi")])


def _spec(name: str, protocol: str) -> ProviderSpec:
    return ProviderSpec(name=name, protocol=protocol, default_base_url=f"http://{name}.test/v1")


class Home:
    """The home plugin of protocol "wire": declares "wire" and serves every provider of it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @aipk.hookimpl
    def aipk_providers(self) -> Sequence[ProviderSpec]:
        return [_spec("wire", "wire"), _spec("preset", "wire")]

    @aipk.hookimpl
    def aipk_build_request(self, provider: Provider, request: ChatRequest,
                           stream: bool) -> HttpRequest | None:
        self.log.append(f"home:{provider.name}")
        if provider.protocol != "wire":
            return None
        return HttpRequest(url=provider.url("chat"), headers={"x-home": "1"}, json={})


class Adjuster:
    """Declares its own provider "adj" (protocol "wire") and adjusts it with tryfirst."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @aipk.hookimpl
    def aipk_providers(self) -> Sequence[ProviderSpec]:
        return [_spec("adj", "wire")]

    @aipk.hookimpl(tryfirst=True)
    def aipk_build_request(self, provider: Provider, request: ChatRequest,
                           stream: bool) -> HttpRequest | None:
        self.log.append(f"adj:{provider.name}")
        if provider.name != "adj":
            return None
        return HttpRequest(url=provider.url("adj"), json={})


class Other:
    """An unrelated provider plugin with a protocol of its own."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @aipk.hookimpl
    def aipk_providers(self) -> Sequence[ProviderSpec]:
        return [_spec("other", "other")]

    @aipk.hookimpl(tryfirst=True)
    def aipk_build_request(self, provider: Provider, request: ChatRequest,
                           stream: bool) -> HttpRequest | None:
        self.log.append(f"other:{provider.name}")
        return None

    @aipk.hookimpl
    def aipk_parse_rate_limits(self, provider: Provider, status: int) -> None:
        self.log.append(f"other-limits:{provider.name}")


class Tracer:
    """Cross-cutting: declares no provider, wraps every provider's requests."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @aipk.hookimpl(wrapper=True)
    def aipk_build_request(self, provider: Provider, request: ChatRequest,
                           stream: bool) -> Generator[None, Any, Any]:
        self.log.append(f"tracer-in:{provider.name}")
        built = yield
        self.log.append(f"tracer-out:{provider.name}")
        return None if built is None else built.merge_headers({"x-trace": provider.name})


def _registry(*plugins: object) -> Registry:
    registry = Registry(entry_points=False)
    for plugin in plugins:
        registry.register(plugin, name=type(plugin).__name__)
    return registry


def _engine(registry: Registry, name: str) -> Engine:
    spec = registry.spec(name)
    provider = Provider(spec=spec, base_url=spec.default_base_url)
    return Engine(registry=registry, provider=provider, credential=Credential(kind="none"),
                  retry=RetryPolicy())


def test_unrelated_provider_plugin_is_not_called_cross_cutting_wrapper_is() -> None:
    log: list[str] = []
    registry = _registry(Home(log), Adjuster(log), Other(log), Tracer(log))
    built = _engine(registry, "wire").prepare(REQUEST, stream=False)
    assert built.headers == {"x-home": "1", "x-trace": "wire"}
    assert log == ["tracer-in:wire", "home:wire", "tracer-out:wire"]


def test_a_providers_own_plugin_and_its_protocols_home_are_called() -> None:
    log: list[str] = []
    registry = _registry(Home(log), Adjuster(log), Other(log), Tracer(log))
    built = _engine(registry, "adj").prepare(REQUEST, stream=False)
    assert built.url == "http://adj.test/v1/adj"
    assert log == ["tracer-in:adj", "adj:adj", "tracer-out:adj"]
    log.clear()
    _engine(registry, "preset").prepare(REQUEST, stream=False)  # declared by Home
    assert log == ["tracer-in:preset", "home:preset", "tracer-out:preset"]


def test_hooks_for_reports_what_it_left_out() -> None:
    log: list[str] = []
    home, adjuster, other, tracer = Home(log), Adjuster(log), Other(log), Tracer(log)
    registry = _registry(home, adjuster, other, tracer)
    spec = registry.spec("wire")
    assert set(registry.hooks_for(Provider(spec=spec, base_url="http://x")).removed) == {
        adjuster, other}
    spec = registry.spec("other")
    assert set(registry.hooks_for(Provider(spec=spec, base_url="http://x")).removed) == {
        home, adjuster}


def test_protocol_without_a_home_keeps_every_plugin_of_that_protocol() -> None:
    log: list[str] = []

    class Server:
        @aipk.hookimpl
        def aipk_providers(self) -> Sequence[ProviderSpec]:
            return [_spec("first", "homeless")]

        @aipk.hookimpl
        def aipk_build_request(self, provider: Provider) -> HttpRequest | None:
            log.append(f"server:{provider.name}")
            return HttpRequest(url=provider.url("x")) if provider.protocol == "homeless" else None

    class Second:
        @aipk.hookimpl
        def aipk_providers(self) -> Sequence[ProviderSpec]:
            return [_spec("second", "homeless")]

    registry = _registry(Server(), Second(), Other(log))
    assert _engine(registry, "second").prepare(REQUEST, stream=False).url == (
        "http://second.test/v1/x")
    assert log == ["server:second"]


def test_plugins_registered_after_the_engine_are_called() -> None:
    log: list[str] = []
    registry = _registry(Home(log))
    engine = _engine(registry, "wire")
    assert engine.prepare(REQUEST, stream=False).headers == {"x-home": "1"}
    registry.register(Tracer(log), name="late")
    assert engine.prepare(REQUEST, stream=False).headers == {"x-home": "1", "x-trace": "wire"}
    registry.unregister("late")
    assert engine.prepare(REQUEST, stream=False).headers == {"x-home": "1"}


# -- FastHook behaves like pluggy ----------------------------------------------------------


def _both(registry: Registry, hook: str, **kwargs: Any) -> tuple[Any, Any]:
    """The same call through pluggy and through the engine's FastHook."""
    spec = registry.spec("wire")
    provider = Provider(spec=spec, base_url=spec.default_base_url)
    fast = getattr(registry.hooks_for(provider), hook)
    args = dict(provider=provider, **kwargs)
    return (getattr(registry.pm.hook, hook)(**args),
            fast(*(args[name] for name in fast._names)))


def test_fast_hook_matches_pluggy_for_wrappers_order_and_exceptions() -> None:
    log: list[str] = []

    class Outer:
        @aipk.hookimpl(wrapper=True)
        def aipk_build_request(self, provider: Provider) -> Generator[None, Any, Any]:
            log.append("outer-in")
            try:
                built = yield
            except ValueError as exc:
                log.append(f"outer-saw:{exc}")
                return HttpRequest(url="http://recovered")
            log.append("outer-out")
            return built

    class Failing:
        @aipk.hookimpl(tryfirst=True)
        def aipk_build_request(self, stream: bool) -> HttpRequest | None:
            log.append("failing")
            if stream:
                raise ValueError("boom")
            return None

    registry = _registry(Home(log), Failing(), Outer())
    for stream in (False, True):
        log.clear()
        slow, fast = _both(registry, "aipk_build_request", request=REQUEST, stream=stream)
        assert fast == slow
        half = len(log) // 2
        assert log[:half] == log[half:]
    assert log[:3] == ["outer-in", "failing", "outer-saw:boom"]


def test_fast_hook_raises_what_pluggy_raises() -> None:
    class Broken:
        @aipk.hookimpl
        def aipk_providers(self) -> Sequence[ProviderSpec]:
            return [_spec("wire", "wire")]

        @aipk.hookimpl
        def aipk_parse_rate_limits(self, status: int) -> None:
            raise KeyError(status)

    registry = _registry(Broken())
    with pytest.raises(KeyError, match="429"):
        _both(registry, "aipk_parse_rate_limits", status=429, headers={}, now=0.0)


def test_keyword_arguments_and_old_style_hookwrappers_go_through_pluggy() -> None:
    seen: list[Any] = []

    class Keyword:
        @aipk.hookimpl
        def aipk_providers(self) -> Sequence[ProviderSpec]:
            return [_spec("wire", "wire")]

        @aipk.hookimpl
        def aipk_build_request(self, provider: Provider, stream: bool = False) -> HttpRequest:
            seen.append(stream)
            return HttpRequest(url=provider.url(str(stream)))

    class OldStyle:
        @aipk.hookimpl(hookwrapper=True)
        def aipk_parse_rate_limits(self) -> Generator[None, Any, None]:
            outcome = yield
            seen.append(outcome.get_result())

    registry = _registry(Keyword(), OldStyle())
    slow, fast = _both(registry, "aipk_build_request", request=REQUEST, stream=True)
    # pluggy 1.7 passes a parameter that has a default, earlier versions leave the default:
    # aipk's dispatch does what the installed pluggy does
    passed = tuple(int(v) for v in pluggy.__version__.split(".")[:2]) >= (1, 7)
    assert slow == fast and fast.url.endswith(f"/{passed}")
    assert seen == [passed, passed]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _both(registry, "aipk_parse_rate_limits", status=200, headers={}, now=0.0)
    assert seen[2:] == [None, None]


def test_traced_hook_calls_are_still_logged(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AIPK_TRACE_PLUGINS", "1")
    log: list[str] = []
    registry = _registry(Home(log), Other(log))
    engine = _engine(registry, "wire")
    with caplog.at_level("DEBUG", logger="aipk.plugins"):
        engine.prepare(REQUEST, stream=False)
    assert "hook aipk_build_request -> 1 impls" in caplog.text  # Home only: the rest left out
    assert log == ["home:wire"]


# -- what the engine calls -----------------------------------------------------------------


def test_a_lone_implementation_is_called_directly_until_plugins_change() -> None:
    log: list[str] = []
    home = Home(log)
    registry = _registry(home)
    spec = registry.spec("wire")
    hooks = registry.hooks_for(Provider(spec=spec, base_url=spec.default_base_url))
    assert hooks.aipk_build_request.call == home.aipk_build_request  # no frame of ours
    assert not hooks.stale
    registry.register(Tracer(log), name="late")
    assert hooks.stale  # the engine asks once per request, then replans
    hooks.replan()
    assert not hooks.stale
    assert hooks.aipk_build_request.call != home.aipk_build_request  # a wrapper: via pluggy
    args = (Provider(spec=spec, base_url=spec.default_base_url), REQUEST, False)
    assert hooks.aipk_build_request.call(*args).headers == {"x-home": "1", "x-trace": "wire"}


class Parser:
    """Parses every answer into the record it is given (to see what the engine does to it)."""

    def __init__(self, answer: ChatResponse) -> None:
        self.answer = answer

    @aipk.hookimpl
    def aipk_providers(self) -> Sequence[ProviderSpec]:
        return [_spec("wire", "wire")]

    @aipk.hookimpl
    def aipk_parse_response(self, provider: Provider) -> ChatResponse:
        return self.answer


def test_the_engine_fills_in_transport_info_on_a_new_record_and_copies_any_other() -> None:
    fresh = ChatResponse(provider="wire", model="m", message=aipk.Message.assistant("hi"))
    headers = {"x-request-id": "req_1"}
    state = aipk.RateLimitState(not_before=5.0)
    engine = _engine(_registry(Parser(fresh)), "wire")
    answer = engine.chat_response(REQUEST, b"{}", headers, state)
    assert answer is fresh and (answer.request_id, answer.rate_limit) == ("req_1", state)

    stamped = ChatResponse(provider="wire", model="m", message=aipk.Message.assistant("hi"),
                           request_id="req_plugin")
    engine = _engine(_registry(Parser(stamped)), "wire")
    answer = engine.chat_response(REQUEST, b"{}", headers, state)
    assert answer is not stamped and stamped.request_id == "req_plugin"  # left untouched
    assert (answer.request_id, answer.rate_limit, answer.text) == ("req_1", state, "hi")


# -- hookimpl_for: implementations that serve only some providers ------------------------------


class Routed:
    """A cross-cutting plugin (declares no provider) whose hooks serve only protocol "wire"
    and the provider "other", without a guard of their own."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @aipk.hookimpl_for(protocol="wire", tryfirst=True)
    def aipk_build_request(self, provider: Provider, request: ChatRequest,
                           stream: bool) -> HttpRequest:
        self.log.append(f"routed:{provider.name}")
        return HttpRequest(url=provider.url("routed"), json={})

    @aipk.hookimpl_for(provider=["other"], wrapper=True)
    def aipk_parse_rate_limits(self, provider: Provider) -> Generator[None, Any, Any]:
        self.log.append(f"routed-wrap:{provider.name}")
        result = yield
        return result


def test_hookimpl_for_leaves_other_providers_out_of_the_plan() -> None:
    log: list[str] = []
    routed = Routed(log)
    registry = _registry(Home(log), Other(log), routed)
    wire = _engine(registry, "preset")
    other = _engine(registry, "other")
    assert wire.prepare(REQUEST, stream=False).url == "http://preset.test/v1/routed"
    with pytest.raises(aipk.PluginError, match="aipk_build_request"):
        other.prepare(REQUEST, stream=False)  # Other answers None; nobody else serves "other"
    assert "other:other" in log
    assert log.count("routed:preset") == 1
    assert "routed:other" not in log  # not even called to say None
    hooks = registry.hooks_for(other.provider)
    assert all(step[0].__func__ is not Routed.aipk_build_request
               for step in hooks.aipk_build_request._plan[1] or ())
    # for "wire" the plan calls the implementation itself, not its guard
    wire_plan = registry.hooks_for(wire.provider).aipk_build_request._plan[1]
    assert any(getattr(step[0], "__func__", None) is Routed.aipk_build_request.__wrapped__
               for step in wire_plan)


def test_hookimpl_for_guards_calls_through_pluggy() -> None:
    log: list[str] = []
    registry = _registry(Home(log), Other(log), Routed(log))
    spec = registry.spec("other")
    other = Provider(spec=spec, base_url=spec.default_base_url)
    wire_spec = registry.spec("wire")
    wire = Provider(spec=wire_spec, base_url=wire_spec.default_base_url)
    hook = registry.hook
    assert hook.aipk_build_request(provider=other, request=REQUEST, stream=False) is None
    built = hook.aipk_build_request(provider=wire, request=REQUEST, stream=False)
    assert built.url == "http://wire.test/v1/routed"
    assert "routed:other" not in log and "routed:wire" in log
    # the wrapper runs for "other" only, and passes results through untouched
    assert hook.aipk_parse_rate_limits(provider=wire, status=200, headers={}, now=0.0) is None
    assert hook.aipk_parse_rate_limits(provider=other, status=200, headers={}, now=0.0) is None
    assert [e for e in log if e.startswith("routed-wrap")] == ["routed-wrap:other"]
    assert "other-limits:other" in log and "other-limits:wire" in log


def test_hookimpl_for_needs_a_target_and_a_provider_argument() -> None:
    with pytest.raises(TypeError, match="protocol= or provider="):
        aipk.hookimpl_for()
    with pytest.raises(TypeError, match="does not take 'provider'"):
        @aipk.hookimpl_for(protocol="wire")
        def aipk_providers() -> Sequence[ProviderSpec]:
            return []

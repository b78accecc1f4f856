"""A distinctive key (the canary) never appears in any error, repr or log record, however a
request fails: a 401 echoing it (partly, as OpenAI does, or whole), an error body quoting it,
a network failure, a header the HTTP library refuses. Real HTTP against the emulator, all
loggers (aipk, httpx, httpcore, aiohttp) captured at DEBUG."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipk
from aipk import Message
from aipk.credentials import SingleCredential
from aipk.errors import (
    AipkError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    NetworkError,
)
from aipk.transports import AiohttpTransport
from aipk_testkit.emulator import Emulator, Fault

CANARY = "sk-canary-4b1f8e2a9d7c3e6f0a5b"
USER = [Message.user("Hello")]
LOGGERS = ("", "aipk", "httpx", "httpcore", "aiohttp", "asyncio")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def texts_of(error: BaseException) -> list[str]:
    """Everything an error shows: str, repr, args and attributes, along its whole chain."""
    out: list[str] = []
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out += [str(current), repr(current), repr(current.args)]
        out += [repr(v) for v in vars(current).values()] if hasattr(current, "__dict__") else []
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return out


def assert_never_shown(secret: str, errors: list[BaseException],
                       logs: pytest.LogCaptureFixture) -> None:
    for error in errors:
        for text in texts_of(error):
            assert secret not in text, text
    for record in logs.records:
        shown = record.getMessage()
        if record.exc_info:
            shown += logging.Formatter().formatException(record.exc_info)
        assert secret not in shown, shown
    assert logs.records, "nothing was logged: the log capture is not working"


def failing_calls(client: aipk.Client, *, models: bool = True) -> list[BaseException]:
    errors: list[BaseException] = []
    calls = [lambda: client.chat(model="gpt-4o-mini", messages=USER),
             lambda: list(client.stream(model="gpt-4o-mini", messages=USER))]
    for call in [*calls, client.models] if models else calls:
        with pytest.raises(AipkError) as caught:
            call()
        errors.append(caught.value)
    return errors


T = TypeVar("T")


async def closing(run: Callable[[Any], Awaitable[T]], transport: Any) -> T:
    """``run(transport)``, then close the transport (one passed in is the caller's to close)."""
    try:
        return await run(transport)
    finally:
        await transport.close()

def test_openai_style_partial_echo_of_a_wrong_key(emu: Emulator,
                                                  logs: pytest.LogCaptureFixture) -> None:
    emu.require_api_key("sk-the-right-one-0000")
    with aipk.Client("openai", api_key=CANARY, base_url=emu.url("openai"),
                     max_retries=0) as client:
        errors = failing_calls(client)
    assert all(isinstance(e, AuthenticationError) for e in errors)
    assert "Incorrect API key provided: ****" in str(errors[0])
    assert_never_shown(CANARY, errors, logs)
    assert_never_shown(CANARY[:8], errors, logs)  # the echoed prefix is masked too


@pytest.mark.parametrize("status", [401, 400, 403, 500])
def test_a_body_quoting_the_whole_key(emu: Emulator, logs: pytest.LogCaptureFixture,
                                      status: int) -> None:
    emu.enqueue(*[Fault.status(status, message=f"Incorrect API key provided: {CANARY}")] * 2)
    with aipk.Client("openai", api_key=CANARY, base_url=emu.url("openai"),
                     max_retries=0) as client:
        errors = failing_calls(client, models=False)
    assert "Incorrect API key provided: ****" in str(errors[0])
    body = getattr(errors[0], "body", None)
    assert body is not None and "****" in repr(body)
    assert_never_shown(CANARY, errors, logs)


def test_network_failures(emu: Emulator, logs: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    errors: list[BaseException] = []
    with aipk.Client("openai", api_key=CANARY, base_url=f"http://127.0.0.1:{port}/v1",
                     max_retries=0) as client:
        errors += failing_calls(client)
    emu.enqueue(Fault.reset_mid_stream(after_events=2))
    with aipk.Client("openai", api_key=CANARY, base_url=emu.url("openai"),
                     max_retries=0) as client, pytest.raises(NetworkError) as caught:
        list(client.stream(model="gpt-4o-mini", messages=USER))
    errors.append(caught.value)
    assert_never_shown(CANARY, errors, logs)


@pytest.mark.parametrize("bad", [f"{CANARY}\n", f"{CANARY}\r\nX-Injected: 1", f"{CANARY}é"])
def test_a_bad_key_from_an_unchecked_source_is_refused_before_sending(
        emu: Emulator, logs: pytest.LogCaptureFixture, bad: str) -> None:
    source = SingleCredential("openai", aipk.Credential(kind="api_key", secret=aipk.Secret(bad),
                                                        id="custom"))
    with aipk.Client("openai", credentials=source, base_url=emu.url("openai"),
                     max_retries=0) as client, pytest.raises(
            ConfigurationError, match="credential 'custom'") as caught:
        client.chat(model="gpt-4o-mini", messages=USER)
    assert emu.requests == []  # nothing reached the server, nothing reached the HTTP library
    assert_never_shown(CANARY, [caught.value], logs)


def test_a_plugin_header_the_http_library_refuses(emu: Emulator,
                                                 logs: pytest.LogCaptureFixture) -> None:
    # An option the plugin copies into a header, with a non-ASCII character: httpx would raise
    # a bare UnicodeEncodeError; aipk names the header instead.
    with aipk.Client("openai", api_key=CANARY, base_url=emu.url("openai"), max_retries=0,
                     organization="org-é") as client, pytest.raises(
            aipk.InvalidRequestError, match="'openai-organization'") as caught:
        client.chat(model="gpt-4o-mini", messages=USER)
    assert_never_shown(CANARY, [caught.value], logs)


def test_async_clients_over_httpx_and_aiohttp(emu: Emulator,
                                             logs: pytest.LogCaptureFixture) -> None:
    emu.require_api_key("sk-the-right-one-0000")
    errors: list[BaseException] = []

    async def run(transport: Any) -> None:
        async with aipk.AsyncClient("openai", api_key=f"{CANARY}\n", base_url=emu.url("openai"),
                                    max_retries=0, transport=transport) as client:
            for call in (client.chat(model="gpt-4o-mini", messages=USER), client.models()):
                try:
                    await call
                except AipkError as exc:
                    errors.append(exc)

    asyncio.run(run(None))
    asyncio.run(closing(run, AiohttpTransport()))
    assert len(errors) == 4 and all(isinstance(e, AuthenticationError) for e in errors)
    assert_never_shown(CANARY, errors, logs)


def test_key_with_trailing_newline_works(emu: Emulator) -> None:
    emu.require_api_key(CANARY)
    with aipk.Client("openai", api_key=CANARY + "\n", base_url=emu.url("openai")) as client:
        assert client.chat(model="gpt-4o-mini", messages=USER).text
    assert emu.requests[-1].headers["authorization"] == f"Bearer {CANARY}"


# -- property: any secret string -----------------------------------------------------------------

SECRETS = st.builds(lambda head, body, tail: head + "sk-" + body + tail,
                    st.sampled_from(["", " ", "\n", "\t "]),
                    st.text(min_size=10, max_size=40),
                    st.sampled_from(["", "\n", "\r\n", " "]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=SECRETS)
def test_any_secret_either_is_refused_cleanly_or_never_shows(
        server: Emulator, logs: pytest.LogCaptureFixture, raw: str) -> None:
    server.reset()
    logs.clear()
    secret = raw.strip()
    if not (secret.isascii() and secret.isprintable()):
        with pytest.raises(ConfigurationError) as refused:
            aipk.Client("openai", api_key=raw, base_url=server.url("openai"))
        assert secret not in str(refused.value) and raw not in str(refused.value)
        return
    client = aipk.Client("openai", api_key=raw, base_url=server.url("openai"), max_retries=0)
    errors: list[BaseException] = []
    with client:
        server.enqueue(Fault.status(401, message=f"Incorrect API key provided: {secret}"),
                       Fault.status(400, message=f"bad param {secret!r}"))
        for _ in range(2):
            with pytest.raises((AuthenticationError, BadRequestError)) as caught:
                client.chat(model="gpt-4o-mini", messages=USER)
            errors.append(caught.value)
        server.require_api_key("sk-the-right-one-0000")
        with pytest.raises(AuthenticationError) as caught:
            client.models()
        errors.append(caught.value)
    assert_never_shown(secret, errors, logs)


def test_closed_clients_raise_a_typed_error(emu: Emulator) -> None:
    client = aipk.Client("openai", api_key=CANARY, base_url=emu.url("openai"))
    with client:
        assert client.chat(model="gpt-4o-mini", messages=USER).text
    for call in (lambda: client.chat(model="gpt-4o-mini", messages=USER),
                 lambda: list(client.stream(model="gpt-4o-mini", messages=USER)),
                 client.models):
        with pytest.raises(ClientClosedError, match="create a new Client, or make the calls "
                                                    "inside its `with` block"):
            call()

    async def run(transport: Any) -> list[str]:
        messages = []
        async with aipk.AsyncClient("openai", api_key=CANARY, base_url=emu.url("openai"),
                                    transport=transport) as aclient:
            await aclient.chat(model="gpt-4o-mini", messages=USER)
        for call in (lambda: aclient.chat(model="gpt-4o-mini", messages=USER),
                     lambda: _drain(aclient.stream(model="gpt-4o-mini", messages=USER)),
                     aclient.models):
            try:
                await call()
            except ClientClosedError as exc:
                messages.append(str(exc))
        return messages

    assert len(asyncio.run(run(None))) == 3
    assert all("AsyncClient was closed" in m for m in asyncio.run(closing(run, AiohttpTransport())))


async def _drain(stream: aipk.AsyncChatStream) -> None:
    async for _ in stream:
        pass


def test_a_closed_http_client_passed_in_is_a_typed_error(emu: Emulator) -> None:
    import httpx
    mine = httpx.Client()
    client = aipk.Client("openai", api_key=CANARY, base_url=emu.url("openai"), http_client=mine)
    mine.close()
    with pytest.raises(ClientClosedError, match="the httpx.Client this transport sends with "
                                                "was closed"):
        client.chat(model="gpt-4o-mini", messages=USER)
    gc.collect()


def test_an_in_band_stream_error_quoting_the_key(emu: Emulator,
                                                logs: pytest.LogCaptureFixture) -> None:
    emu.enqueue(Fault.inband_error(message=f"upstream rejected key {CANARY}"))
    with aipk.Client("openai", api_key=CANARY, base_url=emu.url("openai"),
                     max_retries=0) as client, pytest.raises(aipk.StreamError) as caught:
        list(client.stream(model="gpt-4o-mini", messages=USER))
    assert "upstream rejected key ****" in str(caught.value)
    assert_never_shown(CANARY, [caught.value], logs)


@pytest.mark.parametrize("organization", ["org-\u00e9", "org-x\r\nX-Evil: 1"])
def test_async_transports_name_a_header_they_cannot_send(emu: Emulator,
                                                        organization: str) -> None:
    async def run(transport: Any) -> None:
        async with aipk.AsyncClient("openai", api_key=CANARY, base_url=emu.url("openai"),
                                    max_retries=0, organization=organization,
                                    transport=transport) as client:
            with pytest.raises(aipk.InvalidRequestError, match="'openai-organization'") as caught:
                await client.chat(model="gpt-4o-mini", messages=USER)
            assert CANARY not in str(caught.value)

    asyncio.run(run(None))
    if "\r" in organization:  # aiohttp sends non-ASCII values UTF-8 encoded
        asyncio.run(closing(run, AiohttpTransport()))
    assert emu.requests == []

"""The clients the benchmark compares, each behind the same small adapter interface.

Floors are hand-written: one pooled client, ``json.dumps`` body, ``json.loads`` reply, SSE as a
split on newlines with ``json.loads`` per ``data:`` line (the methodology of
``performance-baseline.md``). Each adapter returns the reply text so the harness can check it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

MESSAGES = [{"role": "user", "content": "Say hello"}]
MODEL = "gpt-4o-mini"


class Adapter:
    name = ""
    IMPORT = ""  # the statement timed in a fresh interpreter

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        #: ms from opening the last ``astream()`` to its first text delta
        self.first_ms = 0.0

    async def setup(self) -> None: ...
    async def achat(self) -> str: raise NotImplementedError
    async def astream(self) -> tuple[str, int]: raise NotImplementedError
    async def first_delta_ms(self) -> float:
        """Open a stream, time its first text delta, then read it to the end."""
        raise NotImplementedError
    def chat(self) -> str | None: return None
    async def aclose(self) -> None: ...
    def close(self) -> None: ...


def _body(stream: bool) -> bytes:
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def _sse_text(lines: list[bytes], parts: list[str]) -> int:
    n = 0
    for line in lines:
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            chunk = json.loads(line[6:])
            for choice in chunk["choices"]:
                content = choice["delta"].get("content")
                if content:
                    parts.append(content)
                    n += 1
    return n


class HttpxRaw(Adapter):
    name = "httpx-raw (floor)"
    IMPORT = "import httpx"

    async def setup(self) -> None:
        import httpx

        self.limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self.aclient = httpx.AsyncClient(limits=self.limits, timeout=60)
        self.client: Any = None  # built on first use: the first call times the async client
        self.url = self.base_url + "/chat/completions"
        self.headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    async def achat(self) -> str:
        r = await self.aclient.post(self.url, content=_body(False), headers=self.headers)
        return str(json.loads(r.content)["choices"][0]["message"]["content"])

    def chat(self) -> str:
        if self.client is None:
            import httpx

            self.client = httpx.Client(limits=self.limits, timeout=60)
        r = self.client.post(self.url, content=_body(False), headers=self.headers)
        return str(json.loads(r.content)["choices"][0]["message"]["content"])

    async def astream(self) -> tuple[str, int]:
        parts: list[str] = []
        n = 0
        buf = b""
        t = time.perf_counter()
        self.first_ms = 0.0
        async with self.aclient.stream("POST", self.url, content=_body(True),
                                       headers=self.headers) as r:
            async for chunk in r.aiter_bytes():
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                n += _sse_text(lines, parts)
                if n and not self.first_ms:
                    self.first_ms = (time.perf_counter() - t) * 1000
        return "".join(parts), n

    async def first_delta_ms(self) -> float:
        parts: list[str] = []
        buf = b""
        t = time.perf_counter()
        first = 0.0
        async with self.aclient.stream("POST", self.url, content=_body(True),
                                       headers=self.headers) as r:
            async for chunk in r.aiter_bytes():
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                if _sse_text(lines, parts) and not first:
                    first = time.perf_counter() - t
        return first * 1000

    async def aclose(self) -> None:
        await self.aclient.aclose()
        if self.client is not None:
            self.client.close()


class AiohttpRaw(Adapter):
    name = "aiohttp-raw (floor)"
    IMPORT = "import aiohttp"

    async def setup(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        self.url = self.base_url + "/chat/completions"
        self.headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    async def achat(self) -> str:
        async with self.session.post(self.url, data=_body(False), headers=self.headers) as r:
            return str(json.loads(await r.read())["choices"][0]["message"]["content"])

    async def astream(self) -> tuple[str, int]:
        parts: list[str] = []
        n = 0
        buf = b""
        t = time.perf_counter()
        self.first_ms = 0.0
        async with self.session.post(self.url, data=_body(True), headers=self.headers) as r:
            async for chunk in r.content.iter_any():
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                n += _sse_text(lines, parts)
                if n and not self.first_ms:
                    self.first_ms = (time.perf_counter() - t) * 1000
        return "".join(parts), n

    async def first_delta_ms(self) -> float:
        parts: list[str] = []
        buf = b""
        t = time.perf_counter()
        first = 0.0
        async with self.session.post(self.url, data=_body(True), headers=self.headers) as r:
            async for chunk in r.content.iter_any():
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                if _sse_text(lines, parts) and not first:
                    first = time.perf_counter() - t
        return first * 1000

    async def aclose(self) -> None:
        await self.session.close()


class _Aipk(Adapter):
    IMPORT = "import aipk; aipk.registry.available()"
    transport: Callable[[], Any] | None = None

    async def setup(self) -> None:
        import aipk

        self.msgs = [aipk.Message.user("Say hello")]
        transport = self.own_transport = self.transport() if self.transport else None
        self.aclient = aipk.AsyncClient("openai", base_url=self.base_url, api_key="sk-bench",
                                        transport=transport)
        self.client: Any = None  # built on first use: the first call times the async client

    async def achat(self) -> str:
        return (await self.aclient.chat(model=MODEL, messages=self.msgs)).text

    def chat(self) -> str:
        if self.client is None:
            import aipk

            self.client = aipk.Client("openai", base_url=self.base_url, api_key="sk-bench")
        return self.client.chat(model=MODEL, messages=self.msgs).text

    async def astream(self) -> tuple[str, int]:
        import aipk

        parts: list[str] = []
        t = time.perf_counter()
        async for event in self.aclient.stream(model=MODEL, messages=self.msgs):
            if type(event) is aipk.TextDelta:
                if not parts:
                    self.first_ms = (time.perf_counter() - t) * 1000
                parts.append(event.text)
        return "".join(parts), len(parts)

    async def first_delta_ms(self) -> float:
        import aipk

        t = time.perf_counter()
        first = 0.0
        async for event in self.aclient.stream(model=MODEL, messages=self.msgs):
            if type(event) is aipk.TextDelta and not first:
                first = time.perf_counter() - t
        return first * 1000

    async def aclose(self) -> None:
        await self.aclient.close()
        if self.own_transport is not None:  # a transport passed in stays open with its client
            await self.own_transport.close()
        if self.client is not None:
            self.client.close()


class AipkHttpx(_Aipk):
    name = "aipk (httpx)"


def _aiohttp_transport() -> Any:
    from aipk.transports import AiohttpTransport

    return AiohttpTransport()


class AipkAiohttp(_Aipk):
    name = "aipk (aiohttp)"
    transport = staticmethod(_aiohttp_transport)


class OpenAISDK(Adapter):
    name = "openai SDK"
    IMPORT = "import openai"

    async def setup(self) -> None:
        import openai

        self.aclient = openai.AsyncOpenAI(base_url=self.base_url, api_key="sk-bench")
        self.client: Any = None  # built on first use: the first call times the async client

    async def achat(self) -> str:
        r = await self.aclient.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    def chat(self) -> str:
        if self.client is None:
            import openai

            self.client = openai.OpenAI(base_url=self.base_url, api_key="sk-bench")
        r = self.client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    async def astream(self) -> tuple[str, int]:
        parts: list[str] = []
        t = time.perf_counter()
        stream = await self.aclient.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if not parts:
                    self.first_ms = (time.perf_counter() - t) * 1000
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts), len(parts)

    async def first_delta_ms(self) -> float:
        t = time.perf_counter()
        first = 0.0
        stream = await self.aclient.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and not first:
                first = time.perf_counter() - t
        return first * 1000

    async def aclose(self) -> None:
        await self.aclient.close()
        if self.client is not None:
            self.client.close()


ADAPTERS: dict[str, type[Adapter]] = {
    "httpx-raw": HttpxRaw,
    "aiohttp-raw": AiohttpRaw,
    "aipk-httpx": AipkHttpx,
    "aipk-aiohttp": AipkAiohttp,
    "openai": OpenAISDK,
}
#: Which floor each client is compared against (same transport).
FLOOR = {"httpx-raw": "httpx-raw", "aiohttp-raw": "aiohttp-raw", "aipk-httpx": "httpx-raw",
         "aipk-aiohttp": "aiohttp-raw", "openai": "httpx-raw"}

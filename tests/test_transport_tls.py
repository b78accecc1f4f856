"""Default transports verify TLS with one process-wide context: building a client loads no CA
bundle after the first, and verification stays on."""

from __future__ import annotations

import asyncio
import ssl
import threading

import httpx

import aipk
from aipk.transports import AsyncHttpxTransport, HttpxTransport, shared_tls_context


def _context(client: httpx.Client | httpx.AsyncClient) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[union-attr,no-any-return]


def test_default_clients_share_one_verifying_context() -> None:
    async def build() -> list[ssl.SSLContext]:
        clients = [aipk.AsyncClient("openai", api_key="sk-test") for _ in range(2)]
        found = [_context(c._transport._client) for c in clients]  # type: ignore[attr-defined]
        for c in clients:
            await c.close()
        return found

    async_contexts = asyncio.run(build())
    sync_clients = [aipk.Client("openai", api_key="sk-test") for _ in range(2)]
    sync_contexts = [_context(c._transport._client) for c in sync_clients]  # type: ignore[attr-defined]
    for c in sync_clients:
        c.close()
    shared = shared_tls_context()
    assert all(ctx is shared for ctx in async_contexts + sync_contexts)
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname


def test_built_once_across_threads() -> None:
    seen: list[ssl.SSLContext] = []
    threads = [threading.Thread(target=lambda: seen.append(shared_tls_context()))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(ctx is seen[0] for ctx in seen)


def test_your_own_http_client_keeps_its_tls_settings() -> None:
    own_context = ssl.create_default_context()
    own = httpx.Client(verify=own_context)
    transport = HttpxTransport(own)
    assert _context(transport._client) is own_context
    transport.close()
    own.close()

    async def check() -> None:
        mine = httpx.AsyncClient(verify=False)
        async_transport = AsyncHttpxTransport(mine)
        assert _context(async_transport._client) is not shared_tls_context()
        await mine.aclose()

    asyncio.run(check())

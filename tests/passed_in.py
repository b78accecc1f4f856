"""Transports a test passes in to async clients, and closes itself: a client never closes a
transport it was given (it may be shared), so a test that makes one must close it, or aiohttp
warns "Unclosed client session" when it is collected."""

from __future__ import annotations

from aipk.transports import AiohttpTransport


class PassedIn:
    """``made()`` gives a new transport of ``kind`` (None for "httpx": the client's own);
    ``await made.close()`` closes every one made."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.made: list[AiohttpTransport] = []

    def __call__(self) -> AiohttpTransport | None:
        if self.kind == "httpx":
            return None
        transport = AiohttpTransport()
        self.made.append(transport)
        return transport

    async def close(self) -> None:
        for transport in self.made:
            await transport.close()
        self.made.clear()

"""The Lua scripts shipped as package data, loaded once per client (EVALSHA, and SCRIPT LOAD
again after a Redis restart or SCRIPT FLUSH: redis-py's ``Script`` retries on NOSCRIPT)."""

from __future__ import annotations

from importlib import resources
from typing import Any

__all__ = ["Scripts"]


class Scripts:
    """The registered scripts of one Redis client."""

    __slots__ = ("cas", "extend", "release", "reserve")

    @staticmethod
    def source(name: str) -> str:
        """The Lua text of script ``name`` (``reserve``, ``cas``, ``release``, ``extend``)."""
        return _SOURCES.setdefault(name, resources.files("aipk_redis").joinpath(
            f"lua/{name}.lua").read_text("utf-8"))

    def __init__(self, client: Any) -> None:
        self.reserve = client.register_script(self.source("reserve"))
        self.cas = client.register_script(self.source("cas"))
        self.release = client.register_script(self.source("release"))
        self.extend = client.register_script(self.source("extend"))


_SOURCES: dict[str, str] = {}

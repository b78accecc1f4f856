"""One pipeline for the bucket bookings that concurrent asyncio tasks ask for at once.

At concurrency 50 most requests book their limits while another booking is on the wire;
queueing them and sending each queue as one pipeline of EVALSHA calls (no transaction: each
script is atomic on its own) costs one round trip per batch instead of one per request. A lone
request waits for nothing: it starts a batch of one at once.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError

__all__ = ["ScriptBatcher"]


class ScriptBatcher:
    """Runs one script for many callers of one event loop, batched (see the module)."""

    __slots__ = ("_client", "_draining", "_pending", "_sha", "_source", "_task")

    def __init__(self, client: redis.asyncio.Redis, source: str) -> None:
        self._client = client
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()
        self._pending: list[tuple[str, list[Any], asyncio.Future[Any]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None

    async def call(self, key: str, args: list[Any]) -> Any:
        """The script's answer for ``key`` and ``args`` (raises what Redis raised)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((key, args, future))
        if not self._draining:
            self._draining = True
            # a task of its own: cancelling one caller must not strand the batch
            self._task = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    answers = await self._run(batch)
                except BaseException as exc:  # every caller gets the error (or cancellation)
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, _, future), answer in zip(batch, answers, strict=True):
                    if future.done():
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._draining = False

    async def _run(self, batch: list[tuple[str, list[Any], asyncio.Future[Any]]]) -> list[Any]:
        answers = await self._pipeline(batch)
        missing = [i for i, a in enumerate(answers) if isinstance(a, NoScriptError)]
        if missing:  # a restarted server (or SCRIPT FLUSH): load it once, run those again
            await self._client.script_load(self._source)
            again = await self._pipeline([batch[i] for i in missing])
            for i, answer in zip(missing, again, strict=True):
                answers[i] = answer
        return answers

    async def _pipeline(self, batch: list[tuple[str, list[Any], asyncio.Future[Any]]]) -> (
            list[Any]):
        pipe = self._client.pipeline(transaction=False)
        for key, args, _ in batch:
            pipe.evalsha(self._sha, 1, key, *args)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        return answers

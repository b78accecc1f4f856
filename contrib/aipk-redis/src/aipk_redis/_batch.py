"""One write to Redis for the limit bookings that concurrent asyncio tasks ask for at once.

At concurrency 50 many requests book their limits in the same turn of the event loop. Their
``EVALSHA`` commands are queued, and at the end of that turn sent together in one write on one
connection of the ``redis.asyncio`` client's pool, their answers read back in order (no
transaction: each script is atomic on its own). A batch does not wait for the one before it:
each takes its own connection, so a slow answer delays only the requests it carries. Commands
come packed (`pack()`, cached by the caller), so a booking costs no per-call encoding.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["ScriptBatcher", "pack"]


def pack(*args: str | bytes) -> bytes:
    """One command in the Redis protocol (RESP): ``*<n>`` then ``$<len>`` and each argument."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class ScriptBatcher:
    """Runs one script for the callers of one event loop, batched (see the module)."""

    __slots__ = ("_load", "_pending", "_pool", "_scheduled", "_tasks", "sha")

    def __init__(self, client: redis.asyncio.Redis, source: str) -> None:
        self._pool = client.connection_pool
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._load = pack("SCRIPT", "LOAD", source)
        self._pending: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def command(self, key: str, args: list[str]) -> bytes:
        """The packed ``EVALSHA`` of the script for ``key`` and ``args``."""
        return pack("EVALSHA", self.sha, "1", key, *args)

    async def call(self, command: bytes) -> Any:
        """The answer to ``command`` (from `command()`; raises what Redis raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        # a task of its own: cancelling one caller must not strand the batch
        task = asyncio.ensure_future(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        try:
            answers = await self._run([command for command, _ in batch])
        except BaseException as exc:  # every caller gets the error (or cancellation)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def _run(self, commands: list[bytes]) -> list[Any]:
        answers = await self._round_trip(commands)
        missing = [i for i, a in enumerate(answers) if isinstance(a, NoScriptError)]
        if missing:  # a restarted server (or SCRIPT FLUSH): load it, run those again
            again = await self._round_trip([self._load] + [commands[i] for i in missing])
            if isinstance(again[0], Exception):
                raise again[0]
            for i, answer in zip(missing, again[1:], strict=True):
                answers[i] = answer
        return answers

    async def _round_trip(self, commands: list[bytes]) -> list[Any]:
        """Send ``commands`` in one write and read their answers (an error reply is its
        exception in the list; a failed connection raises and is dropped)."""
        pool = self._pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(b"".join(commands), check_health=False)
            answers: list[Any] = []
            for _ in commands:
                try:
                    answers.append(await connection.read_response())
                except ResponseError as error:
                    answers.append(error)
            return answers
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)

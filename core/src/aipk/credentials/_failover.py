"""Running one call over a credential source, moving to the next credential on a counted
failure and refreshing once on a 401:
[`call_with_failover()`][aipk.credentials._failover.call_with_failover] and
[`acall_with_failover()`][aipk.credentials._failover.acall_with_failover] drive the same sans-IO
steps (`_failover_steps()`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from aipk._providers import Credential
from aipk._reporting import reporting_failed
from aipk.errors import AuthenticationError

from ._errors import KeysExhaustedError
from ._health import classify_failure
from ._pool import CredentialSource
from ._single import Acquire, Recover

__all__ = ["acall_with_failover", "call_with_failover"]

R = TypeVar("R")


def _tokens_of(result: object) -> int:
    usage = getattr(result, "usage", None)
    total = getattr(usage, "total_tokens", 0)
    return total if isinstance(total, int) else 0


class _Call:
    """A step: the caller's function with ``credential`` (answer: ``(True, result)`` or
    ``(False, exception)``)."""

    __slots__ = ("credential",)

    def __init__(self, credential: Credential) -> None:
        self.credential = credential


def _failover_steps(source: CredentialSource, max_attempts: int | None,
                    tokens: Callable[[Any], int]) -> Generator[Acquire | Recover | _Call, Any, Any]:
    """The logic of `call_with_failover()`, once, for its sync and async drivers."""
    limit = max_attempts or max(len(source), 1)
    tried: list[str] = []
    last: BaseException | None = None
    while True:
        got = yield Acquire(tuple(tried))
        if isinstance(got, KeysExhaustedError):
            if last is not None:
                raise last from None
            raise got
        credential: Credential = got
        recovered = False
        while True:
            start = time.perf_counter()
            ok, value = yield _Call(credential)
            if ok:
                try:
                    source.report_success(credential, latency=time.perf_counter() - start,
                                          tokens=tokens(value))
                except Exception as unrecorded:  # noqa: BLE001 - logged: the answer stands
                    reporting_failed(unrecorded, source, "the success", credential.id)
                return value
            exc: BaseException = value
            error = exc
            failure = classify_failure(exc)
            if failure is not None and failure.unauthorized and not recovered:
                recovered = True
                fresh = yield Recover(credential, exc)
                if isinstance(fresh, Credential):
                    credential = fresh
                    continue
                if isinstance(fresh, AuthenticationError):  # the refresh itself failed
                    error = fresh
            latency = time.perf_counter() - start
            try:
                counted = source.report_failure(credential, error, latency=latency)
            except Exception as unrecorded:  # noqa: BLE001 - noted on the call's own error
                reporting_failed(unrecorded, source, "the failure", credential.id, error)
                counted = False  # no failover on a source that cannot record
            if not counted:
                if error is exc:
                    raise exc
                raise error from exc
            last = error
            break
        tried.append(credential.id)
        if len(tried) >= limit:
            assert last is not None
            raise last


def call_with_failover(source: CredentialSource, fn: Callable[[Credential], R], *,
                       max_attempts: int | None = None,
                       tokens: Callable[[R], int] = _tokens_of) -> R:
    """``fn(credential)`` with the next available credential; on a counted failure, again with
    the next one (each credential at most once, ``max_attempts`` in all, default: every
    credential); on a 401, once more with the same credential after ``source.recover``
    refreshed it. Failures that are not the credential's fault are raised at once; when every
    attempt failed, the last error is raised."""
    steps = _failover_steps(source, max_attempts, tokens)
    value: Any = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as done:
            result: R = done.value
            return result
        if isinstance(step, _Call):
            try:
                value = (True, fn(step.credential))
            except Exception as exc:  # noqa: BLE001 - handed to the failover logic
                value = (False, exc)
        elif isinstance(step, Acquire):
            try:
                value = source.acquire(exclude=step.exclude)
            except KeysExhaustedError as exhausted:
                value = exhausted
        else:
            try:
                value = source.recover(step.credential, step.error)
            except AuthenticationError as failed:
                value = failed


async def acall_with_failover(source: CredentialSource,
                              fn: Callable[[Credential], Awaitable[R]], *,
                              max_attempts: int | None = None,
                              tokens: Callable[[R], int] = _tokens_of) -> R:
    """`call_with_failover()` for coroutines (refreshes run as tasks; waiting is async)."""
    steps = _failover_steps(source, max_attempts, tokens)
    value: Any = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as done:
            result: R = done.value
            return result
        if isinstance(step, _Call):
            try:
                value = (True, await fn(step.credential))
            except Exception as exc:  # noqa: BLE001 - handed to the failover logic
                value = (False, exc)
        elif isinstance(step, Acquire):
            try:
                value = await source.aacquire(exclude=step.exclude)
            except KeysExhaustedError as exhausted:
                value = exhausted
        else:
            try:
                value = await source.arecover(step.credential, step.error)
            except AuthenticationError as failed:
                value = failed

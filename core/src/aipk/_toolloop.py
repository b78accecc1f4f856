"""The tool loop: ask the model, run the tools it calls, send the results back, repeat.

[`run_tools()`][aipk._toolloop.run_tools] (sync) and [`arun_tools()`][aipk._toolloop.arun_tools]
(async) share one loop written as a generator of steps, like the send loop: it yields "ask the
model" and "run these calls" and receives the outcome. The async loop runs the calls of one turn
concurrently (``asyncio.gather``), sync functions in worker threads (``asyncio.to_thread``).

A tool that raises, an unknown tool name, or arguments that break the tool's schema never stop
the loop: the model gets ``{"error": "..."}`` as that call's result and can try again. The loop
ends at the first answer without tool calls, or after ``max_turns`` model calls: then the result
says so (``finished`` False) instead of raising, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from ._messages import Message, Tool, ToolCall
from ._responses import ChatResponse
from ._schema import unstructure
from ._tools import as_tool
from .errors import InvalidRequestError, ToolArgumentsError

__all__ = ["ToolLoopResult", "arun_tools", "run_tools"]

Validation = Literal["strict", "lenient", "off"]


@attrs.frozen(kw_only=True)
class ToolLoopResult:
    """How a tool loop ended.

    Attributes:
        response: The last model response (the final answer when ``finished``).
        messages: The whole transcript: the messages given, then every assistant turn and tool
            result, ending with the last assistant message.
        turns: How many times the model was called.
        finished: True when the model gave an answer without tool calls; False when the loop
            stopped at ``max_turns`` with tool calls still pending.
    """

    response: ChatResponse
    messages: tuple[Message, ...]
    turns: int
    finished: bool

    @property
    def text(self) -> str:
        """The final answer's text."""
        return self.response.text


class _Ask:
    __slots__ = ("messages",)

    def __init__(self, messages: tuple[Message, ...]) -> None:
        self.messages = messages


class _Run:
    __slots__ = ("calls",)

    def __init__(self, calls: Sequence[_Prepared]) -> None:
        self.calls = calls


class _Prepared:
    """One call ready to run (``function`` and ``arguments``) or already answered
    (``result``: the error text sent back)."""

    __slots__ = ("arguments", "call", "function", "result")

    def __init__(self, call: ToolCall, function: Callable[..., Any] | None = None,
                 arguments: dict[str, Any] | None = None, result: str | None = None) -> None:
        self.call = call
        self.function = function
        self.arguments = arguments or {}
        self.result = result


def _error(text: str) -> str:
    return json.dumps({"error": text})


def _prepare(call: ToolCall, tools: Mapping[str, Tool], validation: Validation) -> _Prepared:
    tool = tools.get(call.name)
    if tool is None:
        return _Prepared(call, result=_error(f"unknown tool {call.name!r}; the tools are "
                                             f"{', '.join(sorted(tools))}"))
    if tool.function is None:
        return _Prepared(call, result=_error(f"tool {call.name!r} has no Python function to "
                                             f"run; pass the function itself in tools="))
    try:
        if validation == "off":
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("the arguments are not a JSON object")
        else:
            arguments = tool.validate_arguments(call.arguments, strict=validation == "strict")
            if validation == "lenient" and tool.parameters.get("additionalProperties") is False:
                known = tool.parameters.get("properties") or {}
                arguments = {k: v for k, v in arguments.items() if k in known}
    except ToolArgumentsError as exc:
        return _Prepared(call, result=_error(exc.message))
    except ValueError as exc:
        return _Prepared(call, result=_error(f"invalid arguments: {exc}"))
    return _Prepared(call, function=tool.function, arguments=arguments)


def _result_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(unstructure(value), default=str)


def _failure_text(exc: BaseException) -> str:
    return _error(f"{type(exc).__name__}: {exc}")


def _loop(messages: Sequence[Message], tools: Mapping[str, Tool], max_turns: int,
          validation: Validation) -> Generator[_Ask | _Run, Any, ToolLoopResult]:
    transcript = list(messages)
    response: ChatResponse | None = None
    for turn in range(1, max_turns + 1):
        response = yield _Ask(tuple(transcript))
        assert response is not None
        transcript.append(response.message)
        if not response.tool_calls:
            return ToolLoopResult(response=response, messages=tuple(transcript), turns=turn,
                                  finished=True)
        prepared = [_prepare(call, tools, validation) for call in response.tool_calls]
        results: list[str] = yield _Run(prepared)
        for item, result in zip(prepared, results, strict=True):
            transcript.append(Message.tool(item.call.id, result, name=item.call.name))
    assert response is not None
    return ToolLoopResult(response=response, messages=tuple(transcript), turns=max_turns,
                          finished=False)


def _setup(tools: Iterable[Any], max_turns: int, validation: str,
           fields: Mapping[str, Any]) -> tuple[tuple[Tool, ...], dict[str, Tool]]:
    if max_turns < 1:
        raise InvalidRequestError("max_turns must be at least 1", field="max_turns")
    if validation not in ("strict", "lenient", "off"):
        raise InvalidRequestError(f"validate={validation!r} is not 'strict', 'lenient' or "
                                  f"'off'", field="validate")
    if "tools" in fields or "messages" in fields:
        raise InvalidRequestError("pass messages= and tools= once", field="tools")
    records = tuple(as_tool(t) for t in tools)
    if not records:
        raise InvalidRequestError("the tool loop needs at least one tool in tools=",
                                  field="tools")
    return records, {t.name: t for t in records}


def _run_sync(item: _Prepared) -> str:
    if item.result is not None:
        return item.result
    assert item.function is not None
    try:
        value = item.function(**item.arguments)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
        return _result_text(value)
    except Exception as exc:  # noqa: BLE001 - any tool failure is reported to the model
        return _failure_text(exc)


async def _awaited(value: Any) -> Any:
    return await value


def run_tools(client: Any, *, messages: Iterable[Message | Mapping[str, Any]],
              tools: Iterable[Any], model: str | None = None, max_turns: int = 8,
              validate: Validation = "strict", **fields: Any) -> ToolLoopResult:
    """Run the tool loop with a [`Client`][aipk.Client] (see the module docs).

    ``tools`` takes functions (run when called), Tool records, dicts or record classes; other
    keywords (``temperature=``, ``tool_choice=`` …) go to every ``chat()`` call. ``validate``
    checks each call's arguments against its tool's schema first: "strict" rejects unknown
    arguments, "lenient" drops them (unless the function takes ``**kwargs``), "off" only
    decodes the JSON.
    """
    records, by_name = _setup(tools, max_turns, validate, fields)
    steps = _loop([Message.coerce(m) for m in messages], by_name, max_turns, validate)
    value: Any = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as done:
            result: ToolLoopResult = done.value
            return result
        if isinstance(step, _Ask):
            value = client.chat(model=model, messages=step.messages, tools=records, **fields)
        else:
            value = [_run_sync(item) for item in step.calls]


async def _run_async(item: _Prepared) -> str:
    if item.result is not None:
        return item.result
    function = item.function
    assert function is not None
    try:
        if inspect.iscoroutinefunction(function):
            value = await function(**item.arguments)
        else:
            value = await asyncio.to_thread(function, **item.arguments)
            if inspect.isawaitable(value):
                value = await value
        return _result_text(value)
    except Exception as exc:  # noqa: BLE001 - any tool failure is reported to the model
        return _failure_text(exc)


async def arun_tools(client: Any, *, messages: Iterable[Message | Mapping[str, Any]],
                     tools: Iterable[Any], model: str | None = None, max_turns: int = 8,
                     validate: Validation = "strict", **fields: Any) -> ToolLoopResult:
    """Run the tool loop with an [`AsyncClient`][aipk.AsyncClient]; the calls of one turn run
    concurrently. Same arguments as [`run_tools()`][aipk._toolloop.run_tools]."""
    records, by_name = _setup(tools, max_turns, validate, fields)
    steps = _loop([Message.coerce(m) for m in messages], by_name, max_turns, validate)
    value: Any = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as done:
            result: ToolLoopResult = done.value
            return result
        if isinstance(step, _Ask):
            value = await client.chat(model=model, messages=step.messages, tools=records,
                                      **fields)
        else:
            value = list(await asyncio.gather(*(_run_async(item) for item in step.calls)))

"""Turn the answer to a ``response_format=`` request into ``response.parsed``.

Only requests that ask for structured output pay for this: the engine calls
`with_parsed()` when ``request.response_format`` is set. The answer's text is decoded as
JSON (a forced-tool answer's arguments are used when the text is empty), validated against the
schema with aipk's own validator, and structured into the requested class with cattrs (or
pydantic's ``model_validate`` for a pydantic model). Any failure raises
[`StructuredOutputError`][aipk.errors.StructuredOutputError] carrying the raw text and the response.

`retry_request()` builds the next try of a ``chat(..., output_retries=N)`` call: the same
request with the answer and what was wrong with it appended, so the model can correct itself.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ._format import ResponseFormat
from ._messages import ChatRequest, Message
from ._responses import ChatResponse, FinishReason
from .errors import InvalidRequestError, StructuredOutputError

__all__ = ["check_output_retries", "parse_structured", "retry_request", "with_parsed"]

#: The name of the tool a plugin forces when its model has no native structured output.
FORCED_TOOL = "final_result"


def answer_text(response: ChatResponse) -> str:
    """The JSON text of the answer: the message text, or a forced ``final_result`` call's
    arguments."""
    text = response.message.content or ""
    if not text.strip():
        for call in response.message.tool_calls:
            if call.name == FORCED_TOOL:
                return call.arguments
    return text


def parse_structured(text: str, fmt: ResponseFormat, *, provider: str,
                     response: Any = None, request_id: str | None = None) -> Any:
    """``text`` decoded, validated against ``fmt.schema`` and structured into ``fmt.type``."""
    def fail(message: str, path: str = "$",
             found: list[tuple[str, str]] | None = None) -> StructuredOutputError:
        return StructuredOutputError(message, provider=provider, text=text, path=path,
                                     problems=found or (), response=response,
                                     request_id=request_id)

    try:
        data = json.loads(text)
    except ValueError as exc:
        snippet = text[:80] + ("…" if len(text) > 80 else "")
        raise fail(f"the answer is not valid JSON ({exc}): {snippet!r}; the raw text is on "
                   f"the error's .text, or raise max_tokens if the answer was cut off") from None
    schema = fmt.schema
    if schema is None:
        return data
    from ._jsonschema import problems  # loaded by the first structured answer
    from ._schema import drop_added_nulls, structure

    data = drop_added_nulls(data, schema)
    found = problems(data, schema)
    if found:
        path, message = found[0]
        more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        raise fail(f"the answer breaks the response_format schema at {path}: {message}{more}; "
                   f"the raw text is on the error's .text", path, found)
    if fmt.type is None:
        return data
    try:
        return structure(data, fmt.type)
    except Exception as exc:
        raise fail(f"the answer could not be structured into {fmt.type.__name__}: "
                   f"{type(exc).__name__}: {exc}") from exc


def with_parsed(response: ChatResponse, fmt: ResponseFormat) -> ChatResponse:
    """``response`` (a record nobody else has seen yet) with ``parsed`` filled in."""
    if response.refusal and not (response.message.content or "").strip():
        raise StructuredOutputError(
            f"the model refused instead of answering in JSON: {response.refusal!r}; rephrase "
            f"the request (the refusal is on the error's .text)", provider=response.provider,
            text=response.refusal, response=response, request_id=response.request_id)
    value = parse_structured(answer_text(response), fmt, provider=response.provider,
                             response=response, request_id=response.request_id)
    object.__setattr__(response, "parsed", value)
    return response


def check_output_retries(value: object) -> int:
    """``value`` if it is a whole number of extra tries (0 or more), else InvalidRequestError."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidRequestError(
        f"output_retries={value!r} is not a whole number of extra tries; pass 0 (the default: "
        f"fail at once) or more, e.g. output_retries=2", field="output_retries")


def _correction(error: StructuredOutputError) -> str:
    """What the model is told about its answer, from the error's problems (never its
    message, which speaks to the programmer)."""
    if error.problems:
        lines = "\n".join(f"- at {path}: {message}" for path, message in error.problems[:20])
        more = (f"\n(and {len(error.problems) - 20} more)" if len(error.problems) > 20 else "")
        return (f"Your answer does not follow the required JSON schema:\n{lines}{more}\n"
                f"Answer again with only the corrected JSON.")
    try:
        json.loads(error.text)
    except ValueError as exc:
        return f"Your answer is not valid JSON ({exc}). Answer again with only the JSON."
    cause = error.__cause__
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return (f"Your answer could not be read as the requested structure{detail}. Answer again "
            f"with only the corrected JSON.")


def retry_request(request: ChatRequest, error: StructuredOutputError) -> ChatRequest | None:
    """The next try after ``error``: ``request`` with the answer and a correction appended, or
    None when another try cannot help (a refusal, an answer cut off at ``max_tokens``, an answer
    calling the caller's own tools, no response on the error)."""
    response = error.response
    if not isinstance(response, ChatResponse) or response.refusal:
        return None
    if response.finish_reason is FinishReason.LENGTH:
        return None
    answer = response.message
    correction = _correction(error)
    if answer.tool_calls:
        if any(call.name != FORCED_TOOL for call in answer.tool_calls):
            return None
        replies = [Message.tool(call.id, correction, name=call.name)
                   for call in answer.tool_calls]
        added = [Message.assistant(answer.content, tool_calls=answer.tool_calls), *replies]
    elif answer.content:
        added = [Message.assistant(answer.content), Message.user(correction)]
    else:  # an empty answer: no empty assistant turn, which some providers reject
        added = [Message.user(correction)]
    return attrs.evolve(request, messages=(*request.messages, *added))

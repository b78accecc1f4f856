"""Turn the answer to a ``response_format=`` request into ``response.parsed``.

Only requests that ask for structured output pay for this: the engine calls
`with_parsed()` when ``request.response_format`` is set. The answer's text is decoded as
JSON (a forced-tool answer's arguments are used when the text is empty), validated against the
schema with aipk's own validator, and structured into the requested class with cattrs (or
pydantic's ``model_validate`` for a pydantic model). Any failure raises
[`StructuredOutputError`][aipk.errors.StructuredOutputError] carrying the raw text and the response.
"""

from __future__ import annotations

import json
from typing import Any

from ._format import ResponseFormat
from ._responses import ChatResponse
from .errors import StructuredOutputError

__all__ = ["parse_structured", "with_parsed"]

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

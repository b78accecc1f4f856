"""Counting a request's input tokens: the provider's count endpoint, or a local estimate.

A plugin whose provider can count tokens returns a [`TokenCountCall`][aipk._tokens.TokenCountCall]
from ``aipk_count_tokens_request``: the HTTP request to send and a pure function reading the count
from the decoded answer. Otherwise `estimate_tokens()` gives a documented local estimate (about
four characters a token, plus a few tokens per message and per tool), marked ``estimated=True`` on
the [`TokenCount`][aipk._tokens.TokenCount].
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._http import HttpRequest
from ._messages import ChatRequest
from ._records import record

__all__ = ["TokenCount", "TokenCountCall", "estimate_tokens"]

#: Characters per token in the local estimate (English text averages about four).
CHARS_PER_TOKEN = 4
#: Tokens the local estimate adds per message (role markers, separators).
TOKENS_PER_MESSAGE = 4
#: Tokens the local estimate adds per tool, on top of its JSON schema's characters.
TOKENS_PER_TOOL = 8
#: Tokens the local estimate adds per image (a typical small-image cost).
TOKENS_PER_IMAGE = 85


@record(kw_only=True)
class TokenCount:
    """How many input tokens a request holds.

    Attributes:
        input_tokens: The prompt's tokens (messages, system prompt and tools).
        estimated: True for aipk's local estimate (no count endpoint was used), False when the
            provider counted.
        provider: The provider id.
        model: The model the count is for.
    """

    input_tokens: int
    estimated: bool
    provider: str
    model: str


@record(kw_only=True)
class TokenCountCall:
    """What a plugin returns to count tokens with its provider's endpoint.

    Attributes:
        request: The HTTP request to send (unsigned; the client signs it).
        parse: Reads the token count from the decoded JSON answer (pure, no I/O); raises
            KeyError, TypeError or ValueError when the answer has another shape.
    """

    request: HttpRequest
    parse: Callable[[Any], int]


def estimate_tokens(request: ChatRequest) -> int:
    """A local estimate of ``request``'s input tokens: characters / 4 (rounded up) over the
    messages' text, tool calls and tools' JSON, plus 4 tokens per message, 8 per tool and 85
    per image. Real tokenizers differ by model and language; treat it as a rough bound."""
    chars = 0
    images = 0
    for message in request.messages:
        if message.content:
            chars += len(message.content)
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments)
        images += len(message.images)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description)
        chars += len(json.dumps(tool.parameters, separators=(",", ":")))
    return (-(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)
            + TOKENS_PER_TOOL * len(request.tools) + TOKENS_PER_IMAGE * images)

"""What a caller sends: messages, tools, tool choice and the unified chat request.

All records are frozen, slotted and keyword-only. ``None`` always means "not set": a field left
as ``None`` is not sent, so ``temperature=0`` is sent as 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

import attrs

from ._format import ResponseFormat, as_response_format
from ._records import fast_record, record, record_builder
from ._tools import Tool, as_tool
from .errors import InvalidRequestError

__all__ = [
    "ChatRequest",
    "Image",
    "Message",
    "Role",
    "Tool",
    "ToolCall",
    "ToolChoice",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = frozenset({"system", "user", "assistant", "tool"})


@fast_record(kw_only=True)
class ToolCall:
    """A function call the model asked for. ``arguments`` is the JSON text exactly as produced.

    Attributes:
        id: The call's id, echoed back by the tool message answering it.
        name: The tool's name.
        arguments: The arguments as JSON text, exactly as the model produced them.
    """

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON; InvalidRequestError naming the tool if invalid."""
        try:
            return json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise InvalidRequestError(
                f"tool call {self.id!r} to {self.name!r} has arguments that are not valid JSON: "
                f"{exc}; the model produced malformed arguments, ask it again or repair them",
                field="arguments",
            ) from None


def _bytes_repr(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


@record(kw_only=True)
class Image:
    """An image in a user message: a URL (``https:`` or ``data:``), or bytes and a media type.

    Attributes:
        url: An ``https:`` or ``data:`` URL.
        data: The image bytes, when not given by URL.
        media_type: The bytes' media type, e.g. ``image/png``.
    """

    url: str | None = None
    data: bytes | None = attrs.field(default=None, repr=_bytes_repr)
    media_type: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise InvalidRequestError("an Image needs exactly one of url= or data=", field="image")
        if self.data is not None and not self.media_type:
            raise InvalidRequestError(
                "an Image given as data= needs media_type=, e.g. 'image/png'", field="media_type"
            )


def _tuple(value: Iterable[Any] | None) -> tuple[Any, ...]:
    return () if value is None else tuple(value)


@fast_record(kw_only=True)
class Message:
    """One chat message; build with `system()`, `user()`, `assistant()`, `tool()`.

    ``extra`` carries provider data that must travel with the message to the next turn (for
    example Gemini's ``thoughtSignature`` or Anthropic thinking blocks).

    Attributes:
        role: "system", "user", "assistant" or "tool".
        content: The text; None for an assistant message holding only tool calls.
        images: Images attached to a user message.
        tool_calls: The tool calls an assistant message asked for.
        tool_call_id: For a tool message: the id of the call it answers (required).
        name: For a tool message: the tool's name (some providers need it).
        extra: Provider data that must travel with the message to the next turn.
        cache: Mark the prompt up to and including this message for the provider's prompt
            cache (Anthropic ``cache_control``); providers that cache on their own (OpenAI,
            Gemini) ignore it.
    """

    role: Role
    content: str | None = None
    images: tuple[Image, ...] = attrs.field(default=(), converter=_tuple)
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_tuple)
    tool_call_id: str | None = None
    name: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    cache: bool = False

    def __attrs_post_init__(self) -> None:
        if self.role not in _ROLES:
            raise InvalidRequestError(
                f"message role {self.role!r} is not one of system, user, assistant, tool",
                field="role",
            )
        if self.content is not None and type(self.content) is not str:
            raise InvalidRequestError(
                f"message content must be text (a str) or None, not "
                f"{type(self.content).__name__}; put images in images=[aipk.Image(url=...)]",
                field="content")
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidRequestError(
                "a tool message needs tool_call_id= naming the tool call it answers",
                field="tool_call_id",
            )

    @classmethod
    def system(cls, content: str) -> Message:
        """A system message (instructions for the model)."""
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str, *, images: Iterable[Image] = ()) -> Message:
        """A user message, with ``images`` attached if given."""
        return cls(role="user", content=content, images=tuple(images))

    @classmethod
    def assistant(
        cls, content: str | None = None, *, tool_calls: Iterable[ToolCall] = ()
    ) -> Message:
        """An assistant message: the answer's text (``None`` when it only calls tools) and the
        [`ToolCall`][aipk.ToolCall]s it asked for; what ``aipk_parse_response`` returns as
        ``ChatResponse.message``."""
        if cls is Message and not tool_calls and (content is None or type(content) is str):
            # The usual answer, text only: built from Message's builder directly, without the
            # keyword call through the class or the checks it always passes; half the cost of
            # the keyword build for the message of every answer (a test compares the two).
            message: Any = _new(_MessageBuilder)
            message.role = "assistant"
            message.content = content
            message.images = ()
            message.tool_calls = ()
            message.tool_call_id = None
            message.name = None
            message.extra = {}
            message.cache = False
            message.__class__ = Message  # a frozen Message from here on
            built: Message = message
            return built
        return cls(role="assistant", content=content, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(cls, tool_call_id: str, content: str, *, name: str | None = None) -> Message:
        """A tool result: ``content`` answers the call whose id is ``tool_call_id``."""
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)

    @classmethod
    def coerce(cls, value: Message | Mapping[str, Any]) -> Message:
        """A Message from a Message or an OpenAI-style dict (``{"role": ..., "content": ...}``)."""
        if isinstance(value, Message):
            return value
        if not isinstance(value, Mapping):
            raise InvalidRequestError(
                f"messages must be Message objects or dicts, not {type(value).__name__}",
                field="messages",
            )
        calls = tuple(
            c if isinstance(c, ToolCall) else _tool_call_from_dict(c)
            for c in value.get("tool_calls") or ()
        )
        role = value.get("role", "")
        content = value.get("content")
        images: tuple[Image, ...] = ()
        if isinstance(content, list):
            content, images = _content_parts(content)
        return cls(
            role="system" if role == "developer" else role,
            content=content,
            images=images,
            tool_calls=calls,
            tool_call_id=value.get("tool_call_id"),
            name=value.get("name"),
        )


def _content_parts(parts: list[Any]) -> tuple[str | None, tuple[Image, ...]]:
    """OpenAI's content parts as (text, images): text parts joined by newlines, ``image_url``
    parts as [`Image`][aipk.Image]s; any other part is an InvalidRequestError naming it."""
    texts: list[str] = []
    images: list[Image] = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str) or not url:
                raise InvalidRequestError(
                    f"content part {index} (image_url) has no url; pass "
                    f'{{"type": "image_url", "image_url": {{"url": "https://..."}}}}',
                    field=f"content[{index}]")
            images.append(Image(url=url))
        else:
            shown = repr(kind) if kind is not None else f"a {type(part).__name__}"
            raise InvalidRequestError(
                f"content part {index} is {shown}; aipk takes text parts "
                f'({{"type": "text", "text": ...}}) and image_url parts here',
                field=f"content[{index}]")
    return ("\n".join(texts) if texts else None), tuple(images)


def _tool_call_from_dict(data: Mapping[str, Any]) -> ToolCall:
    fn = data.get("function", data)
    args = fn.get("arguments", "{}")
    return ToolCall(
        id=data.get("id", ""),
        name=fn.get("name", ""),
        arguments=args if isinstance(args, str) else json.dumps(args),
    )


@record(kw_only=True)
class ToolChoice:
    """Whether and which tool the model must call: AUTO, REQUIRED, NONE or `function()`.

    Attributes:
        mode: "auto", "required", "none" or "function".
        name: The function to call when ``mode`` is "function".
    """

    mode: Literal["auto", "required", "none", "function"]
    name: str | None = None

    AUTO: ClassVar[ToolChoice]
    REQUIRED: ClassVar[ToolChoice]
    NONE: ClassVar[ToolChoice]

    @classmethod
    def function(cls, name: str) -> ToolChoice:
        """The model must call the function ``name``."""
        return cls(mode="function", name=name)

    @classmethod
    def coerce(cls, value: ToolChoice | str | Mapping[str, Any] | None) -> ToolChoice | None:
        """A ToolChoice from one, a mode name, or OpenAI's
        ``{"type": "function", "function": {"name": ...}}``."""
        if value is None or isinstance(value, ToolChoice):
            return value
        if value in ("auto", "required", "none"):
            return cls(mode=value)  # type: ignore[arg-type]
        if isinstance(value, Mapping) and value.get("type") == "function":
            function = value.get("function")
            name = function.get("name") if isinstance(function, Mapping) else None
            if isinstance(name, str) and name:
                return cls.function(name)
        raise InvalidRequestError(
            f"tool_choice {value!r} is not 'auto', 'required', 'none', ToolChoice.function(name) "
            f'or {{"type": "function", "function": {{"name": ...}}}}',
            field="tool_choice",
        )


ToolChoice.AUTO = ToolChoice(mode="auto")
ToolChoice.REQUIRED = ToolChoice(mode="required")
ToolChoice.NONE = ToolChoice(mode="none")


_new = object.__new__
#: Message with Python's own setattr, to fill in a new message (see `record_builder`):
#: `Message.assistant` builds a text answer's from it
_MessageBuilder = record_builder(Message)


def _messages(value: Iterable[Message | Mapping[str, Any]] | str) -> tuple[Message, ...]:
    if isinstance(value, (str, bytes, Message)):
        raise InvalidRequestError(
            "messages must be a list of messages; for one prompt use [Message.user(text)]",
            field="messages",
        )
    messages = tuple(value)
    for message in messages:
        if type(message) is not Message:
            return tuple(Message.coerce(m) for m in messages)
    return messages  # type: ignore[return-value]  # the common case: all Messages already


def _tools(value: Iterable[Any] | None) -> tuple[Tool, ...]:
    """Tools in any accepted form (see [`aipk.as_tool()`][aipk.as_tool]) as Tool records."""
    if not value:
        return ()
    if isinstance(value, (Tool, Mapping, str, type)) or callable(value):
        raise InvalidRequestError("tools= takes a list of tools, e.g. tools=[tool]",
                                  field="tools")
    tools = tuple(value)
    for tool in tools:
        if type(tool) is not Tool:
            return tuple(as_tool(t) for t in tools)
    return tools


_NUMBERS = (float, int)


def _is(value: Any, kind: str) -> bool:
    """``isinstance(value, numbers.<kind>)``, for the numbers that are not plain ints or
    floats (NumPy's, ``Fraction`` …): ``numbers`` is imported only for them."""
    import numbers

    return isinstance(value, getattr(numbers, kind))


def _number(name: str, value: Any, high: float) -> float:
    """``value`` as a float if it is a number from 0 to ``high``, else InvalidRequestError."""
    real = type(value) in _NUMBERS or (not isinstance(value, bool) and _is(value, "Real"))
    if real and 0 <= float(value) <= high:
        return float(value)
    problem = (f"is {value!r}, outside the allowed range" if real
               else f"must be a number, not {type(value).__name__} {value!r}")
    raise InvalidRequestError(f"{name} {problem}; pass a number from 0 to {high:g}, e.g. "
                              f"{name}={high / 4:g}", field=name)


def _count(name: str, value: Any, example: int) -> int:
    """``value`` as an int if it is a positive whole number, else InvalidRequestError."""
    whole = type(value) is int or (not isinstance(value, bool) and _is(value, "Integral"))
    if whole and int(value) > 0:
        return int(value)
    problem = (f"is {value!r}" if whole
               else f"must be an integer, not {type(value).__name__} {value!r}")
    raise InvalidRequestError(f"{name} {problem}; pass a positive integer, e.g. "
                              f"{name}={example}", field=name)


def _tool_choice(value: ToolChoice | str | Mapping[str, Any] | None) -> ToolChoice | None:
    return value if value is None else ToolChoice.coerce(value)


def _stop(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        stops = tuple(value)
        if all(isinstance(stop, str) for stop in stops):
            return stops
    raise InvalidRequestError(
        f"stop must be a string or a list of strings, not {type(value).__name__} {value!r}; "
        f'pass e.g. stop="\\n\\n" or stop=["END", "###"]', field="stop")


@fast_record(kw_only=True)
class ChatRequest:
    """A provider-neutral chat request. ``extra`` is merged into the provider's wire body as is.

    Attributes:
        model: The provider's model id.
        messages: The conversation so far (Message records, or OpenAI-style dicts converted on
            creation).
        temperature: Sampling temperature; None leaves the provider's default.
        top_p: Nucleus sampling mass; None leaves the provider's default.
        max_tokens: Upper bound on the answer's tokens (positive); None leaves the provider's
            default.
        stop: Sequences that end the answer (a single string becomes a one-item tuple).
        tools: Functions the model may call: Tool records, OpenAI-style dicts, record classes
            or typed Python functions (see [`aipk.as_tool()`][aipk.as_tool]).
        tool_choice: Whether and which tool the model must call ("auto", "required", "none" or
            ToolChoice.function(name)).
        parallel_tool_calls: Allow several tool calls in one answer; None leaves the provider's
            default.
        extra: Provider-specific fields merged into the wire body as they are.
        response_format: Ask for JSON: "json" (JSON mode), a JSON Schema dict, or an attrs
            class, dataclass or pydantic model the answer is structured into
            (``response.parsed``); see [`ResponseFormat`][aipk.ResponseFormat].
    """

    model: str
    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = attrs.field(default=None, converter=_stop)
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_tools)
    tool_choice: ToolChoice | None = attrs.field(default=None, converter=_tool_choice)
    parallel_tool_calls: bool | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    # Any accepted form, made a ResponseFormat in __attrs_post_init__ (no converter: a request
    # without it pays one comparison, not a call).
    response_format: ResponseFormat | None = None

    def __attrs_post_init__(self) -> None:
        fmt = self.response_format
        if fmt is not None and type(fmt) is not ResponseFormat:
            object.__setattr__(self, "response_format", as_response_format(fmt))
        if not self.model:
            raise InvalidRequestError("model= is required, e.g. model='gpt-4o-mini'", field="model")
        if not self.messages:
            raise InvalidRequestError("messages= needs at least one message", field="messages")
        # checked here, before sending, in a few comparisons for the common types
        value: Any = self.temperature
        if value is not None and (type(value) not in _NUMBERS or not 0 <= value <= 2):
            object.__setattr__(self, "temperature", _number("temperature", value, 2))
        value = self.top_p
        if value is not None and (type(value) not in _NUMBERS or not 0 <= value <= 1):
            object.__setattr__(self, "top_p", _number("top_p", value, 1))
        value = self.max_tokens
        if value is not None and (type(value) is not int or value <= 0):
            object.__setattr__(self, "max_tokens", _count("max_tokens", value, 1024))
        if self.extra and self.extra.get("n") is not None:
            _count("n", self.extra["n"], 1)
        choice = self.tool_choice
        if (choice is not None and choice.mode == "function"
                and choice.name not in {t.name for t in self.tools}):
            raise InvalidRequestError(
                f"tool_choice names {choice.name!r}, which is not among tools=",
                field="tool_choice",
            )


def _chat_request_builder() -> Callable[[dict[str, Any]], ChatRequest]:
    builder = record_builder(ChatRequest)
    names = frozenset(field.name for field in attrs.fields(ChatRequest))

    def chat_request(fields: dict[str, Any]) -> ChatRequest:
        """``ChatRequest(**fields)``: the same record, or the same error, from the same fields.

        The request of every keyword call: its fields are stored on its builder (see
        `aipk._records.record_builder`), converted as ``__init__`` converts them and in the
        same order, then it becomes a ChatRequest and is checked by ``__attrs_post_init__``.
        Anything unusual (an unknown or missing keyword) goes through ``__init__`` itself. A
        property test compares the two."""
        if len(fields) == 2:  # the usual model= and messages=: no keys view to compare
            if "messages" not in fields or "model" not in fields:
                return ChatRequest(**fields)
        elif "messages" not in fields or "model" not in fields or not fields.keys() <= names:
            return ChatRequest(**fields)
        request: Any = _new(builder)
        request.model = fields["model"]
        value = fields["messages"]
        # `_messages()` inline for a list or tuple of Messages (a call less per request)
        messages = tuple(value) if type(value) is list or type(value) is tuple else None
        if messages is not None:
            for message in messages:
                if type(message) is not Message:
                    messages = None
                    break
        request.messages = _messages(value) if messages is None else messages
        if len(fields) == 2:  # model= and messages= alone: every other field at its default
            request.temperature = request.top_p = request.max_tokens = request.stop = None
            request.tool_choice = request.parallel_tool_calls = request.response_format = None
            request.tools = ()
            request.extra = {}
        else:
            get = fields.get
            request.temperature = get("temperature")
            request.top_p = get("top_p")
            request.max_tokens = get("max_tokens")
            value = get("stop")
            request.stop = None if value is None else _stop(value)
            value = get("tools")
            request.tools = () if value is None else _tools(value)
            value = get("tool_choice")
            request.tool_choice = None if value is None else _tool_choice(value)
            request.parallel_tool_calls = get("parallel_tool_calls")
            request.extra = get("extra", {})
            request.response_format = get("response_format")
        request.__class__ = ChatRequest
        if len(fields) != 2 or not request.model or not request.messages:
            request.__attrs_post_init__()  # (the other fields at their defaults pass it)
        return request  # type: ignore[no-any-return]

    return chat_request


chat_request = _chat_request_builder()

"""Keeping credentials out of errors, reprs and logs: checking them, and masking them.

* `check_credential()` is what every credential goes through when a client, key pool,
  router target or OAuth credential is built: surrounding whitespace (a trailing newline from
  ``$(cat keyfile)``) is stripped; an empty value, a line break, a control character or a
  non-ASCII character inside is a [`ConfigurationError`][aipk.errors.ConfigurationError] that names
  where the value came from and the fix, never the value.
* Every [`Secret`][aipk.Secret] alive in the process is remembered (weakly). `redact()`
  masks their values in a text, and long runs of them (a provider's partial echo);
  `redact_error()` does it to an error's message, args, stored body and headers and to the
  errors it was raised from. Both run only on error and repr paths, never per request.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from .errors import ConfigurationError

__all__ = ["MASK", "check_credential", "check_exact", "check_header_values", "credential_problem",
           "header_problem", "held_values", "masked", "redact", "redact_error", "remember"]

_E = TypeVar("_E", bound=BaseException)

MASK = "****"
#: Values shorter than this are not masked inside other text (too likely to be ordinary words).
MIN_MASKED = 4
#: A run of this many characters of a held secret is masked wherever it appears (a provider's
#: partial echo such as "Incorrect API key provided: sk-proj-abcd****wxyz").
PARTIAL = 8


class _Revealable(Protocol):
    def reveal(self) -> str: ...


# Keyed by a counter, not by the secret: Secrets compare by value, and a weak set would keep
# one of two equal secrets and lose the survivor when the other one dies.
_held: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_numbers = itertools.count()
#: Reentrant: a garbage collection inside `held_values()` may finalize an abandoned HTTP
#: response whose close logs a DEBUG line, which `_MaskSecrets` masks by calling it again on
#: the same thread (a plain lock would wait for itself forever).
_lock = threading.RLock()


#: The HTTP libraries' loggers that print what a server sent (httpcore logs each response
#: head at DEBUG): a server echoing the key in a header must not put it in a log line.
LIBRARY_LOGGERS = ("httpcore.http11", "httpcore.http2", "httpcore.connection",
                   "httpcore.proxy", "httpx", "aiohttp.client", "aiohttp.internal")
_masking_logs = False


class _MaskSecrets(logging.Filter):
    """Masks held secrets in a library's log record (runs only for records that are made,
    that is with DEBUG logging on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = held_values()
        if values:
            text = record.getMessage()
            masked = redact(text, values)
            if masked != text:
                record.msg, record.args = masked, ()
        return True


def remember(secret: _Revealable) -> None:
    """Note ``secret`` so that its value is masked in errors, reprs and the HTTP libraries'
    log lines while it is alive."""
    global _masking_logs
    with _lock:
        _held[next(_numbers)] = secret
        if not _masking_logs:
            _masking_logs = True
            for name in LIBRARY_LOGGERS:
                logging.getLogger(name).addFilter(_MaskSecrets())


def held_values() -> list[str]:
    """The distinct values of every live secret long enough to mask, longest first."""
    with _lock:
        values = {s.reveal() for s in _held.values()}
    return sorted((v for v in values if len(v) >= MIN_MASKED), key=len, reverse=True)


def _problem(value: str) -> str | None:
    """What is wrong with a stripped credential value, without showing it."""
    if not value:
        return "is empty"
    if value.isascii() and value.isprintable():
        return None
    for index, char in enumerate(value, 1):
        if char in "\r\n":
            return f"has a line break (CR or LF) at character {index}"
        if not char.isascii():
            return (f"has a non-ASCII character at character {index} (look for a stray "
                    f"quote, a non-breaking space or a copy-paste artefact)")
        if not char.isprintable():
            return f"has a control character at character {index}"
    return None  # pragma: no cover - isprintable() said otherwise


def credential_problem(value: str) -> str | None:
    """What is wrong with a credential value once stripped (``"is empty"``, ``"has a line
    break …"``), without showing it; None when it can be sent."""
    return _problem(value.strip())


def check_credential(value: object, *, where: str, fix: str) -> str:
    """``value`` without surrounding whitespace, or ConfigurationError naming ``where`` it came
    from (e.g. "the api_key= argument", "the environment variable OPENAI_API_KEY") and
    ``fix``; the message never contains the value."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f"the credential from {where} is a {type(value).__name__}, not a string; {fix}")
    stripped = value.strip()
    problem = _problem(stripped)
    if problem is not None:
        raise ConfigurationError(f"the credential from {where} {problem}; {fix}")
    return stripped


def check_exact(value: str, *, where: str, fix: str) -> None:
    """ConfigurationError, naming ``where`` and ``fix``, if ``value`` cannot go into a header
    as it is (surrounding whitespace included); for credentials that can no longer be
    changed."""
    problem = _problem(value)
    if problem is None and value != value.strip():
        problem = "has whitespace (a space or a line break) around it"
    if problem is not None:
        raise ConfigurationError(f"the credential from {where} {problem}; {fix}")


def header_problem(headers: Mapping[str, str]) -> str | None:
    """What is wrong with the first header in ``headers`` that cannot be sent (a name or value
    that is not a string, a line break, a control or non-ASCII character), naming the header
    and never its value; None when all can be sent."""
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not (name.isascii() and name.isprintable()):
            return "a header name is not a printable ASCII string"
        problem = _problem(value) if isinstance(value, str) else "is not a string"
        if problem is not None and value != "":
            return f"the value of header {name!r} {problem}"
    return None


def check_header_values(headers: Mapping[str, str], *, where: str) -> None:
    """ConfigurationError if a header in ``headers`` cannot be sent (see
    `header_problem()`), naming ``where`` the headers came from."""
    problem = header_problem(headers)
    if problem is not None:
        raise ConfigurationError(
            f"{problem} in {where}; header names and values must be one line of printable "
            f"ASCII")


def redact(text: str, values: list[str] | None = None) -> str:
    """``text`` with every held secret value (and every run of `PARTIAL` or more of its
    characters) replaced by ``'****'``."""
    if not text:
        return text
    if values is None:
        values = held_values()
    marks: bytearray | None = None
    for value in values:
        width = PARTIAL if len(value) > PARTIAL else len(value)
        for start in range(len(value) - width + 1):
            piece = value[start:start + width]
            at = text.find(piece)
            while at != -1:
                if marks is None:
                    marks = bytearray(len(text))
                marks[at:at + width] = b"\x01" * width
                at = text.find(piece, at + 1)
    if marks is None:
        return text
    out: list[str] = []
    masking = False
    for char, marked in zip(text, marks, strict=True):
        if marked:
            if not masking:
                out.append(MASK)
            masking = True
        else:
            out.append(char)
            masking = False
    return "".join(out)


def _redact_value(value: Any, values: list[str], depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value, values)
    if depth > 20:
        return value
    if isinstance(value, Mapping):
        return {_redact_value(k, values, depth + 1): _redact_value(v, values, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_redact_value(v, values, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
        masked = redact(text, values)
        return value if masked == text else masked.encode()
    return value


def masked(error: _E, context: BaseException) -> _E:
    """``error``, about to be raised while handling ``context`` (which Python keeps as its
    ``__context__``, even ``from None``), with held secrets masked in both: a JSON or UTF-8
    error keeps the body it failed on, and a provider may echo the key in it."""
    error.__context__ = context
    redact_error(error)
    return error


def redact_error(error: BaseException, values: list[str] | None = None) -> None:
    """Mask held secrets, in place, in ``error``'s args and attributes (message, body,
    headers, details …) and in the errors it was raised from or during."""
    if values is None:
        values = held_values()
    if not values:
        return
    seen: set[int] = set()
    current: BaseException | None = error
    pending: list[BaseException] = []
    while current is not None or pending:
        if current is None:
            current = pending.pop()
        if id(current) in seen or len(seen) > 50:
            current = None
            continue
        seen.add(id(current))
        try:
            current.args = tuple(_redact_value(a, values) for a in current.args)
            for name, attribute in list(getattr(current, "__dict__", {}).items()):
                masked = _redact_value(attribute, values)
                if masked is not attribute and masked != attribute:
                    setattr(current, name, masked)
        except (AttributeError, TypeError):  # an exception type with read-only attributes
            pass
        if current.__context__ is not None:
            pending.append(current.__context__)
        current = current.__cause__

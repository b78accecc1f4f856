"""The wait a rate-limit message names: OpenAI's and Groq's 429 bodies say "Please try again
in 4.428s" (or ``750ms``, ``6m0s``, ``1h2m3.5s``) and may come without a ``retry-after``
header."""

from __future__ import annotations

import re

__all__ = ["wait_in_message"]

_TRY_AGAIN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)", re.IGNORECASE)
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def wait_in_message(message: str | None) -> float | None:
    """Seconds of the first "try again in <duration>" in ``message`` (a Go-style duration:
    ``h``, ``m``, ``s``, ``ms`` parts), or None when it names none."""
    if not message or "again in" not in message:
        return None
    found = _TRY_AGAIN.search(message)
    if found is None:
        return None
    return sum(float(amount) * _SECONDS[unit.lower()]
               for amount, unit in _PART.findall(found.group(1)))

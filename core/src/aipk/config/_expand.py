"""``${VAR}`` expansion inside string values of a parsed config file.

Only string leaves are expanded, after parsing, so a variable can never change the file's
structure. The syntax:

* ``${VAR}``: the variable's value; an unset variable is an error naming it;
* ``${VAR:-default}``: the value, or ``default`` when the variable is unset or empty;
* ``$$``: one literal ``$``.

Any other ``$`` is kept as written (``"costs $5"`` stays as is). A value containing a newline
is refused, as is an empty result for a key (checked by the caller, which knows the field).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["ExpansionError", "expand", "references"]

_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ExpansionError(ValueError):
    """A ``${...}`` reference that cannot be expanded; ``variable`` names it (None if the
    reference itself is malformed)."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def _split(body: str) -> tuple[str, str | None]:
    name, sep, default = body.partition(":-")
    if not _NAME.match(name):
        raise ExpansionError(
            f"${{{body}}} is not a valid reference; write ${{NAME}} or ${{NAME:-default}} "
            f"(letters, digits and _), or $$ for a literal $")
    return name, default if sep else None


def expand(text: str, env: Mapping[str, str] | Callable[[str], str | None]) -> str:
    """``text`` with every ``${VAR}``, ``${VAR:-default}`` and ``$$`` replaced.

    ``env`` is a mapping or a lookup function. Raises `ExpansionError` naming the
    variable when one is unset (and has no default) or its value holds a newline.
    """
    if "$" not in text:
        return text
    lookup = env.get if isinstance(env, Mapping) else env

    def replace(match: re.Match[str]) -> str:
        body = match.group(1)
        if body is None:
            return "$"
        name, default = _split(body)
        value = lookup(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ExpansionError(f"${{{name}}} is not set; set {name}", name)
            value = default
        if "\n" in value or "\r" in value:
            raise ExpansionError(f"${{{name}}} holds a line break, which a config value "
                                 f"cannot contain; fix {name}", name)
        return value

    return _TOKEN.sub(replace, text)


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (malformed references skipped)."""
    names = []
    for match in _TOKEN.finditer(text):
        body = match.group(1)
        if body is not None:
            name = body.partition(":-")[0]
            if _NAME.match(name):
                names.append(name)
    return names

"""Finding and parsing the config file, and expanding ``${VAR}`` in its values.

The result is a `Document`: the parsed data with every string expanded, where each value
came from (``aipk.toml:12``, ``aipk.toml:12 via $GROQ_KEY``), the problems found so far, and
warnings (a file others can read that holds literal secrets).
"""

from __future__ import annotations

import os
import re
import stat
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._expand import ExpansionError, expand, references

__all__ = ["ConfigWarning", "Document", "EnvString", "Problem", "apply_env_overrides",
           "default_paths", "find_config", "load_document", "parse_document", "render_path",
           "user_config_dir"]

PathKey = tuple[str | int, ...]

#: Keys whose values are credentials: masked by ``aipk config show``, and a literal one in a
#: file others can read draws a warning.
SECRET_KEYS = frozenset({"api_key", "api_keys", "client_secret", "password", "token",
                         "access_token", "refresh_token"})


class EnvString(str):
    """A string that came (partly) from environment variables: the strict converter lets
    these, and only these, become numbers or booleans (``"30"``, ``"true"``)."""

    __slots__ = ()


class ConfigWarning(UserWarning):
    """Something in a config file works but is risky (a literal secret others can read)."""


@attrs.frozen(kw_only=True)
class Problem:
    """One thing wrong with a config: ``path`` is the dotted key path (``providers.groq.api_key``),
    ``message`` what is wrong and how to fix it, ``origin`` where the value came from."""

    path: str
    message: str
    origin: str | None = None

    def __str__(self) -> str:
        where = f" ({self.origin})" if self.origin else ""
        return f"{self.path or '(top level)'}: {self.message}{where}"


@attrs.frozen(kw_only=True)
class Document:
    """A parsed, expanded config file. ``origins`` maps key paths to where each value came
    from; ``expanded`` holds the paths whose value came (partly) from environment variables;
    ``failed`` the paths whose expansion failed (already reported in ``problems``)."""

    path: Path | None
    data: dict[str, Any]
    origins: dict[PathKey, str] = attrs.field(factory=dict)
    expanded: frozenset[PathKey] = frozenset()
    failed: frozenset[PathKey] = frozenset()
    problems: tuple[Problem, ...] = ()
    warnings: tuple[str, ...] = ()

    def origin(self, path: PathKey) -> str | None:
        """Where the value at ``path`` came from (the nearest enclosing key that is known)."""
        for end in range(len(path), -1, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return None


def render_path(path: PathKey) -> str:
    """``("providers", "groq", "api_keys", 1)`` as ``providers.groq.api_keys[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f'."{part}"' if out else f'"{part}"'
    return out


# -- where the file is ---------------------------------------------------------------------------


def user_config_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user config directory for aipk: ``%APPDATA%\\aipk`` on Windows,
    ``~/Library/Application Support/aipk`` on macOS, else ``$XDG_CONFIG_HOME/aipk``
    (``~/.config/aipk``)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith("win"):
        base = env.get("APPDATA") or str(Path("~/AppData/Roaming").expanduser())
        return Path(base) / "aipk"
    if platform == "darwin":
        return Path("~/Library/Application Support").expanduser() / "aipk"
    base = env.get("XDG_CONFIG_HOME", "").strip() or str(Path("~/.config").expanduser())
    return Path(base) / "aipk"


def default_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where aipk looks for a config file, in order: ``$AIPK_CONFIG``, ``./aipk.toml``
    (then ``./aipk.yaml``), the user config directory's ``aipk.toml`` (then ``aipk.yaml``)."""
    env = os.environ if env is None else env
    paths = []
    explicit = env.get("AIPK_CONFIG", "").strip()
    if explicit:
        paths.append(Path(explicit).expanduser())
    paths += [Path("aipk.toml"), Path("aipk.yaml")]
    user = user_config_dir(env)
    paths += [user / "aipk.toml", user / "aipk.yaml"]
    return paths


def find_config(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: ``path`` if given (it must exist), else the first existing of
    `default_paths()` (``$AIPK_CONFIG`` must exist when set), else None."""
    from aipk.errors import ConfigFileError

    if path is not None:
        chosen = Path(path).expanduser()
        if not chosen.is_file():
            raise ConfigFileError(chosen, [Problem(path="", message=(
                f"no config file at {chosen}; check the path, or create it "
                f"(see docs/configuration.md)"))])
        return chosen
    explicit = os.environ.get("AIPK_CONFIG", "").strip()
    if explicit and not Path(explicit).expanduser().is_file():
        raise ConfigFileError(Path(explicit), [Problem(path="", message=(
            f"AIPK_CONFIG points at {explicit}, which does not exist; fix or unset AIPK_CONFIG"))])
    for candidate in default_paths():
        if candidate.is_file():
            return candidate
    return None


# -- parsing --------------------------------------------------------------------------------------


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in {".yaml", ".yml"}


def parse_document(text: str, path: Path, *,
                   env: Mapping[str, str] | Callable[[str], str | None] | None = None,
                   mode: int | None = None) -> Document:
    """Parse ``text`` (TOML, or YAML for ``.yaml``/``.yml``), expand ``${VAR}`` in its string
    values from ``env`` (default: the environment) and record each value's origin.

    A syntax error raises [`ConfigFileError`][aipk.errors.ConfigFileError] with the file, line and
    column. ``mode`` (the file's permission bits) enables the literal-secret warning.
    """
    if _is_yaml(path):
        from ._yaml import parse_yaml

        data, lines = parse_yaml(text, path)
    else:
        data, lines = _parse_toml(text, path)
    name = path.name
    origins: dict[PathKey, str] = {key: f"{name}:{line}" for key, line in lines.items()}
    lookup = env if env is not None else os.environ.get
    problems: list[Problem] = []
    expanded: set[PathKey] = set()
    failed: set[PathKey] = set()
    literal_secrets: list[str] = []

    def walk(value: Any, key: PathKey, secret: bool) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*key, k), secret or k in SECRET_KEYS) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*key, i), secret) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        names = references(value)
        if secret and not names and value:
            literal_secrets.append(render_path(key))
        if "$" not in value:
            return value
        try:
            result = expand(value, lookup)
        except ExpansionError as exc:
            failed.add(key)
            problems.append(Problem(path=render_path(key), message=str(exc),
                                    origin=_origin_of(origins, key)))
            return value
        if names:
            expanded.add(key)
            base = _origin_of(origins, key)
            via = " via " + ", ".join(f"${n}" for n in dict.fromkeys(names))
            origins[key] = (base or name) + via
            return EnvString(result)
        return result

    expanded_data = walk(data, (), False)
    notes: list[str] = []
    if (literal_secrets and mode is not None and mode & 0o077
            and not sys.platform.startswith("win")):
        notes.append(
            f"{path} holds literal secrets ({', '.join(literal_secrets)}) and other users can "
            f"read it (mode {stat.filemode(mode)}); run: chmod 600 {path} (better: write "
            f"api_key = \"${{VAR}}\" and keep the key in the environment)")
    return Document(path=path, data=expanded_data, origins=origins,
                    expanded=frozenset(expanded), failed=frozenset(failed),
                    problems=tuple(problems), warnings=tuple(notes))


def _origin_of(origins: Mapping[PathKey, str], key: PathKey) -> str | None:
    for end in range(len(key), -1, -1):
        found = origins.get(key[:end])
        if found is not None:
            return found
    return None


def load_document(path: Path, *, env: Mapping[str, str] | None = None) -> Document:
    """Read and parse the file at ``path`` (see `parse_document()`); warnings are also
    issued as `ConfigWarning`."""
    from aipk.errors import ConfigFileError

    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigFileError(path, [Problem(path="", message=(
            f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions"))]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigFileError(path, [Problem(path="", message=(
            f"{path}:{line}: the file is not valid UTF-8; save it as UTF-8"))]) from None
    document = parse_document(text, path, env=env, mode=stat.S_IMODE(mode))
    for note in document.warnings:
        warnings.warn(note, ConfigWarning, stacklevel=3)
    return document


# -- TOML ----------------------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_SEGMENT = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_SEGMENT}(?:\s*\.\s*{_SEGMENT})*)\s*=")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"([^"]*)"|'([^']*)'""")


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli  # type: ignore[import-not-found, unused-ignore]  # pragma: no cover

    return tomli  # pragma: no cover - Python 3.10 only


def _parse_toml(text: str, path: Path) -> tuple[dict[str, Any], dict[PathKey, int]]:
    from aipk.errors import ConfigFileError

    toml = _toml_module()
    try:
        data: dict[str, Any] = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        message = str(exc)
        line = getattr(exc, "lineno", None)
        column = getattr(exc, "colno", None)
        found = _TOML_POSITION.search(message)
        if found:
            line, column = int(found[1]), int(found[2])
            message = message[:found.start()]
        where = f"{path}:{line}:{column}" if line else str(path)
        raise ConfigFileError(path, [Problem(path="", message=(
            f"{where}: not valid TOML: {message}; fix the syntax there"))]) from None
    return data, _toml_lines(text)


def _keys(dotted: str) -> list[str]:
    return [m.group(1) if m.group(1) is not None else m.group(2) if m.group(2) is not None
            else m.group(0) for m in _PART.finditer(dotted)]


def _toml_lines(text: str) -> dict[PathKey, int]:
    """Line numbers of table headers and ``key =`` lines (by key path), for origins. A
    best-effort scan: values inside inline tables and multi-line arrays take the line of
    the key that holds them."""
    lines: dict[PathKey, int] = {}
    table: PathKey = ()
    counters: dict[PathKey, int] = {}
    in_string = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_string = not in_string
            continue
        if in_string:
            continue
        header = _HEADER.match(line)
        if header:
            key: PathKey = tuple(_keys(header.group(2)))
            if header.group(1) == "[[":
                index = counters.get(key, -1) + 1
                counters[key] = index
                lines.setdefault(key, number)
                key = (*key, index)
            table = key
            lines.setdefault(table, number)
            continue
        assignment = _KEY.match(line)
        if assignment:
            lines.setdefault((*table, *_keys(assignment.group(1))), number)
    return lines


# -- environment overrides ------------------------------------------------------------------------


def apply_env_overrides(document: Document, env: Mapping[str, str] | None = None) -> Document:
    """``document`` with ``AIPK_SECTION__NAME__KEY=value`` variables applied over the file
    (``AIPK_PROVIDERS__OPENAI__TIMEOUT=30`` sets ``providers.openai.timeout``). Names are
    lower-cased; a value is a string that converts to a number or boolean where the field
    needs one."""
    env = os.environ if env is None else env
    data = _copy(document.data)
    origins = dict(document.origins)
    expanded = set(document.expanded)
    for var in sorted(env):
        if not var.startswith("AIPK_") or "__" not in var:
            continue
        parts = [p for p in var[5:].lower().split("__") if p]
        if not parts:
            continue
        node: Any = data
        for part in parts[:-1]:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if not isinstance(node, dict):
            continue
        node[parts[-1]] = EnvString(env[var])
        key = tuple(parts)
        origins[key] = f"env {var}"
        expanded.add(key)
    return attrs.evolve(document, data=data, origins=origins, expanded=frozenset(expanded))


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value

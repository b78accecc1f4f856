"""YAML config files (needs PyYAML: ``pip install 'aipk-core[yaml]'``): safe loading, duplicate
keys refused, and the line of every key recorded for origins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["parse_yaml"]

PathKey = tuple[str | int, ...]


def parse_yaml(text: str, path: Path) -> tuple[dict[str, Any], dict[PathKey, int]]:
    """The mapping in ``text`` and the line of each key path; errors name file, line, column."""
    from aipk.errors import ConfigFileError

    from ._load import Problem

    def fail(message: str) -> ConfigFileError:
        return ConfigFileError(path, [Problem(path="", message=message)])

    try:
        import yaml  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise fail(f"{path} is YAML, which needs PyYAML: pip install 'aipk-core[yaml]' "
                   f"(or write the config as TOML, aipk.toml)") from None
    loader = yaml.SafeLoader(text)
    lines: dict[PathKey, int] = {}

    def build(node: Any, key: PathKey) -> Any:
        lines.setdefault(key, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                name = loader.construct_object(key_node, deep=True)
                if not isinstance(name, str):
                    name = str(name)
                if name in out:
                    mark = key_node.start_mark
                    raise fail(f"{path}:{mark.line + 1}:{mark.column + 1}: duplicate key "
                               f"{name!r}; keep one of them")
                out[name] = build(value_node, (*key, name))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*key, i)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    try:
        try:
            root = loader.get_single_node()
            data = {} if root is None else build(root, ())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "syntax error"
        raise fail(f"{where}: not valid YAML: {problem}; fix the syntax there") from None
    except yaml.YAMLError as exc:
        raise fail(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise fail(f"{path}: the top level must be a mapping (providers:, routers: …), "
                   f"not {type(data).__name__}")
    return data, lines

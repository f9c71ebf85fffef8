"""Reading a YAML config file with the line of every value, so each error names where it is.

This module imports neither litellm nor mcp: it runs before the server answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..text import utf8_text

__all__ = ["ConfigError", "Path_", "Source", "dotted", "read_source"]

Path_ = tuple[str | int, ...]


class ConfigError(ValueError):
    """A config file that cannot be served. `str()` is one line: file, line, key, what is wrong."""


@dataclass
class Source:
    """One file's data and the line of every value in it, by path."""

    file: Path
    data: dict[str, Any]
    lines: dict[Path_, int]

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def read_source(file: Path) -> Source:
    try:
        text = utf8_text(file.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # not UTF-8: the line and the byte
        raise ConfigError(f"{file}: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        data = {} if node is None else _build(loader, node, (), lines)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}:{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: line 1: the file must be a mapping of sections (model_list, router_settings, ...)")
    return Source(file, data, lines)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # `<<:` merge keys, as yaml.safe_load applies them
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            out[key] = _build(loader, value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out

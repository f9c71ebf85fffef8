"""Where a call's `files` may be read from: the roots (HIVE_MCP_FILE_ROOTS), each open to every caller or to
the callers it names.

The setting is a path list, `os.pathsep`-separated as PATH is, each entry `PATH` (open to every caller) or
`PATH=NAME,NAME` (open to those callers only): `/srv/repo=alice,bob:/srv/docs`. In the `hive_mcp:` section of
config.yaml it may also be a list of such entries, or a mapping of path to names (null: every caller). `none`
turns files off. Unset, the working directory is the root over stdio, and nothing over HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..tokens import is_caller_name
from .refusal import FilesRefused

__all__ = ["ROOTS_SETTING", "FileRoots", "Root", "parse_roots"]

ROOTS_SETTING = "HIVE_MCP_FILE_ROOTS"
OFF = "none"


@dataclass(frozen=True)
class Root:
    """A directory files may be read from (resolved: symlinks followed), and who may read there."""

    path: Path
    callers: frozenset[str] | None = None
    """The callers this root is open to; None: every caller."""

    def open_to(self, caller: str) -> bool:
        return self.callers is None or caller in self.callers

    def holds(self, path: Path) -> bool:
        """Whether the resolved `path` is this root or under it."""
        return path == self.path or path.is_relative_to(self.path)


def parse_roots(value: Any) -> tuple[Root, ...] | None:
    """The roots a setting's value names: None when unset, () for `none` (files off).

    Raises ValueError, one line naming the entry: a root that is not a directory, a bad caller name.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == OFF:
            return ()
        entries: list[tuple[str, Any]] = [_split(e) for e in value.split(os.pathsep) if e.strip()]
    elif isinstance(value, Mapping):
        entries = [(str(path), names) for path, names in value.items()]
    elif isinstance(value, Sequence):
        entries = [(e.path, e.callers) if isinstance(e, Root) else _split(str(e)) for e in value]
    else:
        raise ValueError(f"must be a path list, not {type(value).__name__}")
    if not entries:
        raise ValueError(f"no root in the value (a path list such as /srv/repo{os.pathsep}/srv/docs, or {OFF})")
    return tuple(_root(path, names) for path, names in entries)


def _split(entry: str) -> tuple[str, str | None]:
    """`PATH=NAMES` -> (PATH, NAMES); `PATH` -> (PATH, None)."""
    path, sep, names = entry.strip().rpartition("=")
    return (path, names) if sep else (names, None)


def _root(path: Any, names: Any) -> Root:
    if isinstance(path, Path):
        where = path
    else:
        where = Path(str(path).strip()).expanduser()
    if not where.is_dir():
        raise ValueError(f"{path}: not a directory")
    return Root(where.resolve(), _callers(path, names))


def _callers(path: Any, names: Any) -> frozenset[str] | None:
    if names is None or isinstance(names, frozenset):
        return names
    listed = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    bad = next((n for n in listed if not is_caller_name(n)), None)
    if bad is not None or not listed:
        raise ValueError(f"{path}: {bad!r} is not a caller name (a letter, then letters, digits, _ . -)")
    return frozenset(listed)


@dataclass(frozen=True)
class FileRoots:
    """The roots of one server, as its transport makes them (`configured`); `open_to` a caller."""

    roots: tuple[Root, ...]
    off: str | None = None
    """Why files are off (no root at all), as the refusal says it."""

    @classmethod
    def configured(cls, roots: tuple[Root, ...] | None, transport: str, cwd: Path) -> FileRoots:
        """The roots a server has: those set; unset, the working directory `cwd` over stdio and none over HTTP."""
        if roots is None:
            if transport == "stdio":
                return cls((Root(cwd.resolve()),))
            why = f"files are off: a server over {transport} reads none unless {ROOTS_SETTING} names roots"
            return cls((), off=why)
        if not roots:
            return cls((), off=f"files are off on this server ({ROOTS_SETTING}={OFF})")
        return cls(roots)

    def open_to(self, caller: str) -> tuple[Root, ...]:
        """The roots `caller` may read, in order (relative paths are taken from the first); raises FilesRefused
        when there is none, naming no root."""
        if self.off is not None:
            raise FilesRefused(self.off)
        mine = tuple(r for r in self.roots if r.open_to(caller))
        if not mine:
            raise FilesRefused(f"no file root of this server is open to caller {caller!r}")
        return mine

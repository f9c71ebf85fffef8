"""Which files a call's `files` names: explicit paths, directories and globs (`src/**/*.py`) expanded to
files, each resolved (symlinks followed) and checked to stay inside a root the caller may read.

Relative paths are taken from the caller's first root. A directory stands for every file under it. Globs
follow the shell's rules: `*`, `?` and `[...]` match within one path component, `**` any number of them, and a
wildcard does not match a name starting with a dot. A glob walks no never-read or ignored directory and
follows no symlinked directory; a symlinked file it matches is read only if it resolves inside a root.

Refused (FilesRefused, naming the path): a path outside every root the caller may read, an explicit path
that does not exist, a path the system cannot look up (a name over 255 bytes). Skipped with the reason: a
never-read file named or matched, a file with another hard link (where its other names are cannot be seen),
an ignored file named, a glob that matches nothing or only ignored files.
Ignored files a glob matches are otherwise left out silently (a build directory would fill the result).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from ..text import shorten
from .refusal import FilesRefused
from .roots import Root
from .rules import IgnoreRules, never_reason

__all__ = ["Candidate", "Selection", "select"]

_WILD = frozenset("*?[")


@dataclass(frozen=True)
class Candidate:
    """A file to read: its resolved path, how the result names it, its size when selected, and which file it
    was then, (st_dev, st_ino): reading opens only that file (`examine`), so what is read is what was checked."""

    path: Path
    shown: str
    size: int
    identity: tuple[int, int]


@dataclass
class Selection:
    """The files a request names, in the order named (each once), and those skipped with the reason."""

    files: list[Candidate]
    skipped: list[tuple[str, str]]


def select(requested: list[str] | tuple[str, ...], roots: tuple[Root, ...]) -> Selection:
    """The files `requested` names within `roots` (the caller's, first one the base of relative paths)."""
    walker = _Walker(roots)
    for request in requested:
        try:
            if _WILD & set(request):
                walker.glob(request)
            else:
                walker.explicit(request)
        except FilesRefused:
            raise
        except (OSError, ValueError) as exc:
            # A path the system cannot look up (a component over 255 bytes: ENAMETOOLONG; a NUL byte: ValueError)
            # fails its first check (`is_dir`, `is_file`), which raise for these rather than answer False.
            raise FilesRefused(f"{shorten(request, 60)}: not a valid path ({_reason(exc)})") from None
    return Selection(list(walker.files.values()), walker.skipped)


def _reason(exc: OSError | ValueError) -> str:
    """Why a path could not be looked up, in lower case: the system's words for its error number."""
    errno = getattr(exc, "errno", None)
    return os.strerror(errno).lower() if errno else shorten(str(exc), 60)


class _Walker:
    def __init__(self, roots: tuple[Root, ...]) -> None:
        self.roots = roots
        self.base = roots[0].path
        self.files: dict[Path, Candidate] = {}
        self.skipped: list[tuple[str, str]] = []
        self._rules: dict[Path, IgnoreRules] = {}

    # -- one request ----------------------------------------------------------------------------

    def explicit(self, request: str) -> None:
        lexical = self._lexical(request)
        real = self._inside(request, lexical)
        if real.is_dir():
            root = self._root_of(real)
            assert root is not None  # checked by _inside
            why = never_reason(_below(root.path, real))
            if why is None and self._ignore_rules(root).ignored_within(real, is_dir=True):
                why = "ignored by .gitignore"
            if why is not None:
                self.skipped.append((self._shown(lexical), why))
            else:
                self._walk(lexical, ("**",))
            return
        if not real.is_file():
            raise FilesRefused(f"{request}: {'not a regular file' if real.exists() else 'no such file'}")
        self._add(lexical, real, explicit=True)

    def glob(self, request: str) -> None:
        parts = Path(request).expanduser().parts
        fixed = next((i for i, part in enumerate(parts) if _WILD & set(part)), len(parts))
        start = self._lexical(str(Path(*parts[:fixed])) if fixed else ".")
        real = self._inside(request, start)
        outcomes = self._walk(start, parts[fixed:]) if real.is_dir() else Counter()
        if not outcomes:
            self.skipped.append((request, "matches no file"))
        elif set(outcomes) == {"ignored"}:
            self.skipped.append((request, "matches only files .gitignore excludes"))

    # -- shared ---------------------------------------------------------------------------------

    def _lexical(self, request: str) -> Path:
        path = Path(request).expanduser()
        return Path(os.path.normpath(path if path.is_absolute() else self.base / path))

    def _inside(self, request: str, lexical: Path) -> Path:
        """`lexical` resolved, when it is inside a root; raises FilesRefused naming `request` otherwise."""
        real = _resolved(lexical)
        if real is None:
            raise FilesRefused(f"{request}: cannot be resolved (a symlink loop)")
        if self._root_of(real) is None:
            raise FilesRefused(f"{request}: outside the directories this server reads files from")
        return real

    def _root_of(self, real: Path) -> Root | None:
        return next((r for r in self.roots if r.holds(real)), None)

    def _walk(self, start: Path, pattern: tuple[str, ...]) -> Counter[str]:
        """Add the files under `start` that `pattern` matches: each directory's own files in name order, then its
        subdirectories; returns what became of them (`_add`'s outcomes). Symlinked directories are not followed,
        so below the resolved start a path is its own resolved path unless it is a symlink itself."""
        outcomes: Counter[str] = Counter()
        real_start = start.resolve()
        root = self._root_of(real_start)
        assert root is not None  # checked by _inside
        pending: list[tuple[tuple[str, ...], str]] = [((), str(real_start))]
        while pending:
            rel, directory = pending.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for entry in entries:
                parts = (*rel, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    if _may_hold(pattern, parts) and self._enterable(root, Path(entry.path)):
                        subdirs.append((parts, entry.path))
                elif _matches(pattern, parts):
                    lexical = start.joinpath(*parts)
                    if entry.is_symlink():
                        if _resolved(Path(entry.path)) is None:
                            self.skipped.append((self._shown(lexical), "cannot be resolved (a symlink loop)"))
                            outcomes["skipped"] += 1
                            continue
                        real = self._inside(self._shown(lexical), Path(entry.path))
                        if real.is_file():
                            outcomes[self._add(lexical, real, explicit=False)] += 1
                    elif entry.is_file(follow_symlinks=False):  # not a FIFO, a socket or a device
                        outcomes[self._add(lexical, Path(entry.path), explicit=False)] += 1
            pending.extend(reversed(subdirs))
        return outcomes

    def _enterable(self, root: Root, directory: Path) -> bool:
        if never_reason(_below(root.path, directory)) is not None:
            return False
        return not self._ignore_rules(root).ignored(directory, is_dir=True)

    def _add(self, lexical: Path, real: Path, *, explicit: bool) -> str:
        """Select the file, or skip it with the reason: "added", "repeat", "skipped" or "ignored"."""
        shown = self._shown(lexical)
        if real in self.files:
            return "repeat"
        root = self._root_of(real)
        assert root is not None  # checked by _inside
        lexical_root = self._root_of(lexical)
        for where, path in ((lexical_root, lexical), (root, real)):
            if where is None:
                continue
            why = never_reason(_below(where.path, path))
            if why is not None:
                self.skipped.append((shown, why))
                return "skipped"
        rules = self._ignore_rules(root)
        # A walk entered no ignored directory: only the file itself is left to check, unless it is a link.
        if rules.ignored_within(real) if explicit or real != lexical else rules.ignored(real):
            if explicit:
                self.skipped.append((shown, "ignored by .gitignore"))
            return "ignored"
        try:
            # Not following a link: `real` is resolved, so a link here is one made since, which reading refuses.
            found = os.stat(real, follow_symlinks=False)
        except OSError:
            self.skipped.append((shown, "cannot be read"))
            return "skipped"
        if found.st_nlink > 1:
            # A hard link resolves to itself: its other names, which may be outside every root, cannot be seen.
            self.skipped.append((shown, "has another hard link, which may be outside the roots"))
            return "skipped"
        self.files[real] = Candidate(real, shown, found.st_size, (found.st_dev, found.st_ino))
        return "added"

    def _shown(self, lexical: Path) -> str:
        """How the result names a file: from the base root when it is under it, else its absolute path; bytes of
        a name that are not UTF-8 escaped (`\\xe9`), so the name travels in JSON."""
        shown = lexical.relative_to(self.base).as_posix() if lexical.is_relative_to(self.base) else str(lexical)
        return os.fsencode(shown).decode("utf-8", "backslashreplace")

    def _ignore_rules(self, root: Root) -> IgnoreRules:
        if root.path not in self._rules:
            self._rules[root.path] = IgnoreRules.for_root(root.path)
        return self._rules[root.path]


def _resolved(path: Path) -> Path | None:
    """`path` with every symlink followed; None for a symlink loop."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # 3.11 raises RuntimeError for a loop; later versions OSError
        return None


def _below(top: Path, path: Path) -> tuple[str, ...]:
    """The components of `path` below `top` (which holds it)."""
    rest = str(path)[len(str(top)) :].strip("/")
    return tuple(rest.split("/")) if rest else ()


def _may_hold(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether a file below the directory whose components are `parts` could match `pattern`."""
    for i, part in enumerate(parts):
        if i >= len(pattern):
            return False
        head = pattern[i]
        if head == "**":
            return True
        if (part.startswith(".") and not head.startswith(".")) or not fnmatchcase(part, head):
            return False
    return len(pattern) > len(parts)


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether the path components `parts` match the glob components `pattern` (shell rules, `**` included)."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return _matches(rest, parts) or (bool(parts) and not parts[0].startswith(".") and _matches(pattern, parts[1:]))
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatchcase(parts[0], head) and _matches(rest, parts[1:])

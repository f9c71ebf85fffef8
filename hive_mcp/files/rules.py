"""What is never read, whatever a call asks: dotfiles and dot-directories (`.env*`, `.git/`, `.ssh/`, `.netrc`,
`.npmrc`, `.pypirc`, `.aws/`, `.config/gcloud`, `.azure`, ...), key and certificate files, and what the
repository's `.gitignore` files exclude.

Ignore rules are read with `pathspec` (the `files` extra), which matches them as git does. Without it, a
`.gitignore` that applies refuses the call rather than be passed over: reading what a repository keeps out of
its history (build output, local settings, secrets) is the mistake to avoid.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .refusal import FilesRefused

__all__ = ["IgnoreRules", "never_reason"]

NEVER_NAMES = ("*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "id_*", "credentials", "credentials.json",
               "*.tfstate", "*.tfstate.*")  # fmt: skip
"""File names that hold keys or credentials outside a dot-directory, in lower case: a name is matched in any case
(`server.PEM`, `ID_RSA`), on every OS, as the dot rule is (a leading dot has no case)."""

IGNORE_FILE = ".gitignore"


def never_reason(parts: tuple[str, ...]) -> str | None:
    """Why the path whose components below its root are `parts` is never read; None when it may be."""
    for part in parts:
        if part.startswith("."):
            return f"never read: {part} (dotfiles and dot-directories hold credentials)"
    # Folded, not left to the OS's case rule (`fnmatch` folds on Windows only): a case-insensitive disk (macOS,
    # Windows) opens `server.PEM` as `server.pem`, and a key is a key whatever case its name is in.
    name = parts[-1].casefold() if parts else ""
    for pattern in NEVER_NAMES:
        if fnmatchcase(name, pattern):
            return f"never read: {pattern} files hold keys or credentials"
    return None


class IgnoreRules:
    """The `.gitignore` files that apply below `top` (a repository's top directory, or a root outside any
    repository), each read once."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self._specs: dict[str, Any] = {}

    @classmethod
    def for_root(cls, root: Path) -> IgnoreRules:
        """The rules for files under `root`: from the top of the repository holding it (the nearest directory
        with a `.git`), else from `root` itself."""
        for directory in (root, *root.parents):
            if (directory / ".git").exists():
                return cls(directory)
        return cls(root)

    def ignored(self, path: Path, is_dir: bool = False) -> bool:
        """Whether git would ignore `path` (a resolved path under `top`), checked by the `.gitignore` of each
        directory from `top` down: a deeper file's rule overrides a shallower one's."""
        parts = self._below(path)
        verdict = False
        for depth in range(len(parts)):
            spec = self._spec("/".join((str(self.top), *parts[:depth])))
            if spec is None:
                continue
            found = spec.check_file("/".join(parts[depth:]) + ("/" if is_dir else "")).include
            if found is not None:
                verdict = found
        return verdict

    def ignored_within(self, path: Path, is_dir: bool = False) -> bool:
        """Whether `path` or a directory between `top` and it is ignored (git does not look inside those)."""
        parts = self._below(path)
        for depth in range(1, len(parts)):
            if self.ignored(self.top.joinpath(*parts[:depth]), is_dir=True):
                return True
        return self.ignored(path, is_dir)

    def _below(self, path: Path) -> list[str]:
        rest = str(path)[len(str(self.top)) :].strip("/")
        return rest.split("/") if rest else []

    def _spec(self, directory: str) -> Any:
        if directory not in self._specs:
            self._specs[directory] = _read(Path(directory, IGNORE_FILE))
        return self._specs[directory]


def _read(path: Path) -> Any:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError:
        raise FilesRefused(f"cannot read the {IGNORE_FILE} that applies to these files, so none are read") from None
    try:
        import pathspec
    except ImportError:
        raise FilesRefused(
            f"{IGNORE_FILE} rules apply to these files and cannot be honoured without the pathspec package: "
            "install hive-mcp[files]"
        ) from None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception:  # noqa: BLE001 - pathspec's and re's errors alike: a line that is not a pattern
        # As git does, a line that is not a valid pattern matches nothing; the others still apply.
        return pathspec.GitIgnoreSpec.from_lines([line for line in lines if _is_pattern(pathspec, line)])


def _is_pattern(pathspec: Any, line: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([line]).check_file("x")
    except Exception:  # noqa: BLE001 - see _read
        return False
    return True

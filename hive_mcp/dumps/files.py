"""Dump files on disk, each appearing whole in one step: private temp files, then a link or a rename.

A temp file starts with ``.`` and ends with ``.tmp`` (`TMP_RE`), so a listing
never sees it and a crash leaves only what `TMP_RE` matches.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from secrets import token_hex

TMP_RE = re.compile(r"\.hive-dump-[0-9a-f]{16}\.tmp")

# Errnos meaning "this filesystem cannot hard-link"; `claim` then falls back to os.replace.
_NO_HARDLINK = frozenset(
    e for e in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV) if e
)


def unlink_quiet(path: str | os.PathLike[str]) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def write_tmp(directory: Path, payload: bytes) -> str:
    """`payload` in a new temp file of `directory` (mode 0600, synced to disk); its path."""
    path = os.path.join(directory, f".hive-dump-{token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o600)  # exact, whatever the umask
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        unlink_quiet(path)
        raise
    return path


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def claim(directory: Path, name: str, payload: bytes) -> bool:
    """Write `payload` as `directory/name` unless that name is taken; False if it was."""
    final = os.path.join(directory, name)
    tmp = write_tmp(directory, payload)
    try:
        # link() fails if `final` exists, so a name is never taken twice,
        # and the full file appears under its real name in one step.
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARDLINK:
                raise
            if os.path.lexists(final):  # no hard links here: best-effort exclusivity
                return False
            os.replace(tmp, final)
        fsync_dir(directory)
        return True
    finally:
        unlink_quiet(tmp)


def overwrite(path: Path, payload: bytes) -> bool:
    """Write `payload` over the file at `path` in one step; False if there is no such file."""
    if not path.exists():
        return False
    tmp = write_tmp(path.parent, payload)
    try:
        os.replace(tmp, path)
    finally:
        unlink_quiet(tmp)
    return True

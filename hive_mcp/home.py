"""The hive home, where hive-mcp keeps its files unless told otherwise, and how a directory of ours is kept private."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path


def hive_home(env: Mapping[str, str] = os.environ) -> Path:
    """`$HIVE_HOME`, else `~/.hive` (HOME from `env` when set)."""
    if home := env.get("HIVE_HOME"):
        return Path(home).expanduser()
    return (Path(env["HOME"]) if env.get("HOME") else Path.home()) / ".hive"


def private_dir(directory: Path) -> None:
    """`directory` created 0700, and tightened to 0700 when it is ours and looser (dumps and databases hold
    prompts); NotADirectoryError when something else has the name."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(directory))
    geteuid = getattr(os, "geteuid", None)  # POSIX only
    if geteuid is not None and st.st_uid == geteuid() and stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)

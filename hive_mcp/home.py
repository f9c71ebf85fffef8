"""The hive home, where hive-mcp keeps its files unless told otherwise, and how a directory of ours is kept private."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path


NOT_A_DIRECTORY = "is not a directory"
HOME_VAR = "HIVE_HOME"


def hive_home(env: Mapping[str, str] = os.environ) -> Path:
    """`$HIVE_HOME`, else `~/.hive` (HOME from `env` when set). A ValueError naming HIVE_HOME when it (or the
    default) names the home of a user this system does not know."""
    home = env.get(HOME_VAR)
    try:
        if home:
            return Path(home).expanduser()
        return (Path(env["HOME"]) if env.get("HOME") else Path.home()) / ".hive"
    except RuntimeError:  # `~user` of no such user, or no home at all
        what = f"HIVE_HOME: {home!r}" if home else "HIVE_HOME is unset and the default ~/.hive"
        raise ValueError(f"{what} names the home directory of a user this system does not know") from None


def home_problem(env: Mapping[str, str] = os.environ) -> str | None:
    """Why the hive home cannot hold our files, in one line naming HIVE_HOME; None when it can (an absent one
    is created when first needed)."""
    try:
        home = hive_home(env)
    except ValueError as exc:
        return str(exc)
    if unsafe_dir(home) != NOT_A_DIRECTORY:
        return None
    if env.get(HOME_VAR):
        return f"HIVE_HOME: {home} {NOT_A_DIRECTORY}"
    return f"HIVE_HOME is unset and the default hive home {home} {NOT_A_DIRECTORY}"


def unsafe_dir(directory: Path) -> str | None:
    """Why an existing `directory` must not hold our files, in words; None when it is absent or fine.

    Another user's directory, or one that others may write to, lets them read
    what we keep (prompts) or plant files and links among ours. Neither is ours
    to fix: changing another's directory, or one someone opened on purpose,
    would only hide the problem.
    """
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return None
    except NotADirectoryError:  # a file where a directory on its path should be: it cannot be created
        return NOT_A_DIRECTORY
    if not stat.S_ISDIR(st.st_mode):
        return NOT_A_DIRECTORY
    geteuid = getattr(os, "geteuid", None)  # POSIX only
    if geteuid is not None and st.st_uid != geteuid():
        return f"belongs to another user (uid {st.st_uid})"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        who = "every user" if mode & 0o002 else "its group"
        return f"is writable by {who} (mode {mode:04o}): make it private (chmod 700) or choose another"
    return None


def private_dir(directory: Path) -> None:
    """`directory` created 0700, and tightened to 0700 when it is ours and only readable by others (dumps and
    databases hold prompts). NotADirectoryError when something else has the name; PermissionError, naming why,
    when it is another user's or writable by others (`unsafe_dir`): left as it is."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    why = unsafe_dir(directory)
    if why == NOT_A_DIRECTORY:
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(directory))
    if why is not None:
        raise PermissionError(errno.EPERM, why, str(directory))
    if stat.S_IMODE(os.stat(directory).st_mode) != 0o700:
        os.chmod(directory, 0o700)

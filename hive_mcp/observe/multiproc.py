"""Metrics across `--workers N`: prometheus-client's multiprocess mode, its files in `<hive home>/metrics`.

Each worker writes its values to files there (the variable below must be set before prometheus-client is first
imported, so the parent sets it before it starts any worker, which inherit it); a scrape of any worker reads
every worker's files (`endpoint.exposition`). The directory is emptied at each start: values of a previous run
would otherwise be summed into this one's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
from pathlib import Path

from ..home import private_dir

__all__ = ["MULTIPROC_ENV", "share_between_workers", "worker_started"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def share_between_workers(home: Path) -> Path:
    """Make `home/metrics` (private, emptied) the multiprocess directory of this process and its children."""
    directory = home / "metrics"
    private_dir(directory)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def worker_started() -> None:
    """In a worker sharing the directory: its live gauges (calls in flight, tasks open) leave the sum when it
    exits, and those of every worker that died without exiting (SIGKILL, a crash: no exit hook ran) leave it now.

    Done here, as each worker starts, because uvicorn's supervisor has by then reaped the worker this one replaces
    (it kills and joins it before starting the next): its pid is gone, not a zombie. A scrape could not tell as
    well (a worker killed a moment ago is still a zombie until reaped), and scrapes are answered in two places
    (every worker's `/metrics`, the parent's `--metrics-port`)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    for pid in _live_gauge_pids(Path(directory)):
        if not _exists(pid):
            with contextlib.suppress(FileNotFoundError):  # a sibling started at the same time removed it first
                multiprocess.mark_process_dead(pid, directory)
    atexit.register(multiprocess.mark_process_dead, os.getpid())


def _live_gauge_pids(directory: Path) -> set[int]:
    """The pids with live-gauge files in `directory`: prometheus-client names them `gauge_live<mode>_<pid>.db`
    (livesum, liveall, livemin, livemax, livemostrecent), the files `mark_process_dead` removes."""
    found = (_LIVE_FILE.fullmatch(path.name) for path in directory.glob("gauge_live*_*.db"))
    return {int(match[1]) for match in found if match}


def _exists(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists, and is not ours to declare dead
        pass
    return True

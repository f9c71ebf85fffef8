"""Metrics across `--workers N`: prometheus-client's multiprocess mode, its files in `<hive home>/metrics`.

Each worker writes its values to files there (the variable below must be set before prometheus-client is first
imported, so the parent sets it before it starts any worker, which inherit it); a scrape of any worker reads
every worker's files (`endpoint.exposition`). The directory is emptied at each start: values of a previous run
would otherwise be summed into this one's.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from ..home import private_dir

__all__ = ["MULTIPROC_ENV", "share_between_workers", "worker_started"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_between_workers(home: Path) -> Path:
    """Make `home/metrics` (private, emptied) the multiprocess directory of this process and its children."""
    directory = home / "metrics"
    private_dir(directory)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def worker_started() -> None:
    """In a worker sharing the directory: its live gauges (calls in flight) leave the sum when it exits, a
    replaced worker's included."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    atexit.register(multiprocess.mark_process_dead, os.getpid())

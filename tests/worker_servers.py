"""`--workers 2` as a subprocess, each worker naming itself in its responses (`tests.worker_pid`): its
environment, the server, and the wait until every worker has loaded its provider."""

from __future__ import annotations

import time
from pathlib import Path

from harness.upstream import Upstream
from tests import worker_pid
from tests.servers import STARTUP_S, HttpServer, server_env


def workers_env(upstream: Upstream, dump_dir: Path) -> dict[str, str]:
    return worker_pid.env(server_env(upstream, dump_dir, api_key=True))


def two_worker_server(env: dict[str, str], workdir: Path, name: str) -> HttpServer:
    """`--workers 2`, each worker naming itself in its responses (`tests.worker_pid`)."""
    return HttpServer("http", env, workdir, name, args=["--workers", "2"], module=worker_pid.MODULE)


def wait_loaded(server: HttpServer, workers: int = 2, bound_s: float = STARTUP_S) -> None:
    """Until every worker has loaded litellm (a worker still importing it is slow to accept connections)."""
    deadline = time.monotonic() + bound_s
    while server.stderr().count(": provider loaded") < workers:
        assert server.proc.poll() is None, server.stderr()
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.1)  # polling a log file: there is no event to wait on

"""`--workers 2` as a subprocess, each worker naming itself in its responses (`tests.worker_pid`): its
environment, the server, and the wait until every worker has loaded its provider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from mcp import Client

from harness.upstream import Upstream
from tests import worker_pid
from tests.servers import STARTUP_S, HttpServer, Session, server_env, wait_exit
from tests.steering import Steer, steered_target

T = TypeVar("T")


def workers_env(upstream: Upstream, dump_dir: Path) -> dict[str, str]:
    return worker_pid.env(server_env(upstream, dump_dir, api_key=True))


def two_worker_server(env: dict[str, str], workdir: Path, name: str) -> HttpServer:
    """`--workers 2`, each worker naming itself in its responses (`tests.worker_pid`)."""
    return HttpServer("http", env, workdir, name, args=["--workers", "2"], module=worker_pid.MODULE)


def wait_loaded(server: HttpServer, workers: int = 2, bound_s: float = STARTUP_S) -> None:
    """Until every worker has loaded litellm (a worker still importing it is slow to accept connections)."""
    server.wait_loaded(workers, bound_s)


def run_until_exit(server: HttpServer, steer: Steer, go: Callable[[Client], Awaitable[T]]) -> tuple[T, int | None]:
    """What `go` returns, on a session reaching the workers through `steer` (it stops the server), and then the
    server's exit code (`wait_exit`: None when it did not exit in time)."""
    session = Session(steered_target(server.url, steer), "legacy")
    try:
        result = session.run(go, timeout=90)
        return result, wait_exit(server.proc, 30)
    finally:
        session.close()

"""`--workers N`: N processes serve one port, in uvicorn's own multi-process mode.

The parent binds the socket and supervises (uvicorn's `Multiprocess`: a worker
that dies is replaced; SIGTERM or Ctrl-C stops them all). It never builds a
server or imports litellm. Each worker is a fresh interpreter (multiprocessing's
spawn) that imports this module, reads the settings from its uvicorn config
(pickled to it, so no secret passes through the environment) and calls the
application factory `create_app`: one provider, store and server per worker,
litellm loaded once in the background while `initialize` is already answered.

Streamable HTTP is served stateless (`scaling.serves_stateless`): a request may
land on any worker. Each worker drains like a single process does: its
`Shutdown` begins when uvicorn's signal handler runs, and uvicorn's own graceful
timeout is the grace period plus `BACKSTOP_S`, never unbounded. Its spend ledger
is written and released as its application shuts down (`build_app`), and the
SIGTERM uvicorn raises again after that ends the worker as Ctrl-C does: exit
code 0, its exit hooks run (`WorkerConfig.__setstate__`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from .. import stopping
from ..net import host_for_url
from .app import BACKSTOP_S, build_app, log_access, log_dashboard
from ..asgi import MCP_PATH, Receive, Scope, Send
from .door import guard_connections
from .hosts import transport_security_settings
from .listen import bind
from .shutdown import Shutdown, let_event_streams_end

if TYPE_CHECKING:
    from ..llms.config import ModelsConfig
    from ..provider.deferred import DeferredProvider
    from ..settings import Settings

__all__ = ["FACTORY", "WorkerConfig", "create_app", "run_workers"]

logger = logging.getLogger("hive_mcp.http")

FACTORY = "hive_mcp.http.workers:create_app"

_spec: tuple[Settings, ModelsConfig | None] | None = None
"""In a worker: what `create_app` builds from (set by `WorkerConfig.load`)."""


class WorkerConfig(uvicorn.Config):
    """uvicorn's config, carrying our settings to each worker process (it is pickled to them)."""

    def __init__(self, settings: Settings, models: ModelsConfig | None, **kwargs: Any) -> None:
        super().__init__(FACTORY, factory=True, **kwargs)
        self.hive = (settings, models)

    def load(self) -> None:
        global _spec
        _spec = self.hive
        super().load()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled, in a worker process before its server starts: stop signals are `stopping`'s, as in the
        command's process (`_Worker` says when its server's own handlers are in place).

        uvicorn raises the exit signal again once its server has shut down, with the handler it found at start.
        A spawned process starts with SIGTERM's default, which would kill the worker there: exit by signal, its
        exit hooks (the metrics' live gauges, the file-count processes, the ledger's backstop) never run. With
        `stopping`'s, that signal is KeyboardInterrupt, which uvicorn's worker entry swallows, and a later one
        (the supervisor's SIGTERM after a Ctrl-C to the process group) is ignored while the worker exits, where it
        would print a traceback: the worker exits with code 0 and runs them.
        """
        self.__dict__.update(state)
        if threading.current_thread() is threading.main_thread():
            stopping.install()


def create_app() -> Any:
    """The application factory each worker calls: its server, in our HTTP layers, starting litellm's load."""
    from ..build import build
    from ..logs import configure_logging
    from ..observe.multiproc import worker_started

    assert _spec is not None, "create_app runs in a worker started by run_workers"
    settings, models = _spec
    # Read again here, not carried from the parent: reading them also names them (`name:token`) in this process.
    tokens = settings.auth_tokens()
    configure_logging(settings.log_level)
    worker_started()
    built = build(settings, models, tokens)
    built.provider.start(announce=f"worker {os.getpid()}: provider loaded")
    let_event_streams_end(False)
    app, shutdown = build_app(
        built.server, settings, tokens, transport_security_settings(settings), built.store, built.sources, built.tasks,
        built.spend, built.conversations,
    )
    logger.info("worker %d serving", os.getpid())
    return _Worker(app, shutdown, built.provider)


class _Worker:
    """The worker's outermost layer: starts `Shutdown` with uvicorn's own exit, and leaves once its application
    has shut down if the provider is still loading (`stopping.leave`), as a single server does."""

    def __init__(self, app: Any, shutdown: Shutdown, provider: DeferredProvider) -> None:
        self.app = app
        self.shutdown = shutdown
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await self.app(scope, receive, send)
            return
        stopping.serving()  # uvicorn's handlers are in place (installed before the lifespan starts)
        self._follow_exit_signals(asyncio.get_running_loop())
        await self.app(scope, receive, send)
        if not self.provider.loaded:  # shut down (the ledger written): the load is not waited for
            logger.info("worker %d stopped", os.getpid())
            stopping.leave()

    def _follow_exit_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Chain onto uvicorn's SIGTERM/SIGINT handlers (installed before the lifespan starts).

        uvicorn's handler only sets a flag its main loop polls; `Shutdown.begin`
        must run as that happens, so standing streams end and calls in flight get
        the grace period (what `run_http`'s Server subclass does in one process).
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def on_exit(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                previous(signum, frame)
                loop.call_soon_threadsafe(self.shutdown.begin)

            signal.signal(sig, on_exit)


def run_workers(settings: Settings, tokens: tuple[str, ...], models: ModelsConfig | None = None) -> None:
    """Bind the port and supervise `settings.workers` worker processes until SIGTERM or Ctrl-C."""
    from uvicorn.supervisors import Multiprocess

    config = WorkerConfig(
        settings,
        models,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,  # each worker logs through our stderr handler (create_app)
        log_level=settings.log_level.lower(),
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_s + BACKSTOP_S,
    )
    guard_connections(config, settings.header_timeout_s, settings.max_unauthenticated)
    sock, listeners = _listeners(settings.host, settings.port, config.backlog)
    if sock is None:
        sock = bind(settings.host, settings.port)
        listeners = [sock]
    logger.info(
        "serving MCP over stateless streamable HTTP at http://%s:%d%s with %d workers",
        host_for_url(settings.host), settings.port, MCP_PATH, settings.workers,
    )  # fmt: skip
    if models is not None:
        for group, keys in models.per_process_limits().items():
            logger.warning(
                "%s: %s counted per worker: with %d workers up to %d times as much goes through; a Redis in "
                "router_settings (redis_url, or redis_host and redis_port) shares the count",
                group, "/".join(keys), settings.workers, settings.workers,
            )  # fmt: skip
    log_dashboard(f"http://{host_for_url(settings.host)}:{settings.port}")
    log_access(settings, tokens, transport_security_settings(settings))
    try:
        Multiprocess(config, sockets=listeners).run()
    finally:
        sock.close()


def _listeners(host: str, port: int, backlog: int) -> tuple[socket.socket | None, list[Any]]:
    """The port held by the parent, and what each worker unpickles as its own listening socket.

    uvicorn shares one listening socket among its workers, and the first worker
    to wake drains the whole accept queue, so a burst of connections lands
    mostly on one worker. With SO_REUSEPORT each worker listens on a socket
    of its own and the kernel spreads new connections over them. The parent only
    binds (so a port in use fails at once, and no other user can take it): a
    socket that does not listen is given no connections. (None, []) where the
    platform has no SO_REUSEPORT: then the shared socket, as uvicorn does it.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        return None, []
    held = bind(host, port, reuse_port=True)
    return held, [_OwnListener(host, port, backlog)]


def _listening(host: str, port: int, backlog: int) -> socket.socket:
    """In a worker: its own socket on the shared port (unpickled from `_OwnListener`)."""
    sock = bind(host, port, reuse_port=True)
    sock.listen(backlog)
    return sock


class _OwnListener:
    """Stands for a socket in the list uvicorn passes to each worker; becomes that worker's own listener."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        self.args = (host, port, backlog)

    def __reduce__(self) -> tuple[Any, tuple[str, int, int]]:
        return _listening, self.args

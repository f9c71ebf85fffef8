"""`python -m tests.worker_pid ARGS`: hive-mcp as `python -m hive_mcp ARGS` would run it, with each
HTTP worker wrapped in a test layer: every response names the worker that answered it (WORKER_HEADER),
and a request naming a pid in WANT_HEADER that another worker accepted gets 503 at once (the test sends
it again on a new connection). How tests reach the worker they mean (`tests.steering`).

The wrapping is done the way uvicorn lets it: the workers' application factory (`FACTORY`) is this
module's `create_app`, which builds the worker as the package does and wraps it. The server's own code
carries no hook for it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hive_mcp.asgi import header, respond
from hive_mcp.http import workers
from harness.processes import ROOT

WORKER_HEADER = b"x-hive-mcp-worker"
WANT_HEADER = b"x-hive-mcp-want-worker"
MODULE = "tests.worker_pid"


def env(base: dict[str, str]) -> dict[str, str]:
    """`base` with this checkout on the path, so each worker (a fresh interpreter) imports this module."""
    return {**base, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), base.get("PYTHONPATH"))))}


NEVER_LOADS = "TEST_WORKER_PROVIDER_NEVER_LOADS"
"""Set (to anything) in a worker's environment: its provider's load starts and never ends, so "still loading" is
a fact the test controls."""


def create_app() -> Any:
    if os.environ.get(NEVER_LOADS):
        import threading

        from hive_mcp.provider.deferred import DeferredProvider

        DeferredProvider._run_load = lambda self: threading.Event().wait()  # type: ignore[method-assign]
    return PidTagged(workers.create_app())


class PidTagged:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            wanted = header(scope, WANT_HEADER)
            if wanted is not None and wanted != self.pid:
                await respond(send, 503, {"error": "another worker was asked for"}, [(WORKER_HEADER, self.pid)])
                return
            inner = send

            async def send(message: dict[str, Any]) -> None:  # noqa: F811 - the same send, tagged
                if message.get("type") == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), (WORKER_HEADER, self.pid)]}
                await inner(message)

        await self.app(scope, receive, send)


if __name__ == "__main__":
    workers.FACTORY = f"{MODULE}:create_app"
    from hive_mcp.cli import main

    sys.exit(main())

"""Stop signals (SIGTERM, and Ctrl-C's SIGINT) from the command's first statement to its exit: each one a clean
stop, exit code 0, no traceback.

* Starting (`install`, the command's first act): nothing serves and nothing is owed yet, so the process ends at
  once, in one line. KeyboardInterrupt raised there instead would land wherever the main thread is, the import
  system too, where Python drops it ("Exception ignored") and can leave a module lock held: the signal lost and
  the thread loading litellm waiting for ever on the lock.
* A command (`hive-mcp usage`, `dumps`, ...): the system's defaults again, so a command cut short never exits 0,
  which a script would read as done: SIGTERM kills it, Ctrl-C is KeyboardInterrupt (`EXIT_INTERRUPTED`).
* Serving: the transport's own handlers stop it (stdio's event loop, uvicorn); it calls `serving` once they are
  in place.
* The way out (a handler given back after serving, the signal uvicorn raises again once it has shut down):
  KeyboardInterrupt, which `serve` (an HTTP worker: uvicorn's worker entry) turns into a quiet exit; later ones
  are ignored.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from types import FrameType
from typing import NoReturn

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "commanding", "ignore", "install", "leave", "serving"]

EXIT_OK = 0
EXIT_INTERRUPTED = 128 + signal.SIGINT
"""A command stopped by Ctrl-C, as a shell reports one."""

logger = logging.getLogger("hive_mcp")
_serving = False


def install() -> None:
    """Stop signals end the process cleanly from now on: SIGTERM, and SIGINT unless the process was started with
    it ignored (a shell's background job). For the main thread only."""
    global _serving
    _serving = False
    signal.signal(signal.SIGTERM, _on_stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_stop)


def commanding() -> None:
    """What runs now is a command, not a server: the system's handling of both signals from now on."""
    if signal.getsignal(signal.SIGTERM) is _on_stop:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is _on_stop:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def serving() -> None:
    """The transport's own handlers are in place: a stop signal that reaches this module's handler from now on
    comes on the way out."""
    global _serving
    _serving = True


def _on_stop(signum: int, frame: FrameType | None) -> None:
    if not _serving:
        logger.info("%s before serving began: stopping", signal.Signals(signum).name)
        os._exit(EXIT_OK)
    # The way out: this signal ends what is left of serving; a later one (a process group's Ctrl-C, then the HTTP
    # supervisor's SIGTERM to its workers) would only land in the exit itself, as a traceback.
    ignore()
    raise KeyboardInterrupt


def ignore() -> None:
    """On the way out (litellm's exit hooks take a moment): a repeated SIGTERM or Ctrl-C would only turn a clean
    exit into a traceback or a kill."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def leave() -> NoReturn:
    """Exit (code 0) while the provider is still loading: the exit hooks run, the interpreter's teardown does not.

    Waiting for litellm's import would keep a client that only listed the tools waiting seconds (the SDK's stdio
    client then kills the server), and a teardown while a thread is inside an import can wait for ever for the
    import lock that thread keeps (the load's thread is no daemon: `provider.deferred`).
    """
    ignore()
    atexit._run_exitfuncs()  # logging's flush among them
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(EXIT_OK)

"""The listening ports, bound before anything is built or logged: a port that cannot be had is one line.

uvicorn binds only once its application has started, so a port in use showed as "serving MCP
at ...", "Application startup complete", then `[Errno 98]` among eleven lines and exit 3. The
metrics port (`--metrics-port`) is bound the same way, with the same line naming its own setting.
"""

from __future__ import annotations

import errno
import socket

from ..net import host_for_url

__all__ = ["MAIN_PORT", "METRICS_PORT", "PortError", "bind"]

MAIN_PORT = "--port (HIVE_MCP_PORT)"
METRICS_PORT = "--metrics-port (HIVE_MCP_METRICS_PORT)"
"""The setting a message about a port names, so that the person reading it knows which to change."""


class PortError(Exception):
    """The port cannot be bound; the message is one line naming the port and the host."""


def bind(host: str, port: int, *, reuse_port: bool = False, setting: str = MAIN_PORT) -> socket.socket:
    """A socket bound to `host:port` (not yet listening), as uvicorn binds it: SO_REUSEADDR, and with
    `reuse_port` SO_REUSEPORT too (workers that each listen on the port). Raises PortError, naming
    `setting` as the way to choose another port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise PortError(_why(exc, host, port, setting)) from None
    sock.set_inheritable(True)
    return sock


def _why(exc: OSError, host: str, port: int, setting: str) -> str:
    where = f"port {port} on {host_for_url(host)}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is in use: stop what holds it or choose another with {setting}"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges): choose another with {setting}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host} is not an address of this machine: check --host (HIVE_MCP_HOST)"
    return f"{where}: cannot bind: {exc.strerror or exc}"

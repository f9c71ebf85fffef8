"""The HTTP surface (`--transport http|sse`): what stands between the network and the SDK's app.

`asgi` (shapes, paths, a JSON reply), `hosts` (Host/Origin: DNS-rebinding
protection), `guard` (/healthz, bearer tokens, the body limit), `shutdown` (a
grace period for calls in flight), `routing` (a session's messages to their
event streams) and `app` (the layers in order, and uvicorn).
"""

from __future__ import annotations

from .app import build_app, run_http
from .asgi import HEALTH_PATH
from .guard import HttpGuard
from .hosts import transport_security_settings
from .shutdown import Shutdown

__all__ = ["HEALTH_PATH", "HttpGuard", "Shutdown", "build_app", "run_http", "transport_security_settings"]

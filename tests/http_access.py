"""Reaching a test server over plain HTTP (httpx, no MCP client), and the bearer tokens its http server is
given: shared by the tests of the HTTP surface's guards and of its exposure to the network."""

from __future__ import annotations

import httpx

from tests.servers import HttpServer

HTTP_TOKENS = ("tok-http-first-0123456789abcdef", "tok-http-second-0123456789abcdef")
TRANSPORTS = ["http", "sse"]
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
IO_S = 15.0  # one HTTP exchange, with room for a loaded machine


def raw(server: HttpServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, trust_env=False, timeout=IO_S)

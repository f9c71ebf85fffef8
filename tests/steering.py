"""Sending each MCP request to the process a test means: new connections, and the workers' test hook.

`Steer` is an httpx transport that opens a new connection for every request
(so the workers sharing a socket take turns) and, with `want` set, names that
worker's pid in the request: another worker answers 503 at once (the server run by
`tests.worker_pid`) and the request is sent again. `Seen` records
which worker answered which JSON-RPC method.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client

from tests.worker_pid import WANT_HEADER, WORKER_HEADER

TRIES = 200


class Seen:
    """Which worker answered which JSON-RPC method, from the response header the test hook adds."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, int]] = []

    def record(self, request: httpx2.Request, response: httpx2.Response) -> None:
        pid = response.headers.get(WORKER_HEADER.decode())
        if pid is None or request.method != "POST" or response.status_code == 503:
            return
        try:
            body = json.loads(request.content)
        except ValueError:
            return
        method = body.get("method", "?") if isinstance(body, dict) else "batch"
        self.answers.append((method, int(pid)))

    def pids(self, method: str | None = None) -> set[int]:
        return {pid for m, pid in self.answers if method is None or m == method}


class Steer(httpx2.AsyncBaseTransport):
    """New connection per request; with `want`, only that worker's answer is taken."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.want: int | None = None
        self._inner = httpx2.AsyncHTTPTransport(limits=httpx2.Limits(max_keepalive_connections=0))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        want = self.want
        if want is not None:
            request.headers[WANT_HEADER.decode()] = str(want)
        for _ in range(TRIES):
            response = await self._inner.handle_async_request(request)
            if want is None or response.status_code != 503 or response.headers.get(WORKER_HEADER.decode()) == str(want):
                break
            await response.aclose()  # another worker: ask again on a new connection
        self.seen.record(request, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def steered_target(url: str, steer: Steer) -> Callable[[], Any]:
    """A streamable HTTP client transport sending through `steer`."""

    @asynccontextmanager
    async def target() -> AsyncIterator[Any]:
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(transport=steer, timeout=timeout) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams

    return target


def worker_pids(log: str) -> list[int]:
    """The pids of the workers that said they loaded the provider, in order."""
    return [int(p) for p in re.findall(r"worker (\d+): provider loaded", log)]

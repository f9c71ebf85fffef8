"""A client that gives up on a call over streamable HTTP sends `notifications/cancelled`, then DELETEs its session.
When the DELETE ends the session between the server's 202 for the notification and its handing the notification
on, the SDK logs `Error handling POST request` with a traceback of the closed stream. A client closing its session
is normal: the log says so in one DEBUG line, no traceback, and nothing at INFO.

The order is made, not raced for: the served app's session (as `serve` builds it) is given the notification's POST
with an ASGI `send` that, once the 202's body is passed on, ends the session as the DELETE does (the transport's
`terminate`). The server's own logging (`configure_logging`) writes the log, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import ROOT, child_env

DRIVE = """
import json, sys, anyio
from mcp.server.mcpserver import MCPServer
from hive_mcp.http.app import build_app
from hive_mcp.logs import configure_logging
from hive_mcp.settings import load_settings

configure_logging(sys.argv[1])
workdir = sys.argv[2]

async def main():
    server = MCPServer("ends")
    settings = load_settings({"transport": "http", "dump_dir": workdir}, environ={}, cwd=workdir, export=False)
    build_app(server, settings, ())
    transport = server.session_manager._admit_session(None)
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}
    headers = [
        (b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-session-id", transport.mcp_session_id.encode()), (b"mcp-protocol-version", b"2025-06-18"),
    ]
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers, "query_string": b"", "root_path": ""}
    statuses = []

    async def receive():
        return {"type": "http.request", "body": json.dumps(note).encode(), "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))
        elif not statuses[1:]:  # the 202 is on its way to the client: its DELETE lands now
            await transport.terminate()

    async with transport.connect():
        try:
            await transport.handle_request(scope, receive, send)
        except Exception:  # the SDK raises the closed stream on to the server's layers; the log is the test
            pass
    print(json.dumps(statuses))

anyio.run(main)
"""


def drive(level: str, workdir: Path) -> tuple[list[int], str]:
    """The statuses the POST was answered with, and the log, at `level`."""
    done = subprocess.run(
        [sys.executable, "-c", DRIVE, level, str(workdir)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=child_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [int(s) for s in done.stdout.strip().strip("[]").split(",")], done.stderr


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_a_notification_whose_session_its_client_ends_after_the_202_is_one_debug_line(
    level: str, tmp_path: Path
) -> None:
    statuses, log = drive(level, tmp_path)
    assert statuses[0] == 202, statuses  # the order the test means: the 202 first, then the session ended
    assert "Traceback" not in log and "ClosedResourceError" not in log, log
    assert " ERROR " not in log and " WARNING " not in log, log
    said = [line for line in log.splitlines() if "session ended" in line]
    if level == "DEBUG":
        assert len(said) == 1 and " DEBUG mcp.server.streamable_http: " in said[0], log
    else:
        assert said == [], log

"""The official MCP conformance suite's tasks scenarios, run by the suite itself against the suite's fixture
tools registered on hive-mcp's own task engine (tests/tasks_conformance_server.py)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import child_env, free_port
from tests.node_tools import node_binary, package

SCENARIOS = [
    "tasks-lifecycle", "tasks-capability-negotiation", "tasks-wire-fields", "tasks-request-state-removal",
    "tasks-mrtr-input", "tasks-request-headers", "tasks-dispatch-and-envelope", "tasks-status-notifications",
    "tasks-required-task-error", "tasks-mrtr-composition",
]  # fmt: skip
"""Every tasks scenario of `conformance list` (status notifications: the suite itself skips it for now)."""
STARTUP_S = 60.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    db = tmp_path_factory.mktemp("conformance") / "tasks.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tasks_conformance_server", str(port), str(db)],
        cwd=Path(__file__).parent.parent, env=child_env(), stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:  # ready once it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the conformance server did not start: {proc.stderr.read()!r}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_tasks_scenario(served: str, scenario: str) -> None:
    suite = package("@modelcontextprotocol/conformance") / "dist" / "index.js"
    node = node_binary()
    run = subprocess.run(
        [node, str(suite), "server", "--url", served, "--scenario", scenario],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    plain = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    summary = re.search(r"Passed: (\d+)/(\d+), (\d+) failed", plain)
    assert summary is not None, plain[-3000:]
    failed = [line for line in plain.splitlines() if "FAILURE" in line]
    assert summary.group(3) == "0" and not failed, "\n".join(failed) or plain[-3000:]

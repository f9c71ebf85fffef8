"""SIGTERM and Ctrl-C while `python -m hive_mcp` is still starting, against the real process, stdio and HTTP.

From the command's first statement on, either one is a clean stop, as it is while serving: exit code 0 and no
traceback. Two moments are taken, each one a state of the process seen from outside, never a sleep: while the
settings are loading (pydantic's compiled core, which they import, is mapped into the process: a second or more
before the server is built on a small machine), and once its first log line is out (it says what it is about
to serve). The interpreter's own start-up, before any code of the command runs, is left to the system.
"""

from __future__ import annotations

import os
import socket
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.processes import free_port
from harness.upstream import Upstream
from tests.servers import server_env, wait_exit

WAIT_S = 60.0
LOADING = "pydantic_core"
"""A shared object the settings load (through pydantic) before anything else the server needs."""


def start(transport: str, upstream: Upstream, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """The server as a process (stdio: its stdin a pipe kept open), and the file its stderr goes to."""
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    args = [] if transport == "stdio" else ["--transport", transport, "--port", str(free_port())]
    err = tmp_path / "stderr.log"
    with open(err, "wb") as errlog:
        proc = subprocess.Popen([sys.executable, "-m", "hive_mcp", *args], env=env, cwd=tmp_path,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errlog)  # fmt: skip
    return proc, err


def until(proc: subprocess.Popen[bytes], holds, what: str) -> None:
    """Until `holds()` (checked as fast as it can be: the moment must not pass), failing if the process ends or
    `WAIT_S` passes first."""
    deadline = time.monotonic() + WAIT_S
    while not holds():
        assert proc.poll() is None, f"the process ended before {what}: {proc.returncode}"
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"


def mapped(proc: subprocess.Popen[bytes], name: str) -> bool:
    try:
        return name in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps")
@pytest.mark.parametrize("moment", ["loading", "first line"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_stop_signal_while_hive_mcp_starts_exits_0_without_a_traceback(
    upstream: Upstream, tmp_path: Path, transport: str, signum: signal.Signals, moment: str
) -> None:
    proc, err = start(transport, upstream, tmp_path)
    try:
        if moment == "loading":
            until(proc, lambda: mapped(proc, LOADING), "settings loading")
        else:
            until(proc, lambda: b"\n" in err.read_bytes(), "first log line")
        proc.send_signal(signum)
        rc = wait_exit(proc, WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()
    log = err.read_text(errors="replace")
    assert rc == 0, (rc, log)
    assert "Traceback" not in log, log


def test_ctrl_c_to_the_process_group_of_two_workers_still_loading_exits_0_without_a_traceback(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Ctrl-C in a terminal (SIGINT to the whole process group) as soon as both workers serve, while each still
    loads litellm. Each worker stops on its own SIGINT, then waits at its exit for that load; the supervisor's
    SIGTERM reaches it there, where it printed a KeyboardInterrupt traceback."""
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    err = tmp_path / "stderr.log"
    with open(err, "wb") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hive_mcp", "--transport", "http", "--port", str(free_port()), "--workers", "2"],
            env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
            start_new_session=True,  # a group of its own, as a terminal gives it
        )  # fmt: skip
    try:
        until(proc, lambda: err.read_bytes().count(b"Application startup complete") == 2, "both workers serving")
        os.killpg(proc.pid, signal.SIGINT)
        rc = wait_exit(proc, WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = err.read_text(errors="replace")
    assert rc == 0, (rc, log)
    assert "Traceback" not in log, log


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])  # fmt: skip
def test_a_command_stopped_by_a_signal_does_not_say_it_succeeded(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    """`hive-mcp usage` stopped while it waits on its state store (a port that takes the connection and never
    answers): a command cut short has not done its work, so it exits as the signal asks (killed by SIGTERM, 130
    for Ctrl-C, in one line at most), never 0, which a script would read as done."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        env = {**os.environ, "HIVE_MCP_HOME": str(tmp_path),
               "HIVE_MCP_STATE_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}"}  # fmt: skip
        err = tmp_path / "stderr.log"
        with open(err, "wb") as errlog:
            proc = subprocess.Popen([sys.executable, "-m", "hive_mcp", "usage"], env=env, cwd=tmp_path,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog)  # fmt: skip
        try:
            silent.settimeout(WAIT_S)
            asked, _ = silent.accept()  # the command's first question to its store: it waits for the answer
            proc.send_signal(signum)
            rc = wait_exit(proc, WAIT_S)
            asked.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = err.read_text(errors="replace")
    assert rc == code, (rc, log)
    assert "Traceback" not in log, log

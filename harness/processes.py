"""What the subprocess tests and the benchmarks share: a clean environment for a child
Python, and a free port. No pytest here: `bench/` imports it too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_VERSION = "2025-11-25"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}  # fmt: skip
"""A raw client's first request (id 1), as a test writes it to a server over stdio or HTTP."""


def child_env(**extra: str) -> dict[str, str]:
    """This machine's environment without real keys, proxies or hive settings, plus `extra`.

    PYTHONPATH puts this checkout first, so the child runs the working tree's code.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HIVE_MCP_") and not k.endswith("_API_KEY") and not k.lower().endswith("_proxy")
    }
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        NO_PROXY="127.0.0.1,localhost",
        **extra,
    )
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ask_stdio(
    command: list[str], lines: list[str], wanted: set[int], *, env: dict[str, str], cwd: Path, timeout: float,
    every: list[dict[str, Any]] | None = None,
) -> tuple[dict[int, dict[str, Any]], int, str]:
    """Run an MCP stdio server, write `lines` to it, and read until the replies to `wanted` ids have come.

    Only then is stdin closed: a server may drop requests still in flight at the end of its input (the
    SDK cancels their handlers, their caller being gone). Returns (replies by id, exit code, stderr).
    A server that hangs is killed after `timeout` seconds. Every stdout line must be a JSON-RPC message;
    `every`, when given, gets each one read, in order (replies by id keep only the last of an id: many
    errors answer to id null).
    """
    replies: dict[int, dict[str, Any]] = {}
    with subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, bufsize=1) as proc:  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        deadline = threading.Timer(timeout, proc.kill)  # ends the read loop below if the server hangs
        deadline.start()
        try:
            proc.stdin.write("".join(line + "\n" for line in lines))
            proc.stdin.flush()
            for line in proc.stdout:
                message = json.loads(line)
                if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                    raise AssertionError(f"stdout carries a line that is not a JSON-RPC message: {line!r}")
                if every is not None:
                    every.append(message)
                if "id" in message:
                    replies[message["id"]] = message
                if wanted <= set(replies):
                    break
            proc.stdin.close()
            code = proc.wait(timeout=timeout)
            stderr = proc.stderr.read()
        finally:
            deadline.cancel()
    return replies, code, stderr

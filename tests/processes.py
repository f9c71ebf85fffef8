"""What the subprocess tests and the benchmarks share: a clean environment for a child
Python, and a free port. No pytest here: `bench/` imports it too.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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

"""`python -m hive_mcp --config` over stdio with the SDK's real client, as the tests of a models config run
it: its deployments' key in DEP_KEY (a config names it `os.environ/DEP_KEY`), its stderr in a file."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mcp.client.stdio import StdioServerParameters, stdio_client

from harness.processes import child_env
from tests.servers import Session

DEP_KEY = "sk-routing-e2e-0123456789SECRET"


def env_for(dump_dir: Path) -> dict[str, str]:
    return child_env(
        PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1", DEP_KEY=DEP_KEY, HIVE_MCP_DUMP_DIR=str(dump_dir),
        LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true",
    )  # litellm's Redis circuit breaker as hive-mcp configures it: sharing resumes within 5 s


def stdio_session(config: Path, workdir: Path, name: str) -> tuple[Session, Path, IO[str]]:
    errlog_path = workdir / f"{name}.stderr.log"
    errlog = open(errlog_path, "w")  # noqa: SIM115 - closed by the test
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hive_mcp", "--config", str(config)],
        env=env_for(workdir / f"{name}-dumps"), cwd=str(workdir),
    )
    target: Callable[[], Any] = lambda: stdio_client(params, errlog=errlog)  # noqa: E731
    return Session(target, "auto", transport="stdio", read_stderr=errlog_path.read_text), errlog_path, errlog

"""The MCP-layer tests' in-process server (`make_server`): a plugin of `tests/conftest.py`, so the fixture
reaches every test module that builds its servers on the test's provider and dump store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from tests.clients import mcp_server


@pytest.fixture
def make_server(provider: Any, store: DumpStore) -> Callable[..., MCPServer]:
    """A factory of servers on `provider` and `store`: `make_server(limits, **build_server's options)`."""

    def make(limits: Limits | None = None, **kwargs: Any) -> MCPServer:
        return mcp_server(provider, store, limits=limits, **kwargs)

    return make

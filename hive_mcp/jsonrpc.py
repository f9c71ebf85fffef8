"""JSON-RPC error codes hive-mcp sends beside the SDK's own. A leaf: the transports and the task engine read
them without importing the MCP layer."""

from __future__ import annotations

__all__ = ["SHUTDOWN_ERROR_CODE"]

SHUTDOWN_ERROR_CODE = -32000
"""JSON-RPC's "server error" range: what a call or a task gets when this instance shuts down under it."""

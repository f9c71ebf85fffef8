"""What `tools/list` may cost every attached client, and how one tool's definition is measured against it:
the budget of each tool beyond today's three, and of every tool together."""

from __future__ import annotations

import json

import mcp_types as types

TODAYS_TOOLS = {"complete", "stream_complete", "list_failed_requests"}

NEW_TOOL_BUDGET = 1536
"""Each tool added after these three."""

TOTAL_BUDGET = 11 * 1024
"""Every tool together: what `tools/list` puts in every attached client's context."""


def definition_size(tool: types.Tool) -> int:
    """The bytes one tool's definition costs, as `tools/list` carries it."""
    return len(json.dumps(tool.model_dump(by_alias=True, exclude_none=True)))

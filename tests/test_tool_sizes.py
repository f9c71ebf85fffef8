"""What `tools/list` costs every attached client: the tool definitions stay small, and keep every field.

Sizes are measured as the SDK's real Client receives the definitions (in-process,
both protocol eras): `json.dumps` of each tool's `model_dump(by_alias=True,
exclude_none=True)`. A byte count is deterministic, not a timing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from hive_mcp.results.sqlite_store import SQLiteResults
from hive_mcp.mcp import ChatMessage, CompleteArgs, FailedRequestPage, ListFailedRequestsArgs
from hive_mcp.mcp.results import CompletionAnswer
from hive_mcp.mcp import StreamArgs, ToolSpec
from hive_mcp.mcp.args import ListConversationsArgs
from hive_mcp.mcp.conversation_views import ConversationPage
from tests.clients import connect, mcp_server
from tests.tool_budgets import NEW_TOOL_BUDGET, TODAYS_TOOLS, TOTAL_BUDGET, definition_size


def over_budget(tools: list[types.Tool]) -> dict[str, int]:
    """Every tool beyond today's three whose definition is over NEW_TOOL_BUDGET, with its size."""
    sizes = {t.name: definition_size(t) for t in tools if t.name not in TODAYS_TOOLS}
    return {name: size for name, size in sizes.items() if size > NEW_TOOL_BUDGET}


async def listed(server: MCPServer, mode: str) -> dict[str, types.Tool]:
    async with connect(server, mode) as c:
        return {t.name: t for t in (await c.list_tools()).tools}


@pytest.fixture
def server(provider: Any, store: DumpStore, tmp_path: Path) -> MCPServer:
    conversations = SQLiteStore(tmp_path / "hive-mcp.sqlite3")  # every tool, list_conversations too
    results = SQLiteResults(tmp_path / "results.sqlite3")  # and read_result
    return mcp_server(provider, store, conversations=conversations, results=results)


async def test_the_tools_fit_the_budget(server: MCPServer, mode: str) -> None:
    tools = await listed(server, mode)
    sizes = {name: definition_size(t) for name, t in tools.items()}
    assert {"list_models", "dashboard", "list_conversations", "read_result"} <= set(sizes)
    assert not over_budget(list(tools.values())), over_budget(list(tools.values()))
    assert sum(sizes.values()) <= TOTAL_BUDGET, sizes


def test_a_new_tool_over_its_budget_is_caught() -> None:
    wordy = types.Tool(name="wordy", description="x" * NEW_TOOL_BUDGET, input_schema={"type": "object"})
    terse = types.Tool(name="terse", description="Small.", input_schema={"type": "object"})
    assert set(over_budget([wordy, terse])) == {"wordy"}


def _walk(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object under `node`, with where it is."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            if key in ("properties", "$defs") and isinstance(value, dict):
                for name, sub in value.items():
                    out.extend(_walk(sub, f"{path}.{name}"))
            elif isinstance(value, (dict, list)):
                out.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out.extend(_walk(item, f"{path}[{i}]"))
    return out


async def test_schemas_carry_no_padding(server: MCPServer, mode: str) -> None:
    for tool in (await listed(server, mode)).values():
        assert "\n" not in tool.description and "  " not in (tool.description or ""), tool.description
        for schema in (tool.input_schema, tool.output_schema or {}):
            for where, node in _walk(schema):
                assert "title" not in node or not isinstance(node["title"], str), (tool.name, where)
                assert "\n" not in str(node.get("description", "")), (tool.name, where)
        for where, node in _walk(tool.input_schema):
            arms = node.get("anyOf", [])
            assert {"type": "null"} not in arms, (tool.name, where, "an optional field is its plain type")


async def test_no_field_is_lost(server: MCPServer, mode: str) -> None:
    tools = await listed(server, mode)
    for name, args in (("complete", CompleteArgs), ("stream_complete", StreamArgs)):
        schema = tools[name].input_schema
        assert set(schema["properties"]) == set(args.model_fields), name
        assert schema["additionalProperties"] is False  # unknown arguments are refused
        message = schema["properties"]["messages"]["items"]
        assert set(message["properties"]) == set(ChatMessage.model_fields) and message["required"] == ["role"]
        assert set(message["properties"]["role"]["enum"]) == {"system", "developer", "user", "assistant", "tool"}
        spec = schema["properties"]["tools"]["items"]
        assert set(spec["properties"]) == set(ToolSpec.model_fields) and spec["required"] == ["name"]
        assert spec["properties"]["name"]["pattern"] and spec["additionalProperties"] is False
        bounds = schema["properties"]
        assert (bounds["temperature"]["minimum"], bounds["temperature"]["maximum"]) == (0, 2)
        assert (bounds["max_retries"]["minimum"], bounds["max_retries"]["maximum"]) == (0, 10)
        assert bounds["max_tokens"]["exclusiveMinimum"] == 0 and bounds["deadline_s"]["exclusiveMinimum"] == 0
        output = tools[name].output_schema
        # Structured content is the answer and what an agent acts on; the bookkeeping is in _meta.
        assert output is not None and set(output["properties"]) == set(CompletionAnswer.model_fields)
        assert output["properties"]["conversation_id"]["type"] == "string"  # absent when unset, never null
    listing = tools["list_failed_requests"]
    assert set(listing.input_schema["properties"]) == set(ListFailedRequestsArgs.model_fields)
    limit = listing.input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 20)
    assert listing.output_schema is not None
    assert set(listing.output_schema["properties"]) == set(FailedRequestPage.model_fields)
    conversations = tools["list_conversations"]
    assert set(conversations.input_schema["properties"]) == set(ListConversationsArgs.model_fields)
    assert conversations.input_schema["additionalProperties"] is False
    assert conversations.output_schema is not None
    assert set(conversations.output_schema["properties"]) == set(ConversationPage.model_fields)
    for name in ("complete", "stream_complete"):
        props = tools[name].input_schema["properties"]
        # What each conversation field does, in words an agent can act on: where the id comes from,
        # what a fork leaves alone, and that a system prompt is not kept.
        assert props["fork"]["type"] == "boolean" and "copy" in props["fork"]["description"]
        assert "earlier result" in props["conversation_id"]["description"]
        assert "this call only" in props["system"]["description"].lower()
        models = props["models"]  # a call to several models at once: 2 to 8 of them
        assert (models["type"], models["minItems"], models["maxItems"]) == ("array", 2, 8)
        assert props["judge"]["type"] == props["judge_prompt"]["type"] == "string"
    assert {"rate_limit", "auth"} <= set(listing.input_schema["properties"]["error_type"]["enum"])
    assert "7d" in listing.input_schema["properties"]["since"]["description"]


async def test_files_and_fit_are_published_as_short_as_they_are_checked(server: MCPServer, mode: str) -> None:
    tools = await listed(server, mode)
    for name in ("complete", "stream_complete"):
        props = tools[name].input_schema["properties"]
        assert props["files"]["type"] == "array" and props["files"]["items"] == {"type": "string"}
        assert "glob" in props["files"]["description"].lower()
        assert props["fit"] == {"enum": ["refuse", "truncate"]}

"""The settings of `files` and of the tools offered: HIVE_MCP_FILE_ROOTS (environment and config.yaml),
the size limits, HIVE_MCP_TOOLS (through the SDK's real client, in process and as `hive-mcp` over stdio)."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from harness.processes import INITIALIZE, ask_stdio, child_env
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.results.sqlite_store import SQLiteResults
from hive_mcp.defaults import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES_BYTES, MIB
from hive_mcp.files import FileLimits, Root
from hive_mcp.serve import load_models
from hive_mcp.settings import SettingsError, load_settings
from hive_mcp.settings.fields import ToolName
from tests.clients import connect, mcp_server

CONFIG = """
model_list:
  - model_name: fast
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:9/v1", api_key: sk-test-0123456789abcdef}
"""


def settings(tmp_path: Path, environ: dict[str, str], **flags: Any) -> Any:
    return load_settings(flags, environ=environ, cwd=tmp_path, export=False)


def test_file_roots_from_the_environment_with_callers(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "docs").mkdir()
    value = f"{tmp_path / 'repo'}=alice,bob{os.pathsep}{tmp_path / 'docs'}"
    s = settings(tmp_path, {"HIVE_MCP_FILE_ROOTS": value})
    assert s.file_roots == (Root(tmp_path / "repo", frozenset({"alice", "bob"})), Root(tmp_path / "docs"))
    assert pickle.loads(pickle.dumps(s)) == s  # as HTTP workers receive the settings
    assert settings(tmp_path, {"HIVE_MCP_FILE_ROOTS": "none"}).file_roots == ()
    assert settings(tmp_path, {}).file_roots is None  # unset: the transport decides


def test_a_bad_file_root_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        settings(tmp_path, {"HIVE_MCP_FILE_ROOTS": str(tmp_path / "missing")})
    line = str(info.value)
    assert line.startswith("HIVE_MCP_FILE_ROOTS") and "not a directory" in line and "\n" not in line


def test_file_roots_in_the_config_yaml_section(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + f"hive_mcp:\n  file_roots:\n    - {tmp_path / 'repo'}=alice\n    - {tmp_path}\n")
    configured, _ = load_models(settings(tmp_path, {}, config=str(path)), environ={})
    assert configured.file_roots == (Root(tmp_path / "repo", frozenset({"alice"})), Root(tmp_path))
    path.write_text(CONFIG + f"hive_mcp:\n  file_roots:\n    {tmp_path / 'repo'}: [alice, bob]\n")
    configured, _ = load_models(settings(tmp_path, {}, config=str(path)), environ={})
    assert configured.file_roots == (Root(tmp_path / "repo", frozenset({"alice", "bob"})),)


def test_the_size_limits_are_settings_with_the_declared_defaults(tmp_path: Path) -> None:
    s = settings(tmp_path, {})
    assert (s.max_file_bytes, s.max_files_bytes) == (DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES_BYTES) == (MIB, 20 * MIB)
    assert FileLimits() == FileLimits(s.max_file_bytes, s.max_files_bytes)
    small = settings(tmp_path, {"HIVE_MCP_MAX_FILE_BYTES": "1000", "HIVE_MCP_MAX_FILES_BYTES": "5000"})
    assert (small.max_file_bytes, small.max_files_bytes) == (1000, 5000)


# -- HIVE_MCP_TOOLS -----------------------------------------------------------------------------


def test_tools_setting_defaults_to_all_and_names_tools(tmp_path: Path) -> None:
    assert settings(tmp_path, {}).tools == ()
    assert settings(tmp_path, {"HIVE_MCP_TOOLS": "complete, list_models"}).tools == ("complete", "list_models")


def test_an_unknown_tool_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        settings(tmp_path, {"HIVE_MCP_TOOLS": "complete,compleet"})
    line = str(info.value)
    assert line.startswith("HIVE_MCP_TOOLS") and "compleet" in line and "\n" not in line


async def test_the_setting_names_every_tool_the_server_can_offer(provider: Any, store: Any, tmp_path: Path) -> None:
    server = mcp_server(
        provider, store, conversations=SQLiteStore(tmp_path / "c.sqlite3"),
        results=SQLiteResults(tmp_path / "results.sqlite3"),
    )  # fmt: skip  # every tool there is: list_conversations and read_result too
    async with connect(server, "legacy") as c:
        offered = {t.name for t in (await c.list_tools()).tools}
    assert offered == set(get_args(ToolName))


async def test_only_the_tools_named_are_offered(provider: Any, store: Any, tmp_path: Path, mode: str) -> None:
    server = mcp_server(
        provider, store, conversations=SQLiteStore(tmp_path / "c.sqlite3"),
        offered=("stream_complete", "list_conversations"),
    )  # fmt: skip
    async with connect(server, mode) as c:
        assert sorted(t.name for t in (await c.list_tools()).tools) == ["list_conversations", "stream_complete"]
        with pytest.raises(MCPError) as refused:  # a tool not offered is one the server does not have
            await c.call_tool("complete", {"prompt": "hi"})
    assert refused.value.code == INVALID_PARAMS and str(refused.value.error.message) == "Unknown tool: 'complete'"


def test_hive_mcp_over_stdio_offers_only_the_tools_named(tmp_path: Path) -> None:
    lines = [json.dumps(INITIALIZE), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
             json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})]  # fmt: skip
    env = child_env(HIVE_MCP_TOOLS="complete,list_models", HIVE_MCP_DUMP_DIR=str(tmp_path / "d"),
                    HIVE_HOME=str(tmp_path / "h"))  # fmt: skip
    replies, _, stderr = ask_stdio([sys.executable, "-m", "hive_mcp"], lines, {1, 2}, env=env, cwd=tmp_path, timeout=60)
    assert 2 in replies, stderr
    assert sorted(t["name"] for t in replies[2]["result"]["tools"]) == ["complete", "list_models"]


def test_hive_mcp_with_an_unknown_tool_stops_with_one_line(tmp_path: Path) -> None:
    import subprocess

    env = child_env(HIVE_MCP_TOOLS="complete,dashbord", HIVE_HOME=str(tmp_path / "h"))
    proc = subprocess.run([sys.executable, "-m", "hive_mcp"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "HIVE_MCP_TOOLS" in lines[0] and "dashbord" in lines[0], proc.stderr


# -- the arguments ------------------------------------------------------------------------------


def test_files_and_fit_are_arguments_of_both_completion_tools() -> None:
    from hive_mcp.mcp.args import CompleteArgs, StreamArgs

    for model in (CompleteArgs, StreamArgs):
        args = model.model_validate({"prompt": "review", "files": ["src/**/*.py", "README.md"], "fit": "truncate"})
        assert args.files == ["src/**/*.py", "README.md"] and args.fit == "truncate"
        assert model.model_validate({"prompt": "x"}).files is None
        assert model.model_validate({"prompt": "x", "files": '["a.py"]'}).files == ["a.py"]  # JSON text, as some send


@pytest.mark.parametrize("arguments, words", [
    ({"files": "src/*.py"}, "files: must be a list of paths or globs"),
    ({"files": ["a.py", ""]}, "files[1]"),
    ({"files": ["a.py", 3]}, "files[1]"),
    ({"files": ["a.py"], "fit": "squeeze"}, "fit"),
    ({"fit": "truncate"}, "fit: only with files"),
])  # fmt: skip
def test_bad_files_arguments_are_one_line_naming_the_field(arguments: dict[str, Any], words: str) -> None:
    from pydantic import ValidationError

    from hive_mcp.mcp.args import CompleteArgs
    from hive_mcp.mcp.errors import describe_validation

    with pytest.raises(ValidationError) as info:
        CompleteArgs.model_validate({"prompt": "x", **arguments})
    line = describe_validation(info.value)
    assert words in line and "\n" not in line, line

"""The README's first call works as written.

The Quick start's Inspector command is read from the README: its server path,
its `-e` settings, its tool and its arguments. The same call is made with the
SDK's stdio client (the Inspector wants Node and the npm registry), with the
README's `HIVE_MCP_API_BASE` pointed at the scripted upstream: the reply comes
back, and the upstream got the README's model and prompt.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from harness.processes import ROOT, child_env
from tests.servers import Session
from tests.clients import text_of
from harness.upstream import Reply, Upstream

INSPECTOR = "npx @modelcontextprotocol/inspector --cli"


def readme_call() -> list[str]:
    """The README's Inspector command, as words (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"^ *({re.escape(INSPECTOR)}.*?)(?<!\\)$", text, flags=re.M | re.S)
    assert found, f"the README shows no `{INSPECTOR}` call"
    return shlex.split(found[1].replace("\\\n", " "))


def parse(words: list[str]) -> tuple[str, dict[str, str], str, dict[str, Any]]:
    """(server command, its environment, tool name, tool arguments) of an Inspector CLI command."""
    rest = words[len(INSPECTOR.split()) :]
    server, env, tool, args = rest[0], {}, "", {}
    pairs = iter(rest[1:])
    for flag in pairs:
        value = next(pairs)
        if flag == "-e":
            key, _, env[key] = value.partition("=")
        elif flag == "--tool-name":
            tool = value
        elif flag == "--tool-arg":
            key, _, args[key] = value.partition("=")
        else:
            assert flag == "--method" and value == "tools/call", (flag, value)
    return server, env, tool, args


def test_the_readme_command_names_what_it_needs() -> None:
    server, env, tool, args = parse(readme_call())
    assert server == ".venv/bin/hive-mcp"  # the path the Quick start creates
    assert {"HIVE_MCP_API_BASE", "HIVE_MCP_MODEL"} <= set(env)
    assert tool == "complete" and set(args) == {"prompt"}


def test_the_readme_first_call_answers(tmp_path: Path) -> None:
    server, env, tool, args = parse(readme_call())
    command = ROOT / server
    if not command.exists():
        pytest.skip(f"{server} is not there: the Quick start's install has not run in this checkout")
    with Upstream() as upstream:
        upstream.script(Reply.text("Paris."))
        settings = {**env, "HIVE_MCP_API_BASE": upstream.base_url}
        params = StdioServerParameters(
            command=str(command), env=child_env(HIVE_HOME=str(tmp_path / "hive"), **settings), cwd=str(ROOT)
        )
        with (tmp_path / "stderr.log").open("w") as errlog:
            session = Session(lambda: stdio_client(params, errlog=errlog), "legacy")
            try:
                result = session.run(lambda client: client.call_tool(tool, args))
            finally:
                session.close()
        assert not result.is_error, text_of(result)
        assert text_of(result) == "Paris."
        (request,) = upstream.chat_requests()
        assert request.body["model"] == env["HIVE_MCP_MODEL"].removeprefix("openai/")
        assert request.messages[-1]["content"] == args["prompt"]

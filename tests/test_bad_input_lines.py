"""Bad input that once reached litellm or the file system and came back as a failure with a dump (or a
traceback): each is now refused before the upstream, with its exact one line naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.files import FileAccess, FileRoots, FilesRefused, Root
from hive_mcp.files.select import select
from tests.bad_calls import checked, limited_server, prompt_and
from tests.clients import text_of
from harness.upstream import Upstream

LONG = "y" * 300


@pytest.fixture
def files_server(provider: Any, store: DumpStore, tmp_path: Path) -> MCPServer:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.py").write_text("x = 1\n")
    return limited_server(provider, store, files=FileAccess(FileRoots((Root(root.resolve()),))))


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize(
    ("files", "line"),
    [
        (["a.py\x00x"], "invalid arguments: files[0]: must not contain a NUL byte"),
        ([LONG], f"files: {'y' * 57}...: not a valid path (file name too long)"),
        (["sub/" + LONG + "/a.py"], f"files: sub/{'y' * 53}...: not a valid path (file name too long)"),
        ([LONG + "/*.py"], f"files: {'y' * 57}...: not a valid path (file name too long)"),
    ],
    ids=["nul", "long-name", "long-directory", "long-glob-start"],
)
async def test_unusable_file_paths_get_one_line(
    files_server: MCPServer, upstream: Upstream, store: DumpStore, mode: str, tool: str, files: list[str], line: str
) -> None:
    async with checked(files_server, upstream, store, mode) as c:
        r = await c.call_tool(tool, prompt_and(files=files))
        assert r.is_error
        assert text_of(r) == line


def test_a_nul_byte_is_refused_by_the_file_selection_too(tmp_path: Path) -> None:
    # The tools refuse it with the arguments; a direct caller gets the refusal rather than a ValueError.
    with pytest.raises(FilesRefused) as info:
        select(["a\x00b"], (Root(tmp_path.resolve()),))
    assert str(info.value) == "files: a\x00b: not a valid path (embedded null byte)"

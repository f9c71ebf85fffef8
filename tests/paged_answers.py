"""An answer too big for one reply, for the tests that page it: in process, through a subprocess server, and
through Claude Code."""

from __future__ import annotations

from typing import Any

import mcp_types as types


def long_answer(lines: int = 300) -> str:
    """An answer of a few thousand tokens, every line different, some without a trailing space or newline."""
    return "".join(f"Line {i}: the {['quick', 'lazy', 'brown'][i % 3]} fox #{i * 7919 % 1000}.\n" for i in range(lines))


async def read_text(c: Any, uri: str) -> str:
    """A kept answer (or one part of it) read as a resource through the client `c`."""
    [contents] = (await c.read_resource(uri)).contents
    assert isinstance(contents, types.TextResourceContents) and contents.mime_type == "text/plain"
    return contents.text

"""What the cost-control tests share: the two tools a limit applies to, a reply either tool can take, a stream
held after its first chunk, and the check that a refusal is one clean line naming what it refused."""

from __future__ import annotations

import mcp_types as types

from tests.clients import text_of
from harness.upstream import Reply

TOOLS = ["complete", "stream_complete"]


def ok_reply(tool: str, text: str = "ok") -> Reply:
    return Reply.stream([text]) if tool == "stream_complete" else Reply.text(text)


def held_stream() -> Reply:
    """A stream that sends one chunk, then waits for `upstream.release()`."""
    return Reply.stream(["first ", "second"], hold_after=1)


def assert_refused(result: types.CallToolResult, *needles: str) -> str:
    assert result.is_error
    text = text_of(result)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text

"""An upstream that echoes the key it was sent (a proxy, a mock, a server gone wrong) hands it to no caller: not in
an answer, its reasoning or its tool calls, whole or streamed in pieces split anywhere, and not in what the call
layer relays or stores. Through litellm's real HTTP path to the scripted upstream."""

from __future__ import annotations

from typing import Any

import pytest

from hive_mcp.provider import FinishEvent, ReasoningDeltaEvent, TextDeltaEvent, Tool, ToolCallEvent
from hive_mcp.provider.echoes import Scrubber
from hive_mcp.redact import REDACTED
from tests.clients import connect, mcp_server, Progress, text_of
from tests.conftest import TEST_KEY
from tests.provider_calls import USER, collect
from harness.upstream import Reply, tool_call_delta

SAID = f"the key you sent is {TEST_KEY}, keep it safe"
CLEAN = f"the key you sent is {REDACTED}, keep it safe"
WHERE = SAID.index(TEST_KEY)
ARGS = f'{{"key": "{TEST_KEY}"}}'


def pieces_split_at(text: str, *cuts: int) -> list[str]:
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


async def test_a_whole_reply_echoing_the_key_is_answered_without_it(provider, upstream) -> None:
    upstream.script(Reply.text(SAID, tool_calls=[{"id": "c1", "name": "save", "arguments": ARGS}]))
    reply = await provider.acomplete(USER, tools=[Tool(name="save")])
    assert reply.content == CLEAN
    assert reply.tool_calls[0].input == {"key": REDACTED}


@pytest.mark.parametrize(
    "cuts",
    [(WHERE + 1,), (WHERE + 2,), (WHERE + 3,), (WHERE + 10,), (WHERE + len(TEST_KEY) - 1,),
     tuple(range(1, len(SAID)))],
    ids=["after-1", "after-2", "after-3", "inside", "before-last", "every-character"],
)  # fmt: skip
async def test_a_streamed_echo_split_anywhere_reaches_no_event(provider, upstream, cuts: tuple[int, ...]) -> None:
    reasoning = [{"reasoning_content": p} for p in pieces_split_at(SAID, *cuts)]
    shift = ARGS.index(TEST_KEY) - WHERE  # the same cuts, relative to the key
    arguments = pieces_split_at(ARGS, *(c + shift for c in cuts if 0 < c + shift < len(ARGS)))
    upstream.script(
        Reply.stream([
            *reasoning, *pieces_split_at(SAID, *cuts),
            tool_call_delta(0, id="c1", name="save"), *(tool_call_delta(0, args=a) for a in arguments),
        ])
    )  # fmt: skip
    events = await collect(provider, tools=[Tool(name="save")])
    text = "".join(e.content for e in events if isinstance(e, TextDeltaEvent))
    thought = "".join(e.content for e in events if isinstance(e, ReasoningDeltaEvent))
    # A key split within its first two characters has them sent already; never more of it.
    assert TEST_KEY[:3] not in text.replace(CLEAN, "") and text.endswith(CLEAN[WHERE + 2 :]), text
    assert TEST_KEY[:3] not in thought.replace(CLEAN, ""), thought
    [finish] = [e for e in events if isinstance(e, FinishEvent)]
    assert finish.response.content == text and finish.response.reasoning == thought
    [tool] = [e for e in events if isinstance(e, ToolCallEvent)]
    assert tool.tool_input == {"key": REDACTED}


async def test_text_that_only_looks_like_the_start_of_a_key_is_not_held_back(provider, upstream) -> None:
    """Only three characters or more of a secret keep a piece's end back: `sk` is sent with its piece."""
    upstream.script(Reply.stream(["ask", " me", "sk-te", "a time"], hold_after=1))
    stream = provider.stream(USER)
    first = await stream.__anext__()
    assert isinstance(first, TextDeltaEvent) and first.content == "ask"
    upstream.release()
    rest = [e.content async for e in stream if isinstance(e, TextDeltaEvent)]
    assert "".join(rest) == " mesk-tea time"


ESCAPED = "".join(f"%{ord(c):02x}" if i % 3 == 0 else c for i, c in enumerate(TEST_KEY))
"""The key with every third character percent-encoded, in lower-case hex: a form no list of forms holds."""


async def test_an_echo_of_the_key_percent_encoded_is_answered_without_it(provider, upstream) -> None:
    said = f"see /v1?key={ESCAPED}&x=1"
    upstream.script(Reply.text(said), Reply.stream(["see ", f"/v1?key={ESCAPED}", "&x=1"]))
    reply = await provider.acomplete(USER)
    events = await collect(provider)
    streamed = "".join(e.content for e in events if isinstance(e, TextDeltaEvent))
    assert reply.content == streamed == f"see /v1?key={REDACTED}&x=1", (reply.content, streamed)


def test_a_scrubber_without_secrets_passes_every_piece_as_it_is() -> None:
    pieces = Scrubber(()).pieces()
    assert [pieces.feed(p) for p in ("sk-te", "st")] == ["sk-te", "st"] and pieces.end() == ""


async def test_over_mcp_the_echo_is_in_no_result_progress_or_stored_turn(provider, upstream, store, tmp_path) -> None:
    from hive_mcp.conversations.sqlite_store import SQLiteStore

    conversations = SQLiteStore(tmp_path / "conversations.sqlite3")
    server = mcp_server(provider, store, conversations=conversations)
    upstream.script(Reply.text(SAID), Reply.stream(pieces_split_at(SAID, WHERE + 4, WHERE + 12)))
    progress = Progress()
    async with connect(server, "legacy") as c:
        whole = await c.call_tool("complete", {"prompt": "hi"})
        streamed = await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress)
    seen: list[Any] = [text_of(whole), whole.structured_content, text_of(streamed), streamed.structured_content,
                       progress.text]  # fmt: skip
    for cid in (whole.structured_content["conversation_id"], streamed.structured_content["conversation_id"]):
        seen.append((await conversations.get(cid)).chat_messages())
    assert TEST_KEY not in str(seen) and CLEAN in text_of(whole) and progress.text == CLEAN

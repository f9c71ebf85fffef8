"""The conversation records' own rules: ids, where the database lives, omitting old turns, cursors, redaction."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hive_mcp.conversations import (
    ChatMessage, MalformedConversationId, Message, Thread, ThreadView, check_id, default_db_path, new_id,
)  # fmt: skip
from hive_mcp.conversations.records import decode_cursor, encode_cursor, prepare


def test_ids_are_128_random_bits_in_a_uri_safe_shape() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for cid in ids:
        assert check_id(cid) == cid and len(cid) == len("conv_") + 22  # 16 bytes of URL-safe base64
    with pytest.raises(MalformedConversationId, match="conversation_id: malformed id"):
        check_id(new_id() + "x")


def test_default_path_is_in_the_hive_home() -> None:
    assert str(default_db_path({"HIVE_HOME": "/srv/hive"})) == "/srv/hive/hive-mcp.sqlite3"
    assert str(default_db_path({"HOME": "/home/u"})) == "/home/u/.hive/hive-mcp.sqlite3"


def _view(*spec: tuple[str, str | None]) -> ThreadView:
    now = datetime.now(timezone.utc)
    messages, parent = [], None
    for i, (role, turn_id) in enumerate(spec):
        msg = Message(id=f"m{i}", parent_id=parent, turn_id=turn_id, body=ChatMessage(role=role, content=f"{i}"))
        messages.append(msg)
        parent = msg.id
    thread = Thread(id=new_id(), owner="local", created=now, last_used=now, tip=parent)
    return ThreadView(thread=thread, messages=messages, turns=[])


def test_omitting_turns_keeps_the_system_prompt_and_drops_whole_oldest_turns() -> None:
    view = _view(
        ("system", "t1"), ("user", "t1"), ("assistant", "t1"),
        ("user", "t2"), ("assistant", "t2"), ("tool", "t2"), ("assistant", "t2"),
        ("user", "t3"), ("assistant", "t3"),
    )  # fmt: skip
    assert view.turn_count() == 3
    assert [m["content"] for m in view.chat_messages(omit_turns=1)] == ["0", "3", "4", "5", "6", "7", "8"]
    assert [m["content"] for m in view.chat_messages(omit_turns=2)] == ["0", "7", "8"]
    assert [m["content"] for m in view.chat_messages(omit_turns=5)] == ["0"]
    assert len(view.chat_messages()) == 9


def test_cursors_round_trip_and_garbage_is_refused() -> None:
    cid = new_id()
    assert decode_cursor(encode_cursor(1_700_000_000_000_000, cid)) == (1_700_000_000_000_000, cid)
    for bad in ("", "!!", encode_cursor(1, "not-an-id")):
        with pytest.raises(ValueError, match="cursor"):
            decode_cursor(bad)


def test_redaction_reaches_text_parts_and_tool_arguments_but_not_ids() -> None:
    def redact(text: str) -> str:
        return text.replace("SECRET", "***")

    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "a SECRET"}],
        "tool_calls": [{"id": "SECRET-id", "type": "function", "function": {"name": "f", "arguments": "SECRET"}}],
    }
    ((body, text),) = prepare([message], redact)
    assert body.content == [{"type": "text", "text": "a ***"}]
    assert body.tool_calls == [{"id": "SECRET-id", "type": "function", "function": {"name": "f", "arguments": "***"}}]
    assert "a SECRET" not in text and body.role == "assistant"

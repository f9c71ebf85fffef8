"""The records of the conversation store, and the rules every backend shares.

The shape follows Simon Willison's `llm` message store, with its tip update
made a compare-and-swap:

* `Message` is immutable and parent-linked: a thread's history is the chain
  from its tip back to the root. A fork is a new `Thread` whose tip is an
  existing message, so forking copies nothing and several forks of one message
  share its whole past.
* `Turn` is immutable: one model call, with the model that answered, usage,
  cost, status, time and caller. Each message a call stored points at its turn.
* `Thread` is the only mutable record: its tip, when it was last used, and
  counters (turns, bytes, cost, unpriced turns, models) that summarise the chain
  from its tip: the cost counts a turn with no price as 0, `unpriced_turns` says how many did.
  The counters change only together with the tip, so a writer that wins the
  compare-and-swap on the tip also owns the counters it read.

Ids are `conv_` plus 22 URL-safe base64 characters (128 random bits): safe in
a URI, unguessable, and recognisable, so a malformed id is refused before any
lookup.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..defaults import CONVERSATION_MAX, CONVERSATION_MAX_BYTES, CONVERSATION_MAX_TURNS, CONVERSATION_TTL_S
from ..home import hive_home
from ..text import compact_json
from .errors import MalformedConversationId

__all__ = [
    "DB_FILENAME",
    "ChatMessage",
    "ConversationLimits",
    "Message",
    "NewTurn",
    "Redact",
    "Thread",
    "ThreadPage",
    "ThreadView",
    "Turn",
    "Usage",
    "check_id",
    "default_db_path",
    "new_id",
    "new_record_id",
]

DB_FILENAME = "hive-mcp.sqlite3"
ID_PREFIX = "conv_"
_ID_RE = re.compile(r"conv_[A-Za-z0-9_-]{22}")

Redact = Callable[[str], str]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


def new_id() -> str:
    """A fresh conversation id: 128 bits from `secrets`, URI-safe."""
    return ID_PREFIX + secrets.token_urlsafe(16)


def new_record_id() -> str:
    """An id for a message or turn (never shown as a handle; unique, not secret)."""
    return secrets.token_urlsafe(12)


def check_id(conversation_id: object) -> str:
    """`conversation_id` if it has the shape `new_id` makes, else `MalformedConversationId`."""
    if not isinstance(conversation_id, str) or not _ID_RE.fullmatch(conversation_id):
        raise MalformedConversationId(conversation_id)
    return conversation_id


def default_db_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$HIVE_HOME/hive-mcp.sqlite3`, else `~/.hive/hive-mcp.sqlite3` (HOME from `env` when set)."""
    return hive_home(env) / DB_FILENAME


class ConversationLimits(BaseModel):
    """Retention and size bounds. `None` switches a bound off.

    `tombstone_s` is how long a dropped id is still recognised as expired (not
    unknown) after it was dropped.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl_s: float | None = Field(default=CONVERSATION_TTL_S, gt=0)
    max_conversations: int | None = Field(default=CONVERSATION_MAX, ge=1)
    max_turns: int | None = Field(default=CONVERSATION_MAX_TURNS, ge=1)
    max_bytes: int | None = Field(default=CONVERSATION_MAX_BYTES, ge=1)
    tombstone_s: float = Field(default=7 * 24 * 3600, ge=0)


class Usage(BaseModel):
    """What one model call consumed; `cost_usd` is None when the call could not be priced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


class ChatMessage(BaseModel):
    """One chat message as the next model receives it: role, content (text or parts), tool calls.

    Fields beyond these (a provider's `reasoning_content`, `thinking_blocks`)
    are kept as given, so a replay is structurally what was sent or answered.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def to_chat(self) -> dict[str, Any]:
        """The message as a litellm/OpenAI chat dict (unset fields left out)."""
        return self.model_dump(exclude_none=True)


class Message(BaseModel):
    """An immutable stored message: its place in the chain and the turn that stored it."""

    model_config = ConfigDict(frozen=True)

    id: str
    parent_id: str | None
    turn_id: str | None
    body: ChatMessage


class NewTurn(BaseModel):
    """What the caller knows about the model call being stored; the store adds id, time and owner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    usage: Usage = Usage()
    status: str = "ok"
    duration_ms: float | None = Field(default=None, ge=0)


class Turn(NewTurn):
    """An immutable record of one model call."""

    id: str
    thread_id: str
    owner: str
    created: datetime


class Thread(BaseModel):
    """A snapshot of the one mutable record: the tip and what the chain up to it adds up to.

    `forked_from` is the message the thread started from (None for a fresh
    thread), `forked_from_thread` the thread that message was read from, and
    `lineage` the fresh thread a family of forks grew from (its own id for a
    fresh thread): messages are shared only within a lineage, which is what
    lets a backend free a deleted thread's messages without a global scan.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    created: datetime
    last_used: datetime
    tip: str | None = None
    forked_from: str | None = None
    forked_from_thread: str | None = None
    lineage: str = ""
    turns: int = 0
    bytes: int = 0
    cost_usd: float = 0.0
    unpriced_turns: int = 0
    models: list[str] = []


class ThreadView(BaseModel):
    """A thread with its messages in order (root first) and the turns that stored them."""

    model_config = ConfigDict(frozen=True)

    thread: Thread
    messages: list[Message]
    turns: list[Turn]

    def chat_messages(self, omit_turns: int = 0) -> list[dict[str, Any]]:
        """The history to send to the next model, structured (roles, tool calls) as stored.

        `omit_turns` leaves out that many of the oldest turns after the leading
        system messages, whole turns at a time (a question with its answer and
        tool results), so that what remains still alternates as it was sent.
        """
        messages = self.messages
        if omit_turns > 0:
            head = self._head()
            seen: list[str | None] = []
            cut = head
            for i in range(head, len(messages)):
                if messages[i].turn_id not in seen:
                    if len(seen) == omit_turns:
                        break
                    seen.append(messages[i].turn_id)
                cut = i + 1
            messages = messages[:head] + messages[cut:]
        return [m.body.to_chat() for m in messages]

    def turn_count(self) -> int:
        """How many turns `chat_messages` can omit: the turns after the leading system messages."""
        return len(dict.fromkeys(m.turn_id for m in self.messages[self._head() :]))

    def _head(self) -> int:
        """How many leading messages are the system prompt (kept whatever is omitted)."""
        head = 0
        while head < len(self.messages) and self.messages[head].body.role in ("system", "developer"):
            head += 1
        return head


class ThreadPage(BaseModel):
    """One page of a listing, newest-used first; pass `next_cursor` back for the next page."""

    items: list[Thread]
    next_cursor: str | None = None


# ---------------------------------------------------------------------------
# Shared rules
# ---------------------------------------------------------------------------


def to_us(when: datetime) -> int:
    """Microseconds since the epoch: exact ordering keys for both backends (a naive time is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(round(when.timestamp() * 1_000_000))


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, timezone.utc)


def encode_cursor(last_used_us: int, thread_id: str) -> str:
    return base64.urlsafe_b64encode(f"{last_used_us}:{thread_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (last used, id) position a cursor names; ValueError naming `cursor` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        us, _, thread_id = raw.partition(":")
        return int(us), check_id(thread_id)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor: not a cursor from a previous listing") from None


def page_of(threads: list[Thread], limit: int) -> ThreadPage:
    """The page of `threads` (fetched `limit + 1`, to know whether more follow) with the cursor after it."""
    items = threads[:limit]
    if len(threads) <= limit:
        return ThreadPage(items=items)
    return ThreadPage(items=items, next_cursor=encode_cursor(to_us(items[-1].last_used), items[-1].id))


def _redact_value(value: Any, redact: Redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_value(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v, redact) for k, v in value.items()}
    return value


def _redact_call(call: dict[str, Any], redact: Redact) -> dict[str, Any]:
    """A tool call with its arguments redacted; its id, type and function name kept, so replies still match."""
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": redact(function["arguments"])}}


def prepare(
    messages: Iterable[ChatMessage | Mapping[str, Any]], redact: Redact | None
) -> list[tuple[ChatMessage, str]]:
    """Validated, redacted messages with their stored JSON text.

    Redaction applies to every string inside `content` (and any extra field,
    such as reasoning text) and to tool calls' arguments: the texts a secret
    could travel in. Roles, names and tool call ids are left alone, so the
    replay stays well-formed (a tool result still answers its call).
    """
    out: list[tuple[ChatMessage, str]] = []
    for m in messages:
        msg = m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m)
        if redact is not None:
            data = msg.to_chat()
            keep = {k: data.pop(k) for k in ("role", "tool_call_id", "name") if k in data}
            calls = data.pop("tool_calls", None)
            if calls is not None:
                keep["tool_calls"] = [_redact_call(c, redact) for c in calls]
            msg = ChatMessage.model_validate({**_redact_value(data, redact), **keep})
        out.append((msg, compact_json(msg.to_chat())))
    return out


def size_of(prepared: Sequence[tuple[ChatMessage, str]]) -> int:
    """The bytes the stored texts take (UTF-8), the measure of `max_bytes`."""
    return sum(len(text.encode("utf-8", "surrogatepass")) for _, text in prepared)


def check_room(thread: Thread, limits: ConversationLimits, new_turns: int, new_bytes: int) -> None:
    """Raise `ConversationFull` when the append would pass `max_turns` or `max_bytes`."""
    from .errors import ConversationFull

    turns, size = thread.turns + new_turns, thread.bytes + new_bytes
    if limits.max_turns is not None and turns > limits.max_turns:
        raise ConversationFull(thread.id, "max_turns", turns, limits.max_turns)
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise ConversationFull(thread.id, "max_bytes", size, limits.max_bytes)


def advanced(thread: Thread, tip: str | None, turn: NewTurn | None, new_bytes: int, now: datetime) -> Thread:
    """The thread after one append: the new tip and counters, used now."""
    if turn is None:
        return thread.model_copy(update={"tip": tip, "bytes": thread.bytes + new_bytes, "last_used": now})
    models = thread.models if turn.model in thread.models else [*thread.models, turn.model]
    return thread.model_copy(
        update={
            "tip": tip,
            "turns": thread.turns + 1,
            "bytes": thread.bytes + new_bytes,
            "cost_usd": thread.cost_usd + (turn.usage.cost_usd or 0.0),
            "unpriced_turns": thread.unpriced_turns + (turn.usage.cost_usd is None),
            "models": models,
            "last_used": now,
        }
    )

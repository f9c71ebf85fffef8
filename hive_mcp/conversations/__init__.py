"""Conversations: server-minted handles that a caller continues, forks and hands to another model.

The storage layer only; the MCP tools sit on top of it. `open_store` picks the
backend from the state URL: none means SQLite in the hive home (embedded,
survives restarts, several processes on one machine), `redis://`,
`rediss://` or `unix://` means Redis/Valkey (shared by every instance).

A call on a conversation goes: `ConversationLocks.hold(id)` (one call at a time
per conversation in this process), `view = await store.get(id, owner=caller)`
(the history to send), the model call, then `store.append(id, new_messages +
answer, turn, expected_tip=view.thread.tip, owner=caller, base=view.thread)`.
Nothing is stored for a call that fails; an append that lost a race to another
process raises the retryable `ConversationConflict` and writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import (
    ConversationBusy,
    ConversationConflict,
    ConversationError,
    ConversationFull,
    ExpiredConversation,
    MalformedConversationId,
    StoreError,
    UnknownConversation,
    UnknownMessage,
)
from .locks import ConversationLocks
from .records import (
    ChatMessage,
    ConversationLimits,
    Message,
    NewTurn,
    Redact,
    Thread,
    ThreadPage,
    ThreadView,
    Turn,
    Usage,
    check_id,
    default_db_path,
    new_id,
)
from .store import ConversationStore

__all__ = [
    "ChatMessage",
    "ConversationBusy",
    "ConversationConflict",
    "ConversationError",
    "ConversationFull",
    "ConversationLimits",
    "ConversationLocks",
    "ConversationStore",
    "ExpiredConversation",
    "MalformedConversationId",
    "Message",
    "NewTurn",
    "Redact",
    "StoreError",
    "Thread",
    "ThreadPage",
    "ThreadView",
    "Turn",
    "UnknownConversation",
    "UnknownMessage",
    "Usage",
    "check_id",
    "default_db_path",
    "new_id",
    "open_store",
]


def open_store(
    state_url: str | None = None, *, env: Mapping[str, str] = os.environ, **kwargs: Any
) -> ConversationStore:
    """The store for `state_url` (e.g. `HIVE_MCP_STATE_URL`): Redis for redis/rediss/unix URLs, else SQLite.

    `kwargs` go to the backend (`limits`, `redact`, `clock`; `path` for SQLite,
    `prefix` for Redis). A URL with another scheme is a `ValueError` naming
    `state_url`. The Redis client is imported only when a URL asks for it.
    """
    if not state_url:
        from .sqlite_store import SQLiteStore

        return SQLiteStore(kwargs.pop("path", None), env=env, **kwargs)
    from .redis_store import RedisStore

    return RedisStore(state_url, **kwargs)

"""Conversations: server-minted handles that a caller continues, forks and hands to another model.

The storage layer only; the MCP tools sit on top of it. `ConversationStore` is
what every backend does; `sqlite_store` (embedded in the hive home, survives
restarts, several processes on one machine) and `redis_store` (Redis/Valkey,
shared by every instance) are the backends, opened by `hive_mcp.backends` for
the state URL's kind.

A call on a conversation goes: `ConversationLocks.hold(id)` (one call at a time
per conversation in this process), `view = await store.get(id, owner=caller)`
(the history to send), the model call, then `store.append(id, new_messages +
answer, turn, expected_tip=view.thread.tip, owner=caller, base=view.thread)`.
Nothing is stored for a call that fails; an append that lost a race to another
process raises the retryable `ConversationConflict` and writes nothing.
"""

from __future__ import annotations

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
]


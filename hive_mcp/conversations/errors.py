"""What a conversation call can be refused with, each a distinct class with a one-line `str()`.

The server maps them to tool errors without inspecting text: an id that is not
ours (`MalformedConversationId`), one we never issued or that was deleted, or
that belongs to another caller (`UnknownConversation`, the same answer on
purpose so that ids cannot be probed), one that was ours but timed out or was
evicted (`ExpiredConversation`), a lost compare-and-swap (`ConversationConflict`,
retryable: reload and append again), a full conversation (`ConversationFull`),
a queue wait that timed out (`ConversationBusy`), and a storage failure
(`StoreError`, naming the store, so a new call can still go ahead without an id).
"""

from __future__ import annotations

from ..refusal import Refusal
from ..text import one_line

__all__ = [
    "ConversationBusy",
    "ConversationConflict",
    "ConversationError",
    "ConversationFull",
    "ExpiredConversation",
    "MalformedConversationId",
    "StoreError",
    "UnknownConversation",
    "UnknownMessage",
]

_LINE = 300


class ConversationError(Refusal):
    """A refused conversation operation; `str()` is one line naming the id."""

    field = "conversation_id"

    retryable = False

    def __init__(self, conversation_id: str, message: str) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id
        self.message = message

    def __str__(self) -> str:
        return one_line(self.message, _LINE)


class MalformedConversationId(ConversationError, ValueError):
    """Not a conversation id this server could have minted (wrong type, length or alphabet)."""

    def __init__(self, conversation_id: object) -> None:
        shown = one_line(repr(conversation_id), 60)
        super().__init__(str(conversation_id), f"conversation_id: malformed id {shown}: not a conversation id")


class UnknownConversation(ConversationError, LookupError):
    """Never issued here, deleted, or owned by another caller (the same answer, so ids cannot be probed)."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(conversation_id, f"conversation_id: unknown conversation {conversation_id}")


class ExpiredConversation(ConversationError, LookupError):
    """Issued here, then dropped: unused for longer than the TTL (`reason="expired"`) or evicted by the cap.
    `owner` is whose it was (None: not recorded); only its owner is told, anyone else reads it as unknown."""

    def __init__(self, conversation_id: str, reason: str = "expired", owner: str | None = None) -> None:
        why = "evicted (too many conversations kept)" if reason == "evicted" else "expired (unused for too long)"
        super().__init__(conversation_id, f"conversation_id: conversation {conversation_id} {why}")
        self.reason = reason
        self.owner = owner


class UnknownMessage(ConversationError, LookupError):
    """A fork point that is not a message of the conversation's thread."""

    def __init__(self, conversation_id: str, message_id: str) -> None:
        super().__init__(conversation_id, f"at: message {message_id} is not in conversation {conversation_id}")
        self.message_id = message_id


class ConversationConflict(ConversationError):
    """Another writer advanced the thread first; nothing was written. Reload and append again."""

    retryable = True

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            conversation_id,
            f"conversation_id: conversation {conversation_id} was changed by another call meanwhile; "
            "nothing was stored, retry",
        )


class ConversationFull(ConversationError):
    """Appending would exceed a per-conversation cap (`limit` is `max_turns` or `max_bytes`)."""

    def __init__(self, conversation_id: str, limit: str, value: int, cap: int) -> None:
        super().__init__(
            conversation_id,
            f"conversation_id: conversation {conversation_id} is full: {limit} {cap} (would be {value}); "
            "start a new conversation or fork an earlier point",
        )
        self.limit = limit


class ConversationBusy(ConversationError):
    """Another call on the same conversation held it for the whole queue timeout."""

    def __init__(self, conversation_id: str, waited_s: float) -> None:
        super().__init__(
            conversation_id,
            f"conversation_id: conversation {conversation_id} is busy with another call; "
            f"waited {waited_s:g}s for its turn, try again later",
        )


class StoreError(Refusal):
    """The state store failed (disk full, database locked, Redis down). `str()` is one line naming the store.

    Never carries a traceback's text or a password: the store is named by its
    path or its URL with the credentials removed.
    """

    field = "conversation_id"

    def __init__(self, store: str, operation: str, exc: BaseException | str, *, told: bool = False) -> None:
        detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.store = store
        self.operation = operation
        self.told = told
        """The outage behind it was logged already (once, by the state store): no warning per call."""
        self.line = one_line(f"conversation store {store} failed to {operation}: {detail}", _LINE)
        super().__init__(self.line)

    def __str__(self) -> str:
        return self.line

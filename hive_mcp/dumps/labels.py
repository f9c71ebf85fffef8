"""What a dump says of the call it records beyond the request: who called, and its conversation.

The provider builds a call's dump (it alone knows the attempts) and never knows
who called or which conversation the call belongs to; the call layer does, and
says so for the call running in this context (`labelled`, set by the step that
asks the provider). The store stamps each dump written in that context
(`stamped`). A call that was to start a conversation and failed names none,
since it started none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from .format import FailureDump

__all__ = ["labelled", "stamped"]


@dataclass(frozen=True)
class _Labels:
    caller: str | None = None
    conversation_id: str | None = None
    new_conversation: bool = False


_current: ContextVar[_Labels] = ContextVar("hive_mcp_dump_labels", default=_Labels())


@contextmanager
def labelled(caller: str, conversation_id: str | None, new_conversation: bool = False) -> Iterator[None]:
    """Dumps written in the body name `caller` and the conversation (`new_conversation`: one the call starts
    only if it succeeds)."""
    token = _current.set(_Labels(caller, conversation_id, new_conversation))
    try:
        yield
    finally:
        _current.reset(token)


def stamped(dump: FailureDump) -> FailureDump:
    """`dump` with the caller and conversation of the call writing it, where it names none of its own."""
    labels = _current.get()
    conversation = None if labels.new_conversation and dump.outcome != "recovered" else labels.conversation_id
    update = {
        name: value
        for name, value in (("caller", labels.caller), ("conversation_id", conversation))
        if value is not None and getattr(dump, name) is None
    }
    return dump.model_copy(update=update) if update else dump

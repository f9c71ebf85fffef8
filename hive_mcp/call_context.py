"""Who is calling, and in which conversation, for the call running in this context.

The provider never receives either (they are not part of a request); the call
layer knows them and says so around the provider call (`labelled`, set by the
step that asks the provider). What records a call reads them here: the dump
store stamps each dump written in that context (`stamped`), the provider's
attempt spans name them (`current`). A call that was to start a conversation
and failed names none in its dump, since it started none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from .dumps.format import FailureDump

__all__ = ["Labels", "current", "labelled", "stamped"]


@dataclass(frozen=True)
class Labels:
    caller: str | None = None
    conversation_id: str | None = None
    new_conversation: bool = False


_current: ContextVar[Labels] = ContextVar("hive_mcp_dump_labels", default=Labels())


def current() -> Labels:
    """The labels of the call running in this context (empty outside one)."""
    return _current.get()


@contextmanager
def labelled(caller: str, conversation_id: str | None, new_conversation: bool = False) -> Iterator[None]:
    """Dumps written in the body name `caller` and the conversation (`new_conversation`: one the call starts
    only if it succeeds)."""
    token = _current.set(Labels(caller, conversation_id, new_conversation))
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

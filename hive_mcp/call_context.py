"""Who is calling, and in which conversation, for the call running in this context.

The provider never receives either (they are not part of a request); the call
layer knows them and says so around the provider call (`labelled`, set by the
step that asks the provider). What records a call reads them here (`current`):
the dump store stamps each dump written in that context with them, the
provider's attempt spans name them. A leaf: it imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Labels", "current", "labelled"]


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

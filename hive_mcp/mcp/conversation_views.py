"""Browsing conversations: the `list_conversations` tool and the `hive://conversations` resources.

Each caller sees only its own conversations (the owner the HTTP guard derived
from its token): another's id reads as not found and never shows in a listing.
Admins and the local user browse everyone's (`tokens.owner_scope`), as they do
dumps; continuing or forking one stays its owner's (the conversation step asks
with the call's own caller). The index is newest-used first and pages with
cursors, like the failed requests; one conversation reads as its whole thread,
as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, Resource, ResourceTemplate, ToolAnnotations
from pydantic import BaseModel

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool as MCPTool
from mcp.shared.exceptions import MCPError

from ..conversations import ConversationError, ConversationStore, StoreError, Thread, ThreadView
from ..tokens import owner_scope
from .args import ListConversationsArgs, parse_args
from .constants import CONVERSATION_URI_TEMPLATE, CONVERSATIONS_URI, conversation_uri
from .callers import caller
from .errors import ArgumentError, error_result, safe_line
from .results import json_result
from .routes import Route, not_found
from .schema import build_tool

__all__ = ["ConversationPage", "ConversationSummary", "conversation_routes", "list_conversations_tool"]


class ConversationSummary(BaseModel):
    """One conversation in a listing; read `uri` for its thread. `cost_usd` counts the turns that had a price
    (null when none did); `unpriced_turns` says how many had none."""

    id: str
    uri: str
    owner: str
    created: datetime
    last_used: datetime
    turns: int
    models: list[str]
    cost_usd: float | None
    unpriced_turns: int
    forked_from: str | None = None

    @classmethod
    def of(cls, t: Thread) -> ConversationSummary:
        return cls(
            id=t.id, uri=conversation_uri(t.id), owner=t.owner, created=t.created, last_used=t.last_used, turns=t.turns,
            models=t.models, cost_usd=None if t.turns and t.unpriced_turns == t.turns else t.cost_usd,
            unpriced_turns=t.unpriced_turns, forked_from=t.forked_from_thread,
        )  # fmt: skip


class ConversationPage(BaseModel):
    """Conversations, most recently used first. Pass `next_cursor` back for the next page."""

    items: list[ConversationSummary]
    next_cursor: str | None = None


async def conversation_page(
    store: ConversationStore, owner: str | None, args: ListConversationsArgs
) -> ConversationPage:
    """One page of `owner`'s conversations (None: everyone's); ArgumentError for a cursor that is not one of ours."""
    try:
        page = await store.list(
            owner=owner, limit=args.limit, cursor=args.cursor, model=args.model, since=args.since
        )
    except ValueError as exc:
        raise ArgumentError(f"invalid arguments: {exc}; pass next_cursor back unchanged") from None
    return ConversationPage(items=[ConversationSummary.of(t) for t in page.items], next_cursor=page.next_cursor)


def thread_document(view: ThreadView) -> dict[str, Any]:
    """A thread as its resource shows it: the summary, the turns, and each message with the turn that stored it."""
    numbers = {t.id: i for i, t in enumerate(view.turns)}
    return {
        **ConversationSummary.of(view.thread).model_dump(mode="json"),
        "turn_records": [t.model_dump(mode="json", exclude={"thread_id", "owner", "id"}) for t in view.turns],
        "messages": [{**m.body.to_chat(), "turn": numbers.get(m.turn_id or "")} for m in view.messages],
    }


def list_conversations_tool(store: ConversationStore, admins: frozenset[str]) -> MCPTool:
    """The read-only `list_conversations` tool over `store`."""
    async def list_conversations(ctx: Context) -> Annotated[CallToolResult, ConversationPage]:
        """Your conversations, newest first; pass an id as complete's conversation_id."""
        try:
            args = parse_args(ListConversationsArgs, ctx)
            page = await conversation_page(store, owner_scope(caller(ctx.request_context), admins), args)
        except (ArgumentError, StoreError) as exc:
            return error_result(str(exc))
        return json_result(page)

    annotations = ToolAnnotations(title="List conversations", read_only_hint=True, open_world_hint=False)
    return build_tool(list_conversations, ListConversationsArgs, annotations)


def conversation_routes(store: ConversationStore, admins: frozenset[str]) -> list[Route]:
    """`hive://conversations` (the caller's, a page per `?cursor=`) and one conversation's thread."""

    async def read_index(ctx: ServerRequestContext[Any, Any], uri: str, _: str) -> str:
        cursor = parse_qs(urlsplit(uri).query).get("cursor", [None])[0]
        return await _answer(ctx, uri, lambda: _index_text(store, owner_scope(caller(ctx), admins), cursor))

    async def read_thread(ctx: ServerRequestContext[Any, Any], uri: str, conversation_id: str) -> str:
        return await _answer(ctx, uri, lambda: _thread_text(store, owner_scope(caller(ctx), admins), conversation_id))

    index = Resource(
        uri=CONVERSATIONS_URI, name="conversations", title="Conversations", mime_type="application/json",
        description="Your conversations, most recently used first (the first page of list_conversations).",
    )  # fmt: skip
    thread = ResourceTemplate(
        uri_template=CONVERSATION_URI_TEMPLATE, name="conversation", title="A conversation",
        description="One conversation's thread: every message, and each turn's model, usage and cost.",
        mime_type="application/json",
    )  # fmt: skip
    return [Route(CONVERSATIONS_URI + "{?cursor}", index, read_index),
            Route(CONVERSATION_URI_TEMPLATE, thread, read_thread, owned=True)]  # fmt: skip


async def _index_text(store: ConversationStore, owner: str | None, cursor: str | None) -> str:
    page = await conversation_page(store, owner, ListConversationsArgs(cursor=cursor))
    return page.model_dump_json(indent=2)


async def _thread_text(store: ConversationStore, owner: str | None, conversation_id: str) -> str:
    view = await store.get(conversation_id, owner=owner)
    return json.dumps(thread_document(view), indent=2, ensure_ascii=False)


async def _answer(ctx: ServerRequestContext[Any, Any], uri: str, read: Callable[[], Awaitable[str]]) -> str:
    """`read()`, its failures as one line: another's or an unknown conversation reads as not found."""
    try:
        return await read()
    except ConversationError as exc:
        raise not_found(ctx, uri, safe_line(str(exc), 200)) from None
    except ArgumentError as exc:
        raise MCPError(code=INVALID_PARAMS, message=safe_line(str(exc), 200), data={"uri": uri}) from None
    except StoreError as exc:
        raise MCPError(code=INTERNAL_ERROR, message=str(exc)) from None

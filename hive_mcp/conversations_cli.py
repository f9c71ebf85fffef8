"""`hive-mcp conversations list|show|delete`: the operator's view of the conversation store.

The store is the one the server would use (SQLite in the hive home, or
HIVE_MCP_STATE_URL), seen without an owner: every caller's conversations; its
settings are read by `cli` (`cli_common.command_settings`). Neither litellm nor
mcp is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import anyio

from .cli_common import add_limit, cost_cell, print_table
from .backends import conversation_store

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["SETTINGS", "add_conversations_parser", "run_conversations"]

SETTINGS = (
    "state_url", "state_password", "conversation_ttl_s", "conversation_max", "conversation_max_turns",
    "conversation_max_bytes",
)  # fmt: skip
"""What `conversations` reads (with the config and the default model, as every command does)."""
PAGE_ROWS = 200
"""Conversations asked of the store at once: a bigger `--limit` takes more pages."""


def add_conversations_parser(commands: Any, prog: str, parser_class: type[argparse.ArgumentParser]) -> None:
    """The `conversations` command and its actions, under `commands` (the top-level subparsers)."""
    conv = commands.add_parser(
        "conversations",
        prog=f"{prog} conversations",
        help="list, show or delete conversations",
        description="Conversations kept for conversation_id (SQLite in the hive home, or HIVE_MCP_STATE_URL).",
    )
    actions = conv.add_subparsers(dest="conversations_command", metavar="ACTION", required=True, parser_class=parser_class)
    lst = actions.add_parser("list", prog=f"{prog} conversations list", help="a table, most recently used first")
    lst.add_argument("--model", dest="filter_model", metavar="MODEL", help="only those a turn of which used MODEL")
    add_limit(lst)
    for action, text in (("show", "print one conversation as JSON"), ("delete", "delete one conversation")):
        sub = actions.add_parser(action, prog=f"{prog} conversations {action}", help=text)
        sub.add_argument("id", metavar="ID", help="a conversation id, as printed by `conversations list`")


def run_conversations(args: argparse.Namespace, settings: Settings) -> tuple[int, str | None]:
    """Run the action on `settings` (`SETTINGS`, read by `cli`): (exit code, error line or None). Unknown ids are
    exit 2, a failing store exit 1."""
    from .conversations import ConversationError, StoreError

    store = conversation_store(settings.model_copy(update={"conversations": "on"}))

    async def act() -> int:
        async with store:
            if args.conversations_command == "list":
                return await _list(store, args)
            if args.conversations_command == "show":
                view = await store.get(args.id.strip())
                print(json.dumps(_document(view), indent=2, ensure_ascii=False))
                return 0
            await store.delete(args.id.strip())
            print(f"deleted {args.id.strip()} from {store.name}")
            return 0

    try:
        return anyio.run(act), None
    except ConversationError as exc:
        return 2, str(exc)
    except StoreError as exc:
        return 1, str(exc)


async def _list(store: Any, args: argparse.Namespace) -> int:
    """The `--limit` most recently used, a store's page at a time."""
    threads: list[Any] = []
    cursor: str | None = None
    while True:
        page = await store.list(limit=min(PAGE_ROWS, args.limit - len(threads)), cursor=cursor, model=args.filter_model)
        threads += page.items
        cursor = page.next_cursor
        if cursor is None or len(threads) == args.limit:
            break
    if not threads:
        print(f"no conversations in {store.name}", file=sys.stderr)
        return 0
    rows = [
        (t.last_used.astimezone().strftime("%Y-%m-%d %H:%M:%S"), str(t.turns), ",".join(t.models),
         cost_cell(t.cost_usd, t.turns, t.unpriced_turns), t.owner, t.id)
        for t in threads
    ]  # fmt: skip
    print_table(("LAST USED", "TURNS", "MODELS", "COST USD", "OWNER", "ID"), rows)
    if cursor is not None:
        print(f"(showing the {len(rows)} most recently used; more exist: raise --limit)", file=sys.stderr)
    return 0


def _document(view: Any) -> dict[str, Any]:
    return {
        **view.thread.model_dump(mode="json", exclude={"tip", "lineage", "forked_from"}),
        "turn_records": [t.model_dump(mode="json", exclude={"thread_id"}) for t in view.turns],
        "messages": [m.body.to_chat() for m in view.messages],
    }

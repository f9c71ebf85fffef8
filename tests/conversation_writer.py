"""A second process appending to one conversation: `python -m tests.conversation_writer KIND WHERE PREFIX ID N`.

KIND is `sqlite` (WHERE a database file) or `redis` (WHERE a URL, PREFIX its
key prefix). It prints `ready`, waits for a line on stdin (so both processes
start writing together), then appends N turns `child 0..N-1`, reloading and
retrying on each `ConversationConflict`: with the store's compare-and-swap,
none of them may be lost and none may overwrite another writer's turn.
"""

from __future__ import annotations

import sys

import anyio

from hive_mcp.conversations import ConversationConflict, ConversationStore, NewTurn


async def main(kind: str, where: str, prefix: str, conversation_id: str, n: int) -> None:
    store: ConversationStore
    if kind == "sqlite":
        from hive_mcp.conversations.sqlite_store import SQLiteStore

        store = SQLiteStore(where)
    else:
        from hive_mcp.conversations.redis_store import RedisStore

        store = RedisStore(where, prefix=prefix)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(n):
        while True:
            tip = (await store.thread(conversation_id)).tip
            try:
                message = {"role": "user", "content": f"child {i}"}
                await store.append(conversation_id, [message], NewTurn(model="m"), expected_tip=tip)
                break
            except ConversationConflict:
                continue
    await store.aclose()


if __name__ == "__main__":
    kind, where, prefix, conversation_id, n = sys.argv[1:6]
    anyio.run(main, kind, where, prefix, conversation_id, int(n))

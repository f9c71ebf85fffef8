"""One Redis connection pool per process, shared by every store: a hive-mcp server on a real valkey-server.

The server is exercised one call at a time through every store on the state URL: conversations (a call
that starts one, a call that continues it, the listing), the spend ledger (a daily budget: each call
reserves and settles), failure dumps (a call the upstream refuses is dumped, then listed and read) and
the change bus (the dump's change is published; the bus holds its subscriber connection throughout).

Valkey's `CLIENT LIST` is matched to the server process's own sockets (its /proc fd table), and its
SLOWLOG (every command logged, with the connection that sent it) tells which store used which connection.

* One pool: the connections carry the commands of every store, the blocking ones (ledger, dumps) and the
  async ones (conversations, bus) mixed, so every store is linked to every other through connections
  they shared. Separate pools never mix: each pool's stores would stay a group of their own.
* The bound: a pool holds as many connections as commands were in flight at once. These calls have at
  most two at once (a conversation's turn is released while the call's change events go out), and the
  budget gauges read the ledger on a thread of their own after each settled call, whenever the calls
  stand: at most three pooled, plus the bus's subscriber (a subscribed connection answers nothing else).
  A blocking pool beside an async one holds one more.

The Router is not on Redis here (no `router_settings`); when it is, litellm's own clients are separate,
as the README says.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers import HttpServer, Session, dump_id_in, instances_on
from tests.clients import text_of
from harness.upstream import RecordedRequest, Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's sockets in /proc")

USAGE = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}


def reply(request: RecordedRequest) -> Reply:
    if "refuse me" in str(request.body):
        return Reply.error(400, "bad request: refused", code="invalid_request_error")
    return Reply.text("ok", usage=USAGE)


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def connections_of(valkey: ValkeyProcess, server: HttpServer) -> list[dict[str, Any]]:
    """The clients Valkey sees from `server`'s process."""
    ports = local_ports(server.proc.pid)
    clients = redis.Redis.from_url(valkey.url).client_list()
    return [c for c in clients if int(c["addr"].rsplit(":", 1)[1]) in ports]


def test_every_store_of_a_process_shares_one_connection_pool(tmp_path: Path) -> None:
    with ValkeyProcess(valkey_binary()) as valkey, Upstream(reply_for=reply) as upstream, instances_on(
        valkey.url, tmp_path, ("one",), HIVE_MCP_API_BASE=upstream.base_url, HIVE_MCP_MODEL="openai/gpt-4o-mini",
        HIVE_MCP_API_KEY="sk-pool-0123456789SECRET", HIVE_MCP_BUDGET_USD_DAY="1",
    ) as [server]:  # fmt: skip
        watch = redis.Redis.from_url(valkey.url)
        watch.config_set("slowlog-log-slower-than", 0)  # every command, with the connection that sent it
        watch.config_set("slowlog-max-len", 100_000)
        session = Session(lambda: server.url, "auto")
        try:
            started = session.run(lambda c: c.call_tool("complete", {"prompt": "my name is Ada"}))
            assert not started.is_error, text_of(started)
            cid = started.structured_content["conversation_id"]
            more = session.run(lambda c: c.call_tool("complete", {"prompt": "and yours?", "conversation_id": cid}))
            assert more.structured_content["conversation_id"] == cid, text_of(more)
            listed = session.run(lambda c: c.call_tool("list_conversations", {}))
            assert cid in text_of(listed)
            refused = session.run(lambda c: c.call_tool("complete", {"prompt": "refuse me"}))
            assert refused.is_error
            dump_id = dump_id_in(text_of(refused))
            dumps = session.run(lambda c: c.call_tool("list_failed_requests", {}))
            assert dump_id in text_of(dumps)
            read = session.run(lambda c: c.read_resource(f"hive://failed-requests/{dump_id}"))
            assert "refused" in str(read)
        finally:
            session.close()
        seen = connections_of(valkey, server)
        sent = watch.slowlog_get(100_000)
        store = redis.Redis.from_url(valkey.url, decode_responses=True)
        assert store.zcard("hive-mcp:spend:calls") == 2  # the ledger is in Redis: spend used the pool
        assert store.exists(f"hive-mcp:dump:{dump_id}")  # so are the dump and the conversation
        assert store.exists(f"hive-mcp:conv:{cid}")
    subscribers = [c for c in seen if int(c.get("sub", 0)) or int(c.get("psub", 0))]
    commands = [c for c in seen if c not in subscribers]
    assert len(subscribers) == 1, seen  # the bus's
    assert len(commands) <= 3, [(c["addr"], c["cmd"], c["tot-cmds"]) for c in seen]
    assert {c["name"] for c in seen} == {f"hive-mcp:{server.proc.pid}"}, seen  # CLIENT LIST names the process

    stores_of: dict[str, set[str]] = {}
    for entry in sent:
        which = store_of(entry["command"].decode(errors="replace"))
        if which:
            stores_of.setdefault(entry["client_address"].decode(), set()).add(which)
    assert {c["addr"] for c in commands} >= set(stores_of), stores_of  # every store's commands: on the pool
    assert one_group(stores_of.values()) == {"spend", "dumps", "conversations", "bus"}, stores_of


def one_group(shared: Iterable[set[str]]) -> set[str]:
    """The stores linked to the ledger through the connections they shared.

    Which pooled connection serves a command depends on what else was in flight, so the stores may
    spread over two; a store on a pool of its own shares no connection and stays outside the group."""
    group, sets = {"spend"}, list(shared)
    while grown := [s for s in sets if s & group and not s <= group]:
        group = group.union(*grown)
    return group


def store_of(command: str) -> str | None:
    """Which store sent a command (as the SLOWLOG shows it)."""
    if command.startswith("PUBLISH "):
        return "bus"
    for mark, store in (("hive-mcp:spend:", "spend"), ("hive-mcp:dump", "dumps"), ("hive-mcp:conv:", "conversations"),
                        ("hive-mcp:index", "conversations"), ("hive-mcp:writer:", "conversations")):  # fmt: skip
        if mark in command:
            return store
    return None

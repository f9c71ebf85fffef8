"""Tasks in Redis or Valkey (HIVE_MCP_STATE_URL): every instance behind a load balancer answers for every task.

A task is a hash (`{prefix}task:{id}`) that expires with the task (`TaskRecord.expires`: its TTL after it ends;
while it works, its TTL after its lease, pushed on at each renewal, so a working task never expires); each
caller has a sorted set of its task ids by creation (`tasks/list`) and a set of its unfinished ones (the
per-caller cap), each living as long as the longest-lived task it holds, so a caller who never comes back
leaves no key behind. Creating (count the caller's unfinished tasks on a live lease, then add), ending
(only a task still working) and renewing leases (only the instance's own working tasks) are Lua scripts, each
atomic on the server. The result is stored as the JSON text it is; no script decodes it. Commands go through
the process's `StateStore` (its pool, timeouts and breaker).
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

from redis.exceptions import WatchError

from ..defaults import REDIS_PREFIX
from ..state_store import StateStore, StateUnavailable, says_away
from .records import TaskRecord

__all__ = ["RedisTaskStore"]

_CREATE = """
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local s = redis.call('HMGET', ARGV[3] .. id, 'status', 'lease')
  if (s[1] == 'working' or s[1] == 'input_required') and tonumber(s[2]) >= tonumber(ARGV[2]) then n = n + 1
  else redis.call('SREM', KEYS[1], id) end
end
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 7))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[4], 'GT')
redis.call('PEXPIRE', KEYS[3], ARGV[4], 'NX')
redis.call('SADD', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[4], 'GT')
redis.call('PEXPIRE', KEYS[1], ARGV[4], 'NX')
return 1
"""
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'working' and status ~= 'input_required' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2], 'GT')
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
_RENEW = """
local marked = {}
for _, key in ipairs(KEYS) do
  local s = redis.call('HMGET', key, 'status', 'instance', 'cancel', 'ttl_ms', 'owner')
  if (s[1] == 'working' or s[1] == 'input_required') and s[2] == ARGV[1] then
    redis.call('HSET', key, 'lease', ARGV[2])
    local ms = tonumber(ARGV[3]) + tonumber(s[4])
    redis.call('PEXPIRE', key, ms)
    redis.call('PEXPIRE', ARGV[4] .. s[5], ms, 'GT')
    redis.call('PEXPIRE', ARGV[5] .. s[5], ms, 'GT')
    redis.call('PEXPIRE', ARGV[5] .. s[5], ms, 'NX')
  end
  if s[3] == '1' then table.insert(marked, key) end
end
return marked
"""
_ASK = """
if redis.call('HGET', KEYS[1], 'status') ~= 'working' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
_CANCEL = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cancel', '1') end return 1"


def _fields(task: TaskRecord) -> dict[str, str]:
    return {
        "task_id": task.task_id, "owner": task.owner, "tool": task.tool, "created": repr(task.created),
        "ttl_ms": str(task.ttl_ms), "status": task.status, "updated": repr(task.updated),
        "message": json.dumps(task.message), "result": json.dumps(task.result), "error": json.dumps(task.error),
        "instance": task.instance, "lease": repr(task.lease), "cancel": "1" if task.cancel_requested else "0",
        "input_requests": json.dumps(task.input_requests), "input_responses": json.dumps(task.input_responses),
        "request_state": json.dumps(task.request_state),
    }  # fmt: skip


def _record(h: dict[str, str]) -> TaskRecord:
    return TaskRecord(
        task_id=h["task_id"], owner=h["owner"], tool=h["tool"], created=float(h["created"]), ttl_ms=int(h["ttl_ms"]),
        status=h["status"], updated=float(h["updated"]), message=json.loads(h["message"]),
        result=json.loads(h["result"]), error=json.loads(h["error"]), instance=h["instance"],
        lease=float(h["lease"]), cancel_requested=h.get("cancel") == "1",
        input_requests=json.loads(h.get("input_requests", "null")),
        input_responses=json.loads(h.get("input_responses", "null")),
        request_state=json.loads(h.get("request_state", "null")),
    )  # fmt: skip


def _until(t: float, now: float) -> int:
    """Milliseconds from `now` to `t` (at least 1: PEXPIRE's shortest)."""
    return max(1, int(t * 1000 - now * 1000))


class RedisTaskStore:
    """The task store in the Redis at `url` (password in it), keys under `prefix`."""

    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX) -> None:
        self.prefix = prefix
        self._shared = StateStore.shared(url)
        self._scripts: dict[tuple[int, str], Any] = {}

    def _script(self, source: str) -> Any:
        client = self._shared.aclient()
        key = (id(client), source)
        if key not in self._scripts:
            self._scripts[key] = client.register_script(source)
        return self._scripts[key]

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    async def _do(self, command: Coroutine[Any, Any, Any]) -> Any:
        """`command`'s reply. While the breaker is open nothing is sent: it fails at once (a frozen Redis costs
        one timeout, not one per request); only a failure that says Redis is away opens it."""
        if not self._shared.usable():
            command.close()
            raise StateUnavailable(f"the state store at {self._shared.name} is unavailable")
        try:
            out = await self._shared.arun(command)
        except Exception as exc:
            if says_away(exc):
                self._shared.failed(exc)
            raise
        self._shared.worked()
        return out

    def since_back(self) -> float:
        """Seconds since Redis last came back to this process (see `Outage.since_back`)."""
        return self._shared.outage.since_back()

    async def create(self, task: TaskRecord, cap: int, now: float) -> bool:
        flat = [x for pair in _fields(task).items() for x in pair]
        keys = [f"{self.prefix}tasks:open:{task.owner}", self._key(task.task_id), f"{self.prefix}tasks:by:{task.owner}"]
        ttl_ms = _until(task.expires, now)
        args = [cap, repr(now), f"{self.prefix}task:", ttl_ms, repr(task.created), task.task_id, *flat]
        return bool(await self._do(self._script(_CREATE)(keys=keys, args=args)))

    async def get(self, task_id: str, now: float) -> TaskRecord | None:
        found = await self._do(self._shared.aclient().hgetall(self._key(task_id)))
        if not found:
            return None
        task = _record(found)
        return task if task.expires > now else None

    async def page(self, owner: str, after: tuple[float, str] | None, limit: int, now: float) -> list[TaskRecord]:
        client = self._shared.aclient()
        ids = await self._do(client.zrevrangebyscore(f"{self.prefix}tasks:by:{owner}", "+inf", "-inf", withscores=True))
        out: list[TaskRecord] = []
        for task_id, created in sorted(ids, key=lambda p: (p[1], p[0]), reverse=True):
            if after is not None and (created, task_id) >= after:
                continue
            task = await self.get(task_id, now)
            if task is None:
                await self._do(client.zrem(f"{self.prefix}tasks:by:{owner}", task_id))
                continue
            out.append(task)
            if len(out) == limit:
                break
        return out

    async def finish(self, task: TaskRecord) -> bool:
        fields = _fields(task)
        patch = [x for k in ("status", "updated", "message", "result", "error") for x in (k, fields[k])]
        patch += ["input_requests", "null"]
        keys = [self._key(task.task_id), f"{self.prefix}tasks:open:{task.owner}", f"{self.prefix}tasks:by:{task.owner}"]
        ttl_ms = _until(task.expires, task.updated)
        return bool(await self._do(self._script(_FINISH)(keys=keys, args=[task.task_id, ttl_ms, *patch])))

    async def renew(self, instance: str, task_ids: list[str], lease: float, now: float) -> set[str]:
        if not task_ids:
            return set()
        keys = [self._key(i) for i in task_ids]
        ahead_ms = _until(lease, now)  # the hash then lives its TTL after the lease, as `TaskRecord.expires` says
        args = [instance, repr(lease), ahead_ms, f"{self.prefix}tasks:by:", f"{self.prefix}tasks:open:"]
        marked = await self._do(self._script(_RENEW)(keys=keys, args=args))
        return {key.removeprefix(f"{self.prefix}task:") for key in marked}

    async def ask_input(self, task_id: str, requests: dict[str, Any], state: str | None, now: float) -> bool:
        args = ["status", "input_required", "updated", repr(now), "input_requests", json.dumps(requests),
                "input_responses", "{}", "request_state", json.dumps(state)]  # fmt: skip
        return bool(await self._do(self._script(_ASK)(keys=[self._key(task_id)], args=args)))

    async def answer(self, task_id: str, responses: dict[str, Any], now: float) -> TaskRecord | None:
        """As SQLite's: the answers merged in one optimistic transaction (WATCH), retried if another wrote."""
        key = self._key(task_id)

        async def merge() -> TaskRecord | None:
            async with self._shared.aclient().pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        found = await pipe.hgetall(key)
                        if not found:
                            return None
                        task = _record(found)
                        if task.status != "input_required":
                            return task
                        pending, answered = dict(task.input_requests or {}), dict(task.input_responses or {})
                        for name in [k for k in responses if k in pending]:
                            answered[name] = responses[name]
                            del pending[name]
                        patch = {"status": "input_required" if pending else "working", "updated": repr(now),
                                 "input_requests": json.dumps(pending or None), "input_responses": json.dumps(answered)}
                        pipe.multi()
                        pipe.hset(key, mapping=patch)
                        await pipe.execute()
                        return _record({**found, **patch})
                    except WatchError:
                        continue

        return await self._do(merge())

    async def request_cancel(self, task_id: str) -> None:
        await self._do(self._script(_CANCEL)(keys=[self._key(task_id)], args=[]))

    async def aclose(self) -> None:
        await self._shared.aclose()

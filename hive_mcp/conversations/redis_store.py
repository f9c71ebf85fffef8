"""Conversations in Redis (or Valkey): every instance behind a load balancer continues any conversation.

Keys live under one prefix (`hive-mcp:` by default):

* `{p}conv:{id}`, a hash: the thread (`owner`, `lineage`, `tip`, `last_used_us`,
  and `data`, the JSON of the rest). Expires after `ttl_s` without use.
* `{p}gone:{id}`: `expired TAB owner`, set with a longer expiry (`ttl_s +
  tombstone_s`) at each use, so that an id whose thread expired reads as
  expired to its owner, not unknown; eviction sets it to `evicted TAB owner`,
  deletion removes it.
* `{p}lin:{lineage}:m` / `:t` / `:members`: the messages (`parent TAB turn
  TAB JSON`: a read walks the chain on the server), the turns, and the threads
  of one lineage (a fresh thread and
  its forks, which share messages). Each use of a member renews their expiry,
  so they outlive every member; they are freed when the last member is
  deleted or expires (a deleted fork's own messages wait for that).
* `{p}writer:{id}`: the token of the call writing thread `id` now (SET NX with
  a short lease its holder renews while the call runs: the store's `writer`
  turn), deleted by its holder only (compare and delete), or gone when the
  lease ends because the holder died or lost Redis.
* `{p}index` and `{p}owner:{owner}`: sorted sets of thread ids by last use,
  for listings and for evicting the oldest-used beyond `max_conversations`.
  Entries of expired threads are removed when met.

Every write is one Lua script, so it is atomic on the server: an append
checks that the tip is still the one the caller read, then writes the turn,
its messages and the new tip, and renews the expiries; a stale tip writes
nothing (`ConversationConflict`). Scripts name some keys they compute from
the prefix, which a single server (or a replicated one) allows and Redis
Cluster does not. Times come from the store's clock; instances' clocks only
need to agree to within the listing order they should show.

Any Redis failure (refused, timed out, reset) is `StoreError`, naming the URL
without its credentials.
"""

from __future__ import annotations

import json
import math
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

from redis.exceptions import RedisError

from ..defaults import REDIS_PREFIX
from ..state_store import StateStore, redacted_url, says_away
from ..state_url import required_state_url
from .errors import ConversationConflict, ExpiredConversation, StoreError, UnknownConversation
from .records import ChatMessage, Message, Thread, ThreadPage, ThreadView, Turn, decode_cursor, from_us, page_of, to_us
from .store import ConversationStore, Stored

__all__ = ["RedisStore", "redacted_url"]

T = TypeVar("T")

# Shared by the scripts: renew the expiry of a thread, its tombstone and its lineage's keys.
_RENEW = """
local function renew(p, id, lineage, owner, ttl, gone_ttl)
  local keys = {p .. 'conv:' .. id, p .. 'lin:' .. lineage .. ':m', p .. 'lin:' .. lineage .. ':t',
                p .. 'lin:' .. lineage .. ':members'}
  for _, k in ipairs(keys) do
    if ttl > 0 then redis.call('PEXPIRE', k, ttl) else redis.call('PERSIST', k) end
  end
  redis.call('SET', p .. 'gone:' .. id, 'expired\t' .. owner, 'PX', gone_ttl)
end
local function write(p, lineage, n, base)
  -- ARGV[base..]: n messages as (id, record) pairs, then a turn (id, record) or ('', '')
  -- each record is 'parent TAB turn TAB message JSON'
  for i = 0, n - 1 do
    redis.call('HSET', p .. 'lin:' .. lineage .. ':m', ARGV[base + 2 * i], ARGV[base + 2 * i + 1])
  end
  local turn = ARGV[base + 2 * n]
  if turn ~= '' then redis.call('HSET', p .. 'lin:' .. lineage .. ':t', turn, ARGV[base + 2 * n + 1]) end
end
local function index(p, id, owner, used)
  redis.call('ZADD', p .. 'index', used, id)
  redis.call('ZADD', p .. 'owner:' .. owner, used, id)
end
"""

# ARGV: p, id, expected tip, new tip, last_used_us, data, ttl, gone_ttl, n, then messages and turn.
_ADVANCE = _RENEW + """
local p, id = ARGV[1], ARGV[2]
local conv = p .. 'conv:' .. id
if redis.call('EXISTS', conv) == 0 then return 'gone' end
if redis.call('HGET', conv, 'tip') ~= ARGV[3] then return 'conflict' end
local lineage, owner = redis.call('HGET', conv, 'lineage'), redis.call('HGET', conv, 'owner')
write(p, lineage, tonumber(ARGV[9]), 10)
redis.call('HSET', conv, 'tip', ARGV[4], 'last_used_us', ARGV[5], 'data', ARGV[6])
renew(p, id, lineage, owner, tonumber(ARGV[7]), tonumber(ARGV[8]))
index(p, id, owner, ARGV[5])
return 'ok'
"""

# ARGV: p, id, owner, lineage, tip, last_used_us, data, ttl, gone_ttl, source id or '', fork point or '', n, ...
_INSERT = _RENEW + """
local p, id, owner, lineage, used = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[6]
local ttl, gone_ttl, source, point = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10], ARGV[11]
if source ~= '' then
  local sconv = p .. 'conv:' .. source
  if redis.call('EXISTS', sconv) == 0 then return 'gone' end
  if point ~= '' and redis.call('HEXISTS', p .. 'lin:' .. lineage .. ':m', point) == 0 then return 'gone' end
  local sowner = redis.call('HGET', sconv, 'owner')
  redis.call('HSET', sconv, 'last_used_us', used)
  renew(p, source, lineage, sowner, ttl, gone_ttl)
  index(p, source, sowner, used)
end
write(p, lineage, tonumber(ARGV[12]), 13)
redis.call('HSET', p .. 'conv:' .. id, 'owner', owner, 'lineage', lineage, 'tip', ARGV[5], 'last_used_us', used,
           'data', ARGV[7])
redis.call('SADD', p .. 'lin:' .. lineage .. ':members', id)
renew(p, id, lineage, owner, ttl, gone_ttl)
index(p, id, owner, used)
return 'ok'
"""

# ARGV: p, id, reason ('' when deleted on request), gone_ttl.
_DROP = """
local p, id = ARGV[1], ARGV[2]
local conv = p .. 'conv:' .. id
local owner, lineage = redis.call('HGET', conv, 'owner'), redis.call('HGET', conv, 'lineage')
redis.call('DEL', conv)
redis.call('ZREM', p .. 'index', id)
if ARGV[3] == '' then redis.call('DEL', p .. 'gone:' .. id)
else redis.call('SET', p .. 'gone:' .. id, ARGV[3] .. '\t' .. (owner or ''), 'PX', ARGV[4]) end
if not owner then return 0 end
redis.call('ZREM', p .. 'owner:' .. owner, id)
local members = p .. 'lin:' .. lineage .. ':members'
redis.call('SREM', members, id)
if redis.call('SCARD', members) == 0 then
  redis.call('DEL', members, p .. 'lin:' .. lineage .. ':m', p .. 'lin:' .. lineage .. ':t')
end
return 1
"""

# Shared by the scripts that read a chain: `walk` calls `on_message(id, record)` for each message of thread `conv`
# from its tip back, and `on_turn(record)` once for each turn they name (false for a turn not stored).
_WALK = """
local function walk(p, conv, on_message, on_turn)
  local lin = p .. 'lin:' .. redis.call('HGET', conv, 'lineage')
  local seen = {}
  local at = redis.call('HGET', conv, 'tip')
  while at and at ~= '' do
    local rec = redis.call('HGET', lin .. ':m', at)
    if not rec then break end
    on_message(at, rec)
    local first = string.find(rec, '\\t', 1, true)
    local second = string.find(rec, '\\t', first + 1, true)
    local turn = string.sub(rec, first + 1, second - 1)
    if turn ~= '' and not seen[turn] then
      seen[turn] = true
      on_turn(redis.call('HGET', lin .. ':t', turn))
    end
    at = string.sub(rec, 1, first - 1)
  end
end
"""

# ARGV: p, id. The thread, then its chain's records from the tip back and its turns, each joined by
# newlines (JSON text never holds a raw newline) into one string: one round trip, one reply to parse.
# The walk runs on the server, so a lineage's other forks cost nothing to read.
_READ = _WALK + """
local p, id = ARGV[1], ARGV[2]
local conv = p .. 'conv:' .. id
local t = redis.call('HGETALL', conv)
if #t == 0 then return {t, redis.call('GET', p .. 'gone:' .. id) or ''} end
local records, turns = {}, {}
walk(p, conv, function(at, rec) records[#records + 1] = at .. '\\t' .. rec end,
     function(turn) turns[#turns + 1] = turn end)
return {t, '', table.concat(records, '\\n'), table.concat(turns, '\\n')}
"""

# ARGV: p, id. How many turns of the thread's chain had no price (`usage.cost_usd` null), as `advanced` counts
# them, for a record stored before it held that count; 0 for a thread that is gone.
_UNPRICED = _WALK + """
local conv = ARGV[1] .. 'conv:' .. ARGV[2]
if redis.call('EXISTS', conv) == 0 then return 0 end
local unpriced = 0
walk(ARGV[1], conv, function() end, function(turn)
  if not turn then return end
  local cost = (cjson.decode(turn).usage or {}).cost_usd
  if cost == nil or cost == cjson.null then unpriced = unpriced + 1 end
end)
return unpriced
"""


# ARGV: the writer key, its holder's token.
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

# KEYS: writer keys; ARGV: each one's holder's token and lease (ms), in pairs. A key another token holds is left.
_RENEW_WRITERS = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[2 * i - 1] then redis.call('PEXPIRE', key, ARGV[2 * i]) end
end
return 0
"""


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _thread_of(thread_id: str, h: dict[str, str], data: dict[str, Any] | None = None) -> Thread:
    """The thread of record `h`, the JSON of whose `data` field is `data` when that has been read already."""
    data = json.loads(h["data"]) if data is None else data
    return Thread(
        id=thread_id, owner=h["owner"], lineage=h["lineage"], tip=h["tip"] or None,
        last_used=from_us(int(h["last_used_us"])), created=from_us(data.pop("created_us")), **data,
    )  # fmt: skip


def _data(thread: Thread) -> str:
    d = thread.model_dump(include={"forked_from", "forked_from_thread", "turns", "bytes", "cost_usd", "unpriced_turns", "models"})
    return json.dumps({**d, "created_us": to_us(thread.created)})


def _records(messages: list[Stored], turn: Turn | None) -> list[str]:
    out: list[str] = [str(len(messages))]
    for m, text in messages:
        out += [m.id, f"{m.parent_id or ''}\t{m.turn_id or ''}\t{text}"]
    out += [turn.id, turn.model_dump_json()] if turn is not None else ["", ""]
    return out


class RedisStore(ConversationStore):
    """The Redis backend, for `redis://`, `rediss://` (TLS) and `unix://` URLs."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = REDIS_PREFIX,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        required_state_url(url)
        self.name = redacted_url(url)
        self.prefix = prefix
        # The process's state store: its pool, its timeouts, and its breaker (one warning per outage for
        # every store; while open, every operation is a StoreError at once, asking nothing).
        self._shared = StateStore.shared(url)
        self._scripts: dict[tuple[int, str], Any] = {}
        self._shared.add_listener(self._turns.wake)  # Redis is back: turns whose end it missed go back now

    @property
    def _r(self) -> Any:
        """The process's client of the state store (its commands go through `_do`)."""
        return self._shared.aclient()

    def _script(self, source: str) -> Any:
        client = self._r
        key = (id(client), source)
        found = self._scripts.get(key)
        if found is None:
            found = self._scripts[key] = client.register_script(source)
        return found

    async def _do(self, call: Coroutine[Any, Any, T], operation: str) -> T:
        if not self._shared.usable():
            call.close()  # never sent
            raise StoreError(self.name, operation, "the state store is unavailable", told=True)
        try:
            out = await self._shared.arun(call)  # on the state loop, where the pool's connections live
        except (RedisError, OSError) as exc:
            away = says_away(exc)
            if away:
                self._shared.failed(exc)
            raise StoreError(self.name, operation, exc, told=away) from None
        self._shared.worked()
        return out

    def _ttls(self) -> tuple[int, int]:
        """Expiries in ms: the thread's (0: none, when the TTL is off) and its tombstone's (always bounded)."""
        ttl = self.limits.ttl_s
        gone = max(1, int(((ttl or 0.0) + self.limits.tombstone_s) * 1000))
        return (0 if ttl is None else max(1, int(ttl * 1000))), gone

    async def count(self) -> int:
        floor = self._floor_us(None)
        return int(await self._do(self._r.zcount(f"{self.prefix}index", floor, "+inf"), "count conversations"))

    async def _take_writer(self, conversation_id: str, token: str, lease_s: float) -> bool:
        key, lease_ms = f"{self.prefix}writer:{conversation_id}", max(1, math.ceil(lease_s * 1000))
        return bool(await self._do(self._r.set(key, token, nx=True, px=lease_ms), "take a conversation's turn"))

    async def _drop_writer(self, conversation_id: str, token: str) -> None:
        unlock = self._script(_UNLOCK)(keys=[f"{self.prefix}writer:{conversation_id}"], args=[token])
        await self._do(unlock, "end a conversation's turn")

    async def _renew_writers(self, held: list[tuple[str, str, float]]) -> None:
        keys = [f"{self.prefix}writer:{conversation_id}" for conversation_id, _, _ in held]
        args = [x for _, token, lease_s in held for x in (token, max(1, math.ceil(lease_s * 1000)))]
        await self._do(self._script(_RENEW_WRITERS)(keys=keys, args=args), "renew a conversation's turn")

    async def aclose(self) -> None:
        await super().aclose()
        self._shared.remove_listener(self._turns.wake)
        await self._shared.aclose()

    # -- primitives ----------------------------------------------------------

    def _missing(self, conversation_id: str, gone: str | None) -> Exception:
        """What a thread that is not there raises: its tombstone (`reason TAB owner`) tells how it went."""
        if not gone:
            return UnknownConversation(conversation_id)
        reason, _, owner = gone.partition("\t")
        return ExpiredConversation(conversation_id, reason, owner or None)

    async def _counted(self, thread_id: str, h: dict[str, str], turns: list[Turn] | None = None) -> Thread:
        """The thread of record `h`. A record stored before threads counted their unpriced turns has none: its
        count is its chain's (from `turns`, the chain's, when read already), as SQLite's migration m004 counts
        them for its older rows, never 0 for not knowing; its next turn writes the count with the record."""
        data = json.loads(h["data"])
        if "unpriced_turns" not in data:
            if turns is not None:
                data["unpriced_turns"] = sum(t.usage.cost_usd is None for t in turns)
            else:
                counting = self._script(_UNPRICED)(args=[self.prefix, thread_id])
                data["unpriced_turns"] = await self._do(counting, "read a conversation")
        return _thread_of(thread_id, h, data)

    async def _thread(self, conversation_id: str) -> Thread:
        p = self.prefix
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(f"{p}conv:{conversation_id}")
        pipe.get(f"{p}gone:{conversation_id}")
        h, gone = await self._do(pipe.execute(), "read a conversation")
        if not h:
            raise self._missing(conversation_id, gone)
        return await self._counted(conversation_id, h)

    async def _view(self, conversation_id: str) -> ThreadView:
        reply = await self._do(self._script(_READ)(args=[self.prefix, conversation_id]), "read a conversation")
        if not reply[0]:
            raise self._missing(conversation_id, reply[1] or None)
        chain: list[Message] = []
        for record in reversed(reply[2].split("\n") if reply[2] else []):
            at, parent, turn_id, text = record.split("\t", 3)
            body = ChatMessage.model_validate_json(text)
            chain.append(Message(id=at, parent_id=parent or None, turn_id=turn_id or None, body=body))
        turns = [Turn.model_validate_json(t) for t in reversed(reply[3].split("\n"))] if reply[3] else []
        thread = await self._counted(conversation_id, _pairs(reply[0]), turns)
        return ThreadView(thread=thread, messages=chain, turns=turns)

    async def _insert(self, thread: Thread, messages: list[Stored], turn: Turn | None, *, touch: str | None) -> None:
        ttl, gone_ttl = self._ttls()
        args = [
            self.prefix, thread.id, thread.owner, thread.lineage, thread.tip or "", to_us(thread.last_used),
            _data(thread), ttl, gone_ttl, touch or "", (thread.forked_from or "") if touch else "",
            *_records(messages, turn),
        ]  # fmt: skip
        outcome = await self._do(self._script(_INSERT)(args=args), "store a new conversation")
        if outcome == "gone":
            raise ExpiredConversation(touch or thread.id)
        await self._do(self._prune(thread), "evict old conversations")

    async def _prune(self, thread: Thread) -> None:
        """Forget index entries of expired threads, then evict the oldest-used beyond the cap."""
        p = self.prefix
        cutoff = self._cutoff_us()
        if cutoff is not None:
            pipe = self._r.pipeline(transaction=False)
            pipe.zremrangebyscore(f"{p}index", "-inf", f"({cutoff}")
            pipe.zremrangebyscore(f"{p}owner:{thread.owner}", "-inf", f"({cutoff}")
            await pipe.execute()
        cap = self.limits.max_conversations
        if cap is None:
            return
        count = await self._r.zcard(f"{p}index")
        if count <= cap:
            return
        oldest = await self._r.zrange(f"{p}index", 0, count - cap)
        victims = [v for v in oldest if v != thread.id][: count - cap]
        _, gone_ttl = self._ttls()
        for victim in victims:
            await self._script(_DROP)(args=[p, victim, "evicted", gone_ttl])

    async def _advance(
        self, thread: Thread, expected_tip: str | None, messages: list[Stored], turn: Turn | None
    ) -> None:
        ttl, gone_ttl = self._ttls()
        args = [
            self.prefix, thread.id, expected_tip or "", thread.tip or "", to_us(thread.last_used), _data(thread),
            ttl, gone_ttl, *_records(messages, turn),
        ]  # fmt: skip
        outcome = await self._do(self._script(_ADVANCE)(args=args), "append to a conversation")
        if outcome == "conflict":
            raise ConversationConflict(thread.id)
        if outcome == "gone":
            gone = await self._do(self._r.get(f"{self.prefix}gone:{thread.id}"), "read a conversation")
            raise self._missing(thread.id, gone)

    async def _list(
        self, *, owner: str | None, limit: int, cursor: str | None, model: str | None, since: datetime | None
    ) -> ThreadPage:
        key = f"{self.prefix}index" if owner is None else f"{self.prefix}owner:{owner}"
        floor = self._floor_us(since)
        top: float | str = "+inf"
        after: str | None = None
        if cursor is not None:
            used, after = decode_cursor(cursor)
            top = used
        items: list[Thread] = []
        stale: list[str] = []
        offset, batch = 0, max(limit + 1, 32)
        while len(items) <= limit:
            window = self._r.zrevrangebyscore(key, top, floor, start=offset, num=batch, withscores=True)
            rows = await self._do(window, "list conversations")
            if not rows:
                break
            offset += len(rows)
            ids = [m for m, score in rows if not (after is not None and int(score) == top and m >= after)]
            pipe = self._r.pipeline(transaction=False)
            for thread_id in ids:
                pipe.hgetall(f"{self.prefix}conv:{thread_id}")
            for thread_id, h in zip(ids, await self._do(pipe.execute(), "list conversations"), strict=True):
                if not h:
                    stale.append(thread_id)
                    continue
                thread = await self._counted(thread_id, h)
                if (owner is None or thread.owner == owner) and (model is None or model in thread.models):
                    items.append(thread)
        if stale:
            await self._do(self._r.zrem(key, *stale), "list conversations")
        return page_of(items, limit)

    async def _delete(self, thread: Thread) -> None:
        await self._do(self._script(_DROP)(args=[self.prefix, thread.id, "", 1]), "delete a conversation")

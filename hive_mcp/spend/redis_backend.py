"""The ledger in Redis (or Valkey): totals and reservations shared by every instance on one server.

Keys live under `{prefix}` (`hive-mcp:spend:` by default):

* `{p}spent:{period}:{scope}`: micro-USD settled in a period (`d:2026-12-01` or
  `m:2026-12`) by a scope (`all`, `caller:NAME`, `model:GROUP`, ...: those
  `Reservation.charged` gives); every call adds to each of its scopes in both
  periods, budgets or not.
* `{p}held:{period}:{scope}`: micro-USD reserved by calls in flight.
* `{p}res` (hash id -> `amount`, then the held keys, newline-separated) and
  `{p}resexp` (sorted set id -> lease expiry, ms): the reservations.
* `{p}settled:{id}`: set when call `id` is settled, so a call replayed from
  the journal counts once (expires with the daily totals).
* `{p}day:{day}` (hash `caller US group US field` -> count) and `{p}days`
  (sorted set of days): daily totals; `{p}calls` (sorted set by time): calls.

The check and the reservation are ONE Lua script: it sweeps expired leases,
checks every applicable budget (spent + held + this amount <= limit) and then
increments every held counter, or increments none. Redis runs a script alone,
so two instances can never both take the last dollar. Settling and releasing
are scripts too (a reservation is dropped once, whichever comes first: its
settlement, its release or its lease's end). Times are the callers' clocks, in
ms; instances' clocks need only agree to within a lease's margin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from redis.exceptions import RedisError

from ..defaults import REDIS_PREFIX, SPEND_CALLS_DAYS, SPEND_KEEP_DAYS
from ..state_store import StateStore, says_away
from .budgets import Budget, period_key, scope_of
from .ledger import Backend, CallRecord, Refused, Reservation, TotalRow

__all__ = ["RedisBackend"]

T = TypeVar("T")
US = "\x1f"
_FIELDS = ("cost", "calls", "unpriced", "input", "output")

_SWEEP = """
local function sweep(p, now)
  local gone = redis.call('ZRANGEBYSCORE', p .. 'resexp', '-inf', now)
  for _, id in ipairs(gone) do drop(p, id) end
end
"""
# A reservation's record: one line "amount key" per held counter. A record written before reservations held
# several groups (its amount on the first line, then its keys) is dropped too.
_DROP = """
local function drop(p, id)
  local rec = redis.call('HGET', p .. 'res', id)
  if rec then
    local old = nil
    for line in string.gmatch(rec, '[^\\n]+') do
      local amount, key = string.match(line, '^(%d+) (.+)$')
      if amount then redis.call('DECRBY', key, amount)
      elseif old == nil then old = line
      else redis.call('DECRBY', line, old) end
    end
    redis.call('HDEL', p .. 'res', id)
  end
  redis.call('ZREM', p .. 'resexp', id)
end
"""
# ARGV: p, id, now_ms, expires_ms, n, then n quads (spent key, held key, limit, amount held against it), then
# pairs (held key, amount) of every counter the call holds (budgets or not, as the spent keys: a budget added
# later sees what is in flight).
_RESERVE = _DROP + _SWEEP + """
local p, id, now, expires, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
sweep(p, now)
local left = {}
for i = 0, n - 1 do
  local spent = tonumber(redis.call('GET', ARGV[6 + 4 * i]) or '0')
  local held = tonumber(redis.call('GET', ARGV[7 + 4 * i]) or '0')
  local room = tonumber(ARGV[8 + 4 * i]) - spent - held
  local need = tonumber(ARGV[9 + 4 * i])
  if need > room then return {i + 1, room} end
  left[i + 1] = room - need
end
local rec = {}
for i = 6 + 4 * n, #ARGV, 2 do
  redis.call('INCRBY', ARGV[i], ARGV[i + 1])
  table.insert(rec, ARGV[i + 1] .. ' ' .. ARGV[i])
end
redis.call('HSET', p .. 'res', id, table.concat(rec, '\\n'))
redis.call('ZADD', p .. 'resexp', expires, id)
table.insert(left, 1, 0)
return left
"""
# ARGV: p, id, cost, ttl_s, day key, day score, calls member, calls score, calls cutoff, days cutoff, n_fields,
# then the hash fields and increments, then the spent keys.
_SETTLE = _DROP + """
local p, id, cost, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
drop(p, id)
if not redis.call('SET', p .. 'settled:' .. id, '1', 'NX', 'EX', ttl) then return 0 end
local nf = tonumber(ARGV[11])
for i = 0, nf - 1 do redis.call('HINCRBY', ARGV[5], ARGV[12 + 2 * i], ARGV[13 + 2 * i]) end
redis.call('EXPIRE', ARGV[5], ttl)
redis.call('ZADD', p .. 'days', ARGV[6], ARGV[5])
redis.call('ZREMRANGEBYSCORE', p .. 'days', '-inf', '(' .. ARGV[10])
redis.call('ZADD', p .. 'calls', ARGV[8], ARGV[7])
redis.call('ZREMRANGEBYSCORE', p .. 'calls', '-inf', '(' .. ARGV[9])
for i = 12 + 2 * nf, #ARGV do
  redis.call('INCRBY', ARGV[i], cost)
  redis.call('EXPIRE', ARGV[i], ttl)
end
return 1
"""
_RELEASE = _DROP + "drop(ARGV[1], ARGV[2]) return 1"
# ARGV: p, now_ms, then keys to read.
_STATE = _DROP + _SWEEP + """
sweep(ARGV[1], ARGV[2])
local out = {}
for i = 3, #ARGV do out[i - 2] = redis.call('GET', ARGV[i]) or '0' end
return out
"""


def _period(period: str, when: datetime) -> str:
    return ("d:" if period == "day" else "m:") + period_key(period, when)  # type: ignore[arg-type]


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _day_score(day: str) -> int:
    return int(day.replace("-", ""))


class RedisBackend(Backend):
    """The ledger on the process's state store (`StateStore.shared(url)`): its pool, its timeouts and its
    breaker; each operation is sent on the state loop and waited for (the ledger is called from threads).
    While the breaker is open every operation fails at once (an `OSError`), asking nothing."""

    def __init__(self, url: str, *, prefix: str = f"{REDIS_PREFIX}spend:", keep_days: int = SPEND_KEEP_DAYS,
                 calls_days: int = SPEND_CALLS_DAYS) -> None:
        self.shared = StateStore.shared(url)
        self.name = self.shared.name
        self.p = prefix
        self.keep_days = keep_days
        self.calls_days = calls_days
        client = self.shared.aclient()
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)
        self._state = client.register_script(_STATE)

    @property
    def _r(self) -> Any:
        """The process's client of the state store (a forked child's own)."""
        return self.shared.aclient()

    def _keys(self, b: Budget, when: datetime) -> tuple[str, str]:
        period, scope = _period(b.period, when), scope_of(b)
        return f"{self.p}spent:{period}:{scope}", f"{self.p}held:{period}:{scope}"

    def _spent(self, when: datetime, scopes: list[str]) -> list[str]:
        """The counters a call settled is charged to: each of its scopes, in the day and the month of `when`."""
        return [f"{self.p}spent:{_period(period, when)}:{scope}" for period in ("day", "month") for scope in scopes]

    def reserve(self, r: Reservation, budgets: list[Budget]) -> dict[str, int]:
        args: list[Any] = [self.p, r.id, _ms(r.start), _ms(r.expires), len(budgets)]
        for b in budgets:
            args += [*self._keys(b, r.start), b.limit, r.amount_for(b)]
        for period in ("day", "month"):
            for scope, amount in r.holds():
                args += [f"{self.p}held:{_period(period, r.start)}:{scope}", amount]
        out = [int(x) for x in self._call(self._reserve, args)]
        if out[0] != 0:
            b = budgets[out[0] - 1]
            raise Refused(b, max(out[1], 0), r.amount_for(b))
        return {b.id: left for b, left in zip(budgets, out[1:])}

    def settle(self, r: Reservation, record: CallRecord) -> None:
        day = period_key("day", r.start)
        base = f"{record.caller}{US}{record.group}{US}"
        counts = (record.cost, 1, int(record.unpriced), record.input_tokens, record.output_tokens)
        fields: list[Any] = []
        for name, value in zip(_FIELDS, counts):
            fields += [base + name, value]
        spent = self._spent(r.start, r.charged(record.group))  # the group that answered
        member = json.dumps([r.id, record.time.timestamp(), *_row(record)])
        cutoff_calls = _ms(record.time - timedelta(days=self.calls_days))
        cutoff_days = _day_score(period_key("day", record.time - timedelta(days=self.keep_days)))
        args = [
            self.p, r.id, record.cost, (self.keep_days + 1) * 86400, f"{self.p}day:{day}", _day_score(day), member,
            _ms(record.time), cutoff_calls, cutoff_days, len(_FIELDS), *fields, *spent,
        ]  # fmt: skip
        self._call(self._settle, args)

    def release(self, r: Reservation) -> None:
        self._call(self._release, [self.p, r.id])

    def state(self, budgets: list[Budget], now: datetime) -> dict[str, tuple[int, int]]:
        keys = [k for b in budgets for k in self._keys(b, now)]
        out = [int(x) for x in self._call(self._state, [self.p, _ms(now), *keys])]
        return {b.id: (out[2 * i], out[2 * i + 1]) for i, b in enumerate(budgets)}

    def totals(self, since_day: str) -> list[TotalRow]:
        async def read() -> list[TotalRow]:
            days = await self._r.zrangebyscore(f"{self.p}days", _day_score(since_day), "+inf")
            pipe = self._r.pipeline(transaction=False)
            for key in days:
                pipe.hgetall(key)
            rows: list[TotalRow] = []
            for key, counts in zip(days, await pipe.execute()):
                day = key.rsplit(":", 1)[-1]
                found: dict[tuple[str, str], dict[str, int]] = {}
                for field, value in counts.items():
                    caller, group, name = field.split(US)
                    found.setdefault((caller, group), {})[name] = int(value)
                rows += [TotalRow(day, c, g, *(v.get(f, 0) for f in _FIELDS)) for (c, g), v in sorted(found.items())]
            return rows

        return self._ask(read)

    def calls(self, since: datetime) -> list[CallRecord]:
        members = self._ask(lambda: self._r.zrangebyscore(f"{self.p}calls", _ms(since), "+inf"))
        out = []
        for m in members:
            _, ts, *rest = json.loads(m)
            added = [*rest[10:12], False, None][:2]  # estimated and called: absent from rows written before them
            out.append(CallRecord(datetime.fromtimestamp(ts, timezone.utc), *rest[:9], bool(rest[9]), bool(added[0]),
                                  added[1]))  # fmt: skip
        return out

    def _call(self, script: Any, args: list[Any]) -> Any:
        return self._ask(lambda: script(args=args, client=self._r))

    def _ask(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """`fn()` against Redis, through the breaker; an `OSError` naming the store when it is open or fails."""
        if not self.shared.usable():
            raise OSError(f"{self.name}: the state store is unavailable")
        try:
            out = self.shared.run(fn())
        except (RedisError, OSError) as exc:
            if says_away(exc):  # not an answer (an error Redis answers leaves the breaker closed)
                self.shared.failed(exc)
            raise OSError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        self.shared.worked()
        return out

    def close(self) -> None:
        """Nothing: the pool is the process's, shared with the other stores."""


def _row(record: CallRecord) -> list[Any]:
    return [record.caller, record.group, record.deployment, record.input_tokens, record.output_tokens,
            record.cached_tokens, record.reasoning_tokens, record.cost, record.conversation_id, record.unpriced,
            record.estimated, record.called]

"""Results in Redis (or Valkey), so every instance behind a load balancer serves any caller's result.

Keys under one prefix (`hive-mcp:` by default): `{p}result:{id}`, a hash (`owner`, `created`, `expires`,
`tokens`, `size`, `bounds`, `text`) that Redis drops when its TTL ends; `{p}results:{owner}` and `{p}results`,
sorted sets of ids by creation for the listings, whose entries older than the TTL are removed at each write
(and entries whose hash is gone are skipped). The expiry a read honours is the one stored in the hash, by the
store's clock. Commands go through the process's one client of the state store (`StateStore.shared`): its
breaker tells of an outage once for every store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Coroutine
from typing import Any, TypeVar

from redis.exceptions import RedisError

from ..defaults import REDIS_PREFIX
from ..state_store import StateStore, redacted_url, says_away
from ..state_url import required_state_url
from .store import ResultStore, ResultStoreError, ResultSummary, StoredResult

__all__ = ["RedisResults"]

T = TypeVar("T")

_FIELDS = ("owner", "created", "expires", "tokens", "size", "bounds")


class RedisResults(ResultStore):
    """The Redis backend, for `redis://`, `rediss://` (TLS) and `unix://` URLs."""

    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        required_state_url(url)
        self.name = redacted_url(url)
        self.prefix = prefix
        self._shared = StateStore.shared(url)

    async def _do(self, call: Coroutine[Any, Any, T], operation: str) -> T:
        if not self._shared.usable():
            call.close()  # never sent
            raise ResultStoreError(self.name, operation, "the state store is unavailable", told=True)
        try:
            out = await self._shared.arun(call)
        except (RedisError, OSError) as exc:
            away = says_away(exc)
            if away:
                self._shared.failed(exc)
            raise ResultStoreError(self.name, operation, exc, told=away) from None
        self._shared.worked()
        return out

    def _indexes(self, owner: str) -> tuple[str, str]:
        return f"{self.prefix}results:{owner}", f"{self.prefix}results"

    async def _put(self, kept: StoredResult) -> None:
        ttl_ms = max(1, math.ceil(self.ttl_s * 1000))
        key = f"{self.prefix}result:{kept.id}"
        record = {
            "owner": kept.owner, "created": repr(kept.created), "expires": repr(kept.expires),
            "tokens": kept.tokens, "size": len(kept.text.encode()), "bounds": json.dumps(kept.bounds),
            "text": kept.text,
        }  # fmt: skip

        async def put() -> None:
            async with self._shared.aclient().pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=record).pexpire(key, ttl_ms)
                for index in self._indexes(kept.owner):
                    pipe.zremrangebyscore(index, "-inf", kept.created - self.ttl_s)
                    pipe.zadd(index, {kept.id: kept.created}).pexpire(index, ttl_ms)
                await pipe.execute()

        await self._do(put(), "keep a result")

    async def _get(self, result_id: str) -> StoredResult | None:
        found = await self._do(self._shared.aclient().hgetall(f"{self.prefix}result:{result_id}"), "read a result")
        if not found:
            return None
        return StoredResult(
            result_id, found["owner"], found["text"], json.loads(found["bounds"]), int(found["tokens"]),
            float(found["created"]), float(found["expires"]),
        )  # fmt: skip

    async def _list(self, owner: str | None, limit: int, now: float) -> list[ResultSummary]:
        index = self._indexes(owner)[0] if owner is not None else f"{self.prefix}results"

        async def listing() -> list[ResultSummary]:
            client = self._shared.aclient()
            ids = await client.zrevrangebyscore(index, "+inf", now - self.ttl_s, start=0, num=limit * 2 + 8)
            async with client.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.hmget(f"{self.prefix}result:{rid}", *_FIELDS)
                rows = await pipe.execute()
            out = []
            for rid, row in zip(ids, rows):
                if row[0] is None or float(row[2]) <= now:
                    continue  # dropped by Redis, or past its expiry by the store's clock
                out.append(ResultSummary(rid, float(row[1]), float(row[2]), int(row[4]), len(json.loads(row[5])),
                                         int(row[3])))  # fmt: skip
            return out[:limit]

        return await self._do(listing(), "list results")

    async def aclose(self) -> None:
        await self._shared.aclose()

"""Failure dumps in Redis (or Valkey): what every instance lists and reads when HIVE_MCP_STATE_URL is set.

The same ids, fields, redaction, retention limits and API as the directory
(`RedisDumpStore` is a `DumpStore` whose storage primitives are Redis keys):

- ``<prefix>dump:<id>``: the dump's JSON, exactly the bytes a file would hold;
- ``<prefix>dumps``: a sorted set of every id, all at score 0, so it orders by
  id, which is by time (ids start with the timestamp);
- ``<prefix>dump-sizes``: id -> size in bytes, for the byte limit.

A dump is stored by one Lua script, atomic on the server: its key, its index
entry and its size together, or nothing (a connection lost, an error answered).
The script takes a name only if it is free, so two instances never write the
same id; an id found holding another dump's bytes is indexed as it stands (a
key that no listing saw is listed, and pruned, from then on).

Redis unavailable: the dump goes to the local directory (the store's
`directory`) and is not lost: this instance lists and reads it alongside the
shared ones, and the next write that reaches Redis moves the local dumps there.
Redis is asked through the process's `StateStore` (its pool, timeouts and
breaker; dumps are written from provider threads, so each command is sent on
the state loop and waited for): one warning per outage for every store, and no
call waits on a Redis the breaker knows is away. A Redis that answers with an
error (out of memory, a read-only replica) is no outage: the breaker, which
every store shares, stays closed; the dump goes to the local directory as in
an outage, with one warning of its own until Redis takes a dump again. Opened with `degrade=False` (the
command line), it never falls back: every failure raises `StateUnavailable`, and the breaker is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..outage import Outage
from ..state_store import StateStore, says_away
from .format import DumpCorrupt, DumpLookupError, DumpNotFound, FailureDump
from ..defaults import DUMP_MAX_COUNT, REDIS_PREFIX
from .store import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DumpStore, logger

__all__ = ["RedisDumpStore"]

# KEYS: the dump's key, the index, the sizes; ARGV[1]: the id. Redis does not undo a script's writes when a later
# command fails, so keys of another type are refused before anything is written; a script refused for memory is
# refused at its first write, and one that has written runs to its end.
_CHECKED = """
local kinds = {'string', 'zset', 'hash'}
for i = 1, 3 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and kind ~= kinds[i] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind)
  end
end
local function index(size)
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], size)
end
"""

# ARGV[2]: the payload. 1: the id holds these bytes, indexed and sized; 0: it holds another dump (indexed now).
_PUT = _CHECKED + """
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[2])
  held = ARGV[2]
end
index(string.len(held))
if held == ARGV[2] then return 1 end
return 0
"""

# ARGV[2]: the payload. 1: written over the dump of the id (indexed and sized); 0: there is none.
_REPLACE = _CHECKED + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
index(string.len(ARGV[2]))
return 1
"""


class RedisDumpStore(DumpStore):
    """Dumps in Redis at `url` (password in the URL), the local `directory` while Redis is unavailable (with
    `degrade`; without it, StateUnavailable)."""

    def __init__(
        self,
        url: str,
        directory: Path | str,
        *,
        prefix: str = REDIS_PREFIX,
        max_count: int | None = DUMP_MAX_COUNT,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_age: timedelta | None = DEFAULT_MAX_AGE,
        secrets: Iterable[str] = (),
        degrade: bool = True,
    ) -> None:
        super().__init__(directory, max_count=max_count, max_bytes=max_bytes, max_age=max_age, secrets=secrets)
        import redis

        self._outage = StateStore.shared(url)
        self._run = self._outage.run
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._degrade = degrade
        self._refused = Outage(
            logger, "failure dumps: the state store refused a dump (%s) at %s: dumps are kept in %s until it takes one",
            f"failure dumps: the state store at {self._outage.name} takes dumps again", self._outage.name,
            self.directory, store="dumps",
        )  # fmt: skip
        self._key, self._index, self._sizes = f"{prefix}dump:", f"{prefix}dumps", f"{prefix}dump-sizes"
        self._told: set[str] = set()
        """The local dumps kept on the disk that a warning named already (`_kept`)."""

    @property
    def _redis(self) -> Any:
        """The process's client of the state store (a forked child's own); its commands go through `_run`."""
        return self._outage.aclient()

    def location(self) -> str:
        """Where the dumps are, for log lines (no password)."""
        kwargs = self._redis.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"Redis at {where} (the local {self.directory} while it is unavailable)"

    def unlisted(self) -> str | None:
        if self._usable():
            return None
        return f"{self._outage.name} is unavailable: only the dumps written here since are listed"

    def _usable(self) -> bool:
        """Whether to ask Redis: always when not degrading (a failure raises), else while the breaker is closed."""
        return not self._degrade or self._outage.usable()

    def _failed(self, exc: BaseException) -> None:
        """Redis failed: StateUnavailable when not degrading; else the caller falls back, and the breaker opens
        when Redis is away, or this store's own warning is told when it answered with an error."""
        if not self._degrade:
            raise self._outage.unavailable(exc) from exc
        if says_away(exc):
            self._outage.failed(exc)
        else:
            self._refused.failed(exc)

    # -- storage primitives ----------------------------------------------------

    def _script(self, source: str, dump_id: str, payload: bytes) -> bool:
        keys = (self._key + dump_id, self._index, self._sizes)
        return bool(self._run(self._redis.eval(source, len(keys), *keys, dump_id, payload)))

    def _put(self, dump_id: str, payload: bytes) -> bool:
        """Store under `dump_id` (key, index entry and size in one step) unless the id holds another dump; False
        if it does. True when it already held these bytes: the same dump."""
        return self._script(_PUT, dump_id, payload)

    def _replace(self, dump_id: str, payload: bytes) -> bool:
        """Overwrite the shared dump of `dump_id`, or else the local one (written during an outage)."""
        if self._usable():
            try:
                if self._script(_REPLACE, dump_id, payload):
                    return True
            except self._errors as exc:
                self._failed(exc)
        return super()._replace(dump_id, payload)

    def _write(self, dump: FailureDump) -> str:
        if not self._usable():
            return super()._write(dump)
        try:
            dump_id = self._store(dump, self._put)
        except self._errors as exc:
            self._failed(exc)
            return super()._write(dump)
        self._outage.worked()
        self._refused.worked()
        self._move_local()  # what was written locally meanwhile, if anything
        return dump_id

    def _move_local(self) -> None:
        """Dumps written locally while Redis was away: into Redis, then off the disk, only once Redis lists them.
        A dump whose id holds another dump in Redis is stored under a fresh id (its JSON naming it); a file that
        is not a dump, or that cannot be read (an OSError of the local disk, not Redis's), stays where it is."""
        for dump_id, _ in super()._scan():
            try:
                text, _ = super()._read_raw(dump_id)
            except DumpNotFound:
                continue
            except (DumpLookupError, OSError) as exc:  # the local file's, not Redis's (nor the breaker's)
                self._kept(dump_id, exc)
                continue
            try:
                if not self._put(dump_id, text.encode("utf-8")):
                    self._rename(dump_id, text)
            except DumpNotFound:
                continue
            except (DumpLookupError, ValueError, FileExistsError) as exc:  # not Redis's doing (nor the breaker's)
                self._kept(dump_id, exc)
                continue
            except self._errors as exc:
                self._failed(exc)
                return
            super()._remove(dump_id)

    def _kept(self, dump_id: str, exc: BaseException) -> None:
        """The local dump `dump_id` stays on the disk, not moved into Redis: one warning naming it and why, the
        first time (each later write that moves the local dumps meets it again)."""
        if dump_id in self._told:
            return
        self._told.add(dump_id)
        logger.warning("failure dump %s kept in %s: %s: %s", dump_id, self.directory, type(exc).__name__, exc)

    def _rename(self, dump_id: str, text: str) -> None:
        """Store the local dump `dump_id` (its JSON `text`) in Redis under a fresh id: its own names another dump
        there."""
        try:
            dump = FailureDump.model_validate_json(text)
        except ValidationError as exc:
            raise DumpCorrupt(f"dump {dump_id!r} is not a valid dump: {exc.error_count()} error(s)") from None
        dump.id = ""
        self._store(dump, self._put)
        if dump.caller is not None:
            with self._lock:
                self._changed.add(dump.caller)  # its id in that caller's listing changed

    def _shared(self, *, sizes: bool) -> list[tuple[str, int]]:
        if not self._usable():
            return []
        try:
            ids = self._run(self._redis.zrange(self._index, 0, -1))
            got = {k: int(v) for k, v in self._run(self._redis.hgetall(self._sizes)).items()} if sizes else {}
        except self._errors as exc:
            self._failed(exc)
            return []
        return [(i, got.get(i, 0)) for i in ids]

    def _scan(self, *, sizes: bool = False) -> list[tuple[str, int]]:
        found = dict(super()._scan(sizes=sizes))
        found.update(self._shared(sizes=sizes))
        return list(found.items())

    def _ids(self) -> list[str]:
        return sorted({*super()._ids(), *(i for i, _ in self._shared(sizes=False))})

    def _remove(self, dump_id: str) -> bool:
        removed = super()._remove(dump_id)
        if not self._usable():
            return removed
        try:
            pipe = self._redis.pipeline()
            pipe.delete(self._key + dump_id)
            pipe.zrem(self._index, dump_id)
            pipe.hdel(self._sizes, dump_id)
            gone = self._run(pipe.execute())[0]
        except self._errors as exc:
            self._failed(exc)
            return removed
        return removed or bool(gone)

    def _read_raw(self, dump_id: str) -> tuple[str, int]:
        self._path_for(dump_id)  # InvalidDumpId for a malformed id, before anything is asked
        if self._usable():
            try:
                raw = self._run(self._redis.get(self._key + dump_id))
            except self._errors as exc:
                self._failed(exc)
            else:
                if raw is not None:
                    return raw, len(raw.encode("utf-8"))
        return super()._read_raw(dump_id)

"""A kept result and the store's contract: put, get by owner, list by owner, expiry by the store's clock."""

from __future__ import annotations

import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from ..defaults import RESULT_TTL_S

__all__ = ["ResultStore", "ResultStoreError", "ResultSummary", "StoredResult", "UnknownResult", "is_result_id"]

_ID = re.compile(r"[0-9a-f]{32}")


def is_result_id(value: str) -> bool:
    """Whether `value` is an id this store mints (checked before any lookup)."""
    return _ID.fullmatch(value) is not None


class UnknownResult(LookupError):
    """No such result for this caller: never stored, expired, or another caller's (all read alike)."""

    def __init__(self, result_id: str) -> None:
        super().__init__(f"no result {result_id} (results are kept for a limited time, for the caller who made them)")


class ResultStoreError(Exception):
    """The store failed (unreachable, disk full, ...); one line naming the store, never its password. `told`: the
    outage was logged already (once, by the shared state store), so no warning of its own."""

    def __init__(self, name: str, operation: str, exc: BaseException | str, *, told: bool = False) -> None:
        detail = exc if isinstance(exc, str) else type(exc).__name__
        super().__init__(f"results store {name}: could not {operation} ({detail})")
        self.told = told


@dataclass(frozen=True)
class StoredResult:
    """One kept answer: its whole `text`, where each part starts (`bounds`, the first 0), its token count."""

    id: str
    owner: str
    text: str
    bounds: list[int]
    tokens: int
    created: float
    expires: float

    @property
    def parts(self) -> int:
        return len(self.bounds)

    def part(self, n: int) -> str:
        """Part `n` (from 1); IndexError past the last."""
        if not 1 <= n <= len(self.bounds):
            raise IndexError(n)
        end = self.bounds[n] if n < len(self.bounds) else len(self.text)
        return self.text[self.bounds[n - 1] : end]


@dataclass(frozen=True)
class ResultSummary:
    """A kept answer in a listing: `size` in UTF-8 bytes."""

    id: str
    created: float
    expires: float
    size: int
    parts: int
    tokens: int


class ResultStore(ABC):
    """Results kept `ttl_s` seconds by `clock` (epoch seconds); reads and lists filter by owner: `None` (admins,
    the stdio user) reads every one. `redact` is what a text goes through before anything is made of it (the
    server's secrets out): the pager applies it before it counts and splits, so parts and bounds agree. Methods
    raise `ResultStoreError` when the store fails."""

    name: str = "results"

    def __init__(
        self, *, ttl_s: float = RESULT_TTL_S, clock: Callable[[], float] = time.time,
        redact: Callable[[str], str] | None = None,
    ) -> None:  # fmt: skip
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.ttl_s = ttl_s
        self.clock = clock
        self.redact: Callable[[str], str] = redact if redact is not None else str

    async def put(self, owner: str, text: str, bounds: list[int], *, tokens: int) -> StoredResult:
        """Keep `text` for `owner`, split at `bounds`; the kept result, with its new id."""
        now = self.clock()
        kept = StoredResult(uuid.uuid4().hex, owner, text, list(bounds), tokens, now, now + self.ttl_s)
        await self._put(kept)
        return kept

    async def get(self, result_id: str, owner: str | None) -> StoredResult:
        """The result `result_id` if `owner` may read it (None: any owner) and it has not expired."""
        found = await self._get(result_id) if is_result_id(result_id) else None
        if found is None or found.expires <= self.clock() or owner not in (None, found.owner):
            raise UnknownResult(result_id)
        return found

    async def list(self, owner: str | None, limit: int) -> list[ResultSummary]:
        """`owner`'s live results (None: everyone's), newest first, at most `limit`."""
        return await self._list(owner, limit, self.clock())

    @abstractmethod
    async def _put(self, kept: StoredResult) -> None: ...

    @abstractmethod
    async def _get(self, result_id: str) -> StoredResult | None: ...

    @abstractmethod
    async def _list(self, owner: str | None, limit: int, now: float) -> list[ResultSummary]: ...

    async def aclose(self) -> None:
        return None

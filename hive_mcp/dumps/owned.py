"""One caller's failure dumps: what every view of the store (the MCP tools and resources, the dashboard) goes
through, so a caller lists, reads, counts and deletes only the dumps of its own calls.

Another caller's dump answers exactly as an id with no dump does (`format.not_found`): nothing tells the two
apart. The rule itself is `format.owned_by`; whose scope a caller has is `tokens.owner_scope`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .format import DumpCorrupt, DumpNotFound, DumpPage, FailureDump, not_found, owned_by
from .store import MAX_PAGE_LIMIT, DumpStore

__all__ = ["CallerDumps"]


class CallerDumps:
    """The dumps of `store` that `caller` may see (None: every dump, as admins and the stdio user see them)."""

    def __init__(self, store: DumpStore, caller: str | None) -> None:
        self.store = store
        self.caller = caller

    def list(self, **filters: Any) -> DumpPage:
        """`DumpStore.list`, of this caller's dumps."""
        return self.store.list(**filters, caller=self.caller)

    def unlisted(self) -> str | None:
        return self.store.unlisted()

    def count(self) -> int:
        if self.caller is None:
            return self.store.count()
        n, cursor = 0, None
        while True:
            page = self.list(limit=MAX_PAGE_LIMIT, cursor=cursor)
            n += len(page.items)
            if (cursor := page.next_cursor) is None:
                return n

    def read(self, dump_id: str) -> FailureDump:
        dump = self.store.read(dump_id)
        if not owned_by(dump, self.caller):
            raise not_found(dump_id)
        return dump

    def read_text(self, dump_id: str) -> str:
        text = self.store.read_text(dump_id)
        if self.caller is not None:
            try:
                dump = FailureDump.model_validate_json(text)
            except ValidationError:
                raise not_found(dump_id) from None  # whose it is cannot be told: not this caller's
            if not owned_by(dump, self.caller):
                raise not_found(dump_id)
        return text

    def delete(self, dump_id: str) -> bool:
        """Remove one of this caller's dumps; False when there is none of that id (another's included)."""
        if self.caller is not None:
            try:
                self.read(dump_id)
            except (DumpNotFound, DumpCorrupt):
                return False
        return self.store.delete(dump_id)

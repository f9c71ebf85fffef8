"""What the command modules (`cli`, `conversations_cli`, `spend_cli`) share: the `--since` option
as the command line reads it, and tables on stdout. Its own module so that none of them imports
another for these."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .since import parse_since as _parse_since

__all__ = ["parse_since", "print_table"]


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`--since`: a duration back from now or an ISO date/time, local time unless it has an offset."""
    try:
        return _parse_since(text, now=now, naive=None)
    except ValueError as exc:
        raise ValueError(f"invalid --since {exc}") from None


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """`header` and `rows` on stdout as columns two spaces apart, each as wide as its widest cell."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

"""Where a listing starts: a duration back from now (`30m`, `12h`, `7d`, `1d12h`) or an ISO 8601
date/time. One parser for the command line (`--since`, `--older-than`), the dashboard and the MCP
tools, so the same words work in all three.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from .text import short

__all__ = ["FORMS", "parse_duration", "parse_since"]

FORMS = "a duration back from now (30m, 12h, 7d) or an ISO 8601 date/time (2026-11-20, 2026-11-20T14:30Z)"
"""What `parse_since` takes, in the words of its errors."""

_UNITS = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """`30s`, `30m`, `12h`, `7d`, `2w`, or a sum such as `1d12h`. Raises ValueError."""
    s = text.strip().lower()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 30m, 12h, 7d (units: w d h m s)")
    try:
        return timedelta(seconds=total)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too large") from None


def parse_since(text: str, *, now: datetime | None = None, naive: tzinfo | None = UTC) -> datetime:
    """`text` as a moment: a duration back from `now`, or an ISO 8601 date/time. Raises ValueError.

    A date or time without an offset is in `naive` (None: this machine's local time, as a person at
    its terminal means it).
    """
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    except OverflowError:
        raise ValueError(f"{short(text)}: too far back") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{short(text)} is not {FORMS}") from None
    try:
        if when.tzinfo is None:
            when = when.astimezone() if naive is None else when.replace(tzinfo=naive)
        when.astimezone(UTC)  # every listing compares in UTC: a moment with no UTC time is refused here
    except (OverflowError, ValueError):
        raise ValueError(f"{short(text)} is out of range: its time in UTC is before year 1 or after 9999") from None
    return when

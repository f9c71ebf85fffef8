"""The dashboard's data: what the page shows, computed from the dump store's own listing.

Every count comes from `DumpStore.list()` (the listing `list_failed_requests`
serves), paged to the end of the window, so the dashboard and the tool can never
disagree. Query parameters are validated here into `DashboardQuery`; a bad one
raises `QueryError` with one line naming it, which the HTTP side answers with 400
and the MCP side with an error result.

Spend and models are sections of their own, filled by `Sources` callables when
those features exist and None otherwise (the page then says "not configured"). A
section whose store does not answer is None too, and named in `unavailable` with
one line saying why: the rest of the answer is still served.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel

from ..defaults import DEFAULT_PAGE_LIMIT
from ..dumps import ERROR_TYPES, MAX_PAGE_LIMIT, CallerDumps, DumpStore, DumpSummary, FailureDump, is_valid_dump_id
from ..since import parse_since as since_moment
from ..text import one_line, shorten

View = Literal["failures", "dump", "spend", "models"]
VIEWS: tuple[str, ...] = get_args(View)
DEFAULT_VIEW: View = "failures"
DEFAULT_SINCE = "day"

CATEGORIES = ERROR_TYPES
"""The categories the provider records; a filter may also name any category seen in the window."""

PRESETS: dict[str, tuple[timedelta, timedelta]] = {
    # name: (window, bucket width)
    "hour": (timedelta(hours=1), timedelta(minutes=5)),
    "day": (timedelta(days=1), timedelta(hours=1)),
    "week": (timedelta(days=7), timedelta(hours=6)),
}
_WIDTHS = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 720, 1440, 10080))
MAX_BUCKETS = 48
MAX_WINDOW = timedelta(days=3660)
"""An earlier `since` means this long ago: every dump the store keeps, and dates that stay in range."""
MAX_SCANNED = 20_000
"""Most dumps one request counts; beyond it the answer says `truncated` (the store keeps 500 by default)."""
MESSAGE_CHARS = 20_000
MESSAGES_TOTAL_CHARS = 200_000
"""How much of a dump's messages the detail view carries; the whole request stays readable as its resource."""

_CATEGORY_RE = re.compile(r"[a-z0-9_]{1,40}")
_PARAMS = ("view", "since", "model", "category", "limit", "id")


Dumps = DumpStore | CallerDumps
"""Where the dashboard reads dumps: a caller's own (`CallerDumps`), or the whole store."""


class QueryError(ValueError):
    """A bad query parameter; the message is one line that starts with the parameter's name."""


# ---------------------------------------------------------------------------
# Query
# ---------------------------------------------------------------------------


class DashboardQuery(BaseModel):
    view: View = DEFAULT_VIEW
    since: str = DEFAULT_SINCE
    """`hour`, `day`, `week`, or an ISO 8601 time (UTC if no offset)."""
    start: datetime
    model: str | None = None
    category: str | None = None
    limit: int = DEFAULT_PAGE_LIMIT
    id: str | None = None


def parse_since(value: str, now: datetime) -> datetime:
    """hour, day or week; else what the command line and the tools take (`hive_mcp.since`), UTC if no offset."""
    if value in PRESETS:
        return now - PRESETS[value][0]
    try:
        t = since_moment(value, now=now).astimezone(UTC)
    except ValueError as exc:
        raise QueryError(f"since: {exc} (here also hour, day or week)") from None
    if t > now:
        raise QueryError(f"since: {t.isoformat()} is in the future")
    return max(t, now - MAX_WINDOW)


def parse_query(params: Mapping[str, Any], *, now: datetime | None = None) -> DashboardQuery:
    """Validate raw parameters (strings from a URL, or JSON values from a tool call)."""
    now = now or datetime.now(UTC)
    for key in params:
        if key not in _PARAMS:
            raise QueryError(f"{shorten(str(key), 40)}: unknown parameter (known: {', '.join(_PARAMS)})")

    def text(name: str) -> str | None:
        v = params.get(name)
        if v is None or v == "":
            return None
        if not isinstance(v, str):
            raise QueryError(f"{name}: must be a string")
        if len(v) > 200:
            raise QueryError(f"{name}: longer than 200 characters")
        return v

    view = text("view") or DEFAULT_VIEW
    if view not in VIEWS:
        raise QueryError(f"view: unknown view {shorten(repr(view), 40)} (known: {', '.join(VIEWS)})")
    since = text("since") or DEFAULT_SINCE
    start = parse_since(since, now)
    category = text("category")
    if category is not None and not _CATEGORY_RE.fullmatch(category):
        raise QueryError(f"category: unknown category {shorten(repr(category), 40)} (known: {', '.join(CATEGORIES)})")
    raw_limit = params.get("limit")
    limit = DEFAULT_PAGE_LIMIT
    if raw_limit is not None and raw_limit != "":
        if isinstance(raw_limit, bool) or not isinstance(raw_limit, int | str):
            raise QueryError(f"limit: must be an integer from 1 to {MAX_PAGE_LIMIT}")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise QueryError(f"limit: not an integer: {shorten(repr(raw_limit), 40)}") from None
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise QueryError(f"limit: {limit} is out of range (1 to {MAX_PAGE_LIMIT})")
    dump_id = text("id")
    if dump_id is not None and not is_valid_dump_id(dump_id):
        raise QueryError(f"id: not a dump id: {shorten(repr(dump_id), 60)}")
    if view == "dump" and dump_id is None:
        raise QueryError("id: required when view is dump")
    return DashboardQuery(
        view=view, since=since, start=start, model=text("model"), category=category, limit=limit, id=dump_id  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------
# Wire shapes
# ---------------------------------------------------------------------------


class Bucket(BaseModel):
    start: datetime
    counts: dict[str, int]
    total: int


class DumpRow(BaseModel):
    """One dump in the table: the store's summary, its `error_type` named `category` as the page calls it."""

    id: str
    timestamp: datetime
    model: str
    category: str
    outcome: str
    attempt_count: int
    message_count: int
    size_bytes: int

    @classmethod
    def of(cls, s: DumpSummary) -> DumpRow:
        return cls(category=s.error_type, **s.model_dump(exclude={"error_type"}))


class Failures(BaseModel):
    since: str
    start: datetime
    end: datetime
    bucket_seconds: int
    model: str | None
    category: str | None
    buckets: list[Bucket]
    totals: dict[str, int]
    """Counts per category in the window, filters applied (the sum of the buckets)."""
    total: int
    store_total: int
    """Every dump in the store, whatever its time."""
    categories: list[str]
    """Categories present in the window (any model), for the filter."""
    models: list[str]
    """Models present in the window (any category), for the filter."""
    newest: list[DumpRow]
    truncated: bool


class Attempt(BaseModel):
    index: int
    time: datetime
    category: str
    status: int | None
    message: str
    delay_s: float
    deployment: str | None


class DumpMessage(BaseModel):
    role: str
    content: str
    truncated: bool


class DumpDetail(BaseModel):
    id: str
    timestamp: datetime
    model: str
    api_base: str | None
    category: str
    outcome: str
    attempt_count: int
    attempts: list[Attempt]
    messages: list[DumpMessage]
    messages_truncated: bool
    message_count: int
    estimated_tokens: int
    token_estimate_method: str
    stream: bool
    max_tokens: int | None
    format_version: int
    hive_mcp_version: str
    litellm_version: str


class DashboardData(BaseModel):
    """One answer of the data endpoint (and the `dashboard` tool's structured content)."""

    generated_at: datetime
    view: View
    failures: Failures | None = None
    dump: DumpDetail | None = None
    spend: dict[str, Any] | None = None
    models: dict[str, Any] | None = None
    unavailable: dict[str, str] = {}
    """Sections whose store did not answer (their value is then None), each with one line saying why."""


# ---------------------------------------------------------------------------
# Computing it
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where the sections other than failures come from; None (or a None answer) means not configured."""

    spend: Callable[[], BaseModel | None] | None = None
    models: Callable[[], BaseModel | None] | None = None


STORE_ERRORS = (OSError, sqlite3.Error)
"""How a section's store says it did not answer: the Redis ledger's `OSError` (its breaker open, or Redis
gone), a file's, SQLite's own. The state store has warned of the outage once already, so no log here."""


def _section(data: DashboardData, name: str, source: Callable[[], BaseModel | None] | None) -> dict[str, Any] | None:
    """The section `name` from its source; None when not configured, or when its store did not answer, which
    `data.unavailable[name]` then says in one line (the rest of the dashboard is still served)."""
    try:
        value = source() if source is not None else None
    except STORE_ERRORS as exc:
        data.unavailable[name] = one_line(f"{type(exc).__name__}: {exc}", 300)
        return None
    return None if value is None else value.model_dump(mode="json")


def scan(store: Dumps, start: datetime, category: str | None, model: str | None) -> tuple[list[DumpSummary], bool]:
    """Every summary at or after `start` matching the filters, newest first, through the store's own listing."""
    items: list[DumpSummary] = []
    cursor: str | None = None
    while True:
        page = store.list(error_type=category, model=model, since=start, limit=MAX_PAGE_LIMIT, cursor=cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items, False
        if len(items) >= MAX_SCANNED:
            return items, True


def _width(window: timedelta) -> timedelta:
    for w in _WIDTHS:
        if window / w <= MAX_BUCKETS:
            return w
    return max(_WIDTHS[-1], window / MAX_BUCKETS)


def failures(store: Dumps, q: DashboardQuery, now: datetime) -> Failures:
    everything, cut_all = scan(store, q.start, None, None)
    if q.category is None and q.model is None:
        matched, cut = everything, cut_all
    else:
        seen = {s.error_type for s in everything}
        if q.category is not None and q.category not in CATEGORIES and q.category not in seen:
            raise QueryError(f"category: unknown category {q.category!r} (known: {', '.join(CATEGORIES)})")
        matched, cut = scan(store, q.start, q.category, q.model)

    window = now - q.start
    width = PRESETS[q.since][1] if q.since in PRESETS else _width(window)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + ((q.start - epoch) // width) * width  # buckets on round boundaries
    n = max(1, -(-(now - first) // width))
    counts: list[dict[str, int]] = [{} for _ in range(n)]
    totals: dict[str, int] = {}
    for s in matched:
        i = min(n - 1, max(0, (s.timestamp - first) // width))
        counts[i][s.error_type] = counts[i].get(s.error_type, 0) + 1
        totals[s.error_type] = totals.get(s.error_type, 0) + 1
    return Failures(
        since=q.since,
        start=q.start,
        end=now,
        bucket_seconds=int(width.total_seconds()),
        model=q.model,
        category=q.category,
        buckets=[Bucket(start=first + i * width, counts=c, total=sum(c.values())) for i, c in enumerate(counts)],
        totals=dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))),
        total=len(matched),
        store_total=store.count(),
        categories=sorted({s.error_type for s in everything}),
        models=sorted({s.model for s in everything}),
        newest=[DumpRow.of(s) for s in matched[: q.limit]],
        truncated=cut or cut_all,
    )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: show the text ones, name the others
        parts = [p.get("text") if isinstance(p, dict) and isinstance(p.get("text"), str) else None for p in content]
        return "\n".join(p if p is not None else "[non-text part]" for p in parts)
    return "" if content is None else str(content)


def detail(dump: FailureDump) -> DumpDetail:
    messages: list[DumpMessage] = []
    budget = MESSAGES_TOTAL_CHARS
    cut = False
    for m in dump.messages:
        text = _text_of(m.get("content"))
        keep = min(len(text), MESSAGE_CHARS, budget)
        messages.append(DumpMessage(role=str(m.get("role", "?")), content=text[:keep], truncated=keep < len(text)))
        budget -= keep
        cut = cut or keep < len(text)
        if budget <= 0:
            cut = cut or len(messages) < len(dump.messages)
            break
    return DumpDetail(
        id=dump.id,
        timestamp=dump.timestamp,
        model=dump.model,
        api_base=dump.api_base,
        category=dump.error_type,
        outcome=dump.outcome,
        attempt_count=dump.attempt_count,
        attempts=[
            Attempt(
                index=i + 1,
                time=a.time,
                category=a.error_type,
                status=a.status,
                message=shorten(a.message, 500),
                delay_s=a.delay_s,
                deployment=getattr(a, "deployment", None),  # recorded once the models issue has landed
            )
            for i, a in enumerate(dump.attempts)
        ],
        messages=messages,
        messages_truncated=cut,
        message_count=dump.message_count,
        estimated_tokens=dump.estimated_tokens,
        token_estimate_method=dump.token_estimate_method,
        stream=dump.stream,
        max_tokens=dump.max_tokens,
        format_version=dump.format_version,
        hive_mcp_version=dump.hive_mcp_version,
        litellm_version=dump.litellm_version,
    )


def build(store: Dumps, q: DashboardQuery, *, sources: Sources = Sources(), now: datetime | None = None) -> DashboardData:
    """The answer to `q`. Raises QueryError, or the store's DumpLookupError for a dump view."""
    now = now or datetime.now(UTC)
    data = DashboardData(generated_at=now, view=q.view)
    if q.view == "dump":
        assert q.id is not None  # parse_query requires it
        data.dump = detail(store.read(q.id))
    elif q.view == "failures":
        data.failures = failures(store, q, now)
        if (left_out := store.unlisted()) is not None:
            data.unavailable["failures"] = left_out
        data.spend, data.models = _section(data, "spend", sources.spend), _section(data, "models", sources.models)
    elif q.view == "spend":
        data.spend = _section(data, "spend", sources.spend)
    else:
        data.models = _section(data, "models", sources.models)
    return data

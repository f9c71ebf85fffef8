"""What has been spent, as `hive://usage`, `hive-mcp usage` and the dashboard read it (pydantic shapes).

`report(spend, caller)`: today, this month and the last 30 days, each by model
group and by caller, and every budget with its limit, spent and reserved
amounts and reset time. With a `caller`, only that caller's spend and the
budgets that apply to it (the overall ones, the model groups', its own: of a
kind whose budgets are each one caller's, `ScopeKind.private`, only the one
naming it; an agent over HTTP sees itself); None sees everything (admins, stdio).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel

from .budgets import Budget, Budgets, period_key, reset_at, usd
from .ledger import Backend, TotalRow

__all__ = [
    "BudgetState", "Spending", "UsageReport", "rows_since", "spent_by", "spent_today", "unpriced_by",
    "usage_report",
]


class Spending(BaseModel):
    """Spend over one span: the total, and by model group and by caller (USD, and the calls behind it)."""

    cost_usd: float
    calls: int
    unpriced_calls: int
    by_model: dict[str, float]
    by_caller: dict[str, float]
    calls_by_model: dict[str, int] = {}
    calls_by_caller: dict[str, int] = {}


class BudgetState(BaseModel):
    budget: str
    scope: str
    name: str | None = None
    period: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    left_usd: float
    resets: datetime


class UsageReport(BaseModel):
    as_of: datetime
    caller: str | None
    """Set when the report shows one caller only."""
    today: Spending
    month: Spending
    last_30_days: Spending
    budgets: list[BudgetState]


def _spending(rows: list[TotalRow]) -> Spending:
    by_model, by_caller = spent_by(rows, lambda r: r.group), spent_by(rows, lambda r: r.caller)
    return Spending(
        cost_usd=usd(sum(r.cost for r in rows)), calls=sum(r.calls for r in rows),
        unpriced_calls=sum(r.unpriced_calls for r in rows),
        by_model={k: usd(c) for k, (c, _) in by_model.items()},
        by_caller={k: usd(c) for k, (c, _) in by_caller.items()},
        calls_by_model={k: n for k, (_, n) in by_model.items()},
        calls_by_caller={k: n for k, (_, n) in by_caller.items()},
    )  # fmt: skip


def rows_since(backend: Backend, since: datetime, caller: str | None = None) -> list[TotalRow]:
    rows = backend.totals(period_key("day", since))
    return [r for r in rows if caller is None or r.caller == caller]


def usage_report(backend: Backend, budgets: Budgets, now: datetime, caller: str | None = None) -> UsageReport:
    """The report as of `now` (blocking: call it in a worker thread)."""
    today, first = period_key("day", now), period_key("month", now) + "-01"
    since = period_key("day", now - timedelta(days=29))
    rows = [r for r in backend.totals(min(since, first)) if caller is None or r.caller == caller]
    # A caller sees every budget that can refuse its calls: the overall ones, every model group's, its own.
    shown: list[Budget] = [b for b in budgets.items if caller is None or not b.private or b.name == caller]
    used = backend.state(shown, now) if shown else {}
    states = []
    for b in shown:
        spent, held = used[b.id]
        states.append(BudgetState(
            budget=b.id, scope=b.scope, name=b.name or None, period=b.period, limit_usd=usd(b.limit),
            spent_usd=usd(spent), reserved_usd=usd(held), left_usd=usd(max(b.limit - spent - held, 0)),
            resets=reset_at(b.period, now),
        ))  # fmt: skip
    return UsageReport(
        as_of=now, caller=caller, today=_spending([r for r in rows if r.day == today]),
        month=_spending([r for r in rows if r.day >= first]),
        last_30_days=_spending([r for r in rows if r.day >= since]), budgets=states,
    )  # fmt: skip


def spent_by(rows: list[TotalRow], key: Callable[[TotalRow], str]) -> dict[str, tuple[int, int]]:
    """micro-USD and calls per `key` (a row's group, caller or day)."""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        cost, calls = out.get(key(r), (0, 0))
        out[key(r)] = (cost + r.cost, calls + r.calls)
    return dict(sorted(out.items()))


def unpriced_by(rows: list[TotalRow], key: Callable[[TotalRow], str]) -> dict[str, int]:
    """Calls without a known price per `key`, beside `spent_by`."""
    out: dict[str, int] = {}
    for r in rows:
        out[key(r)] = out.get(key(r), 0) + r.unpriced_calls
    return out


def spent_today(backend: Backend, now: datetime, caller: str | None = None) -> dict[str, float]:
    """USD per model group since midnight UTC (one caller's, or everyone's)."""
    return {g: usd(c) for g, (c, _) in spent_by(rows_since(backend, now, caller), lambda r: r.group).items()}

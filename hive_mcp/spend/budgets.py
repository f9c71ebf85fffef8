"""Budgets: what they are, which apply to a call, UTC periods, and reading them from the settings.

A budget is a USD limit on one scope (everything, one caller, one model group)
over one UTC period (a day or a month). Money is integer micro-USD everywhere:
sums of floats drift, sums of integers do not.

The shape, in the config's `hive_mcp:` section (or HIVE_MCP_BUDGETS as JSON):

    budgets:
      day: 20            # overall, like HIVE_MCP_BUDGET_USD_DAY (which wins over it)
      month: 300         # overall, like HIVE_MCP_BUDGET_USD_MONTH; litellm_settings.max_budget sets it too
      unpriced: deny     # deny (default): a call that cannot be priced is refused under this budget
      callers:
        alice: {day: 5, month: 50}
      models:
        smart: {month: 100, unpriced: allow}

A bad value (negative, not a number, an unknown key, caller or model group)
is a `BudgetError`: one line naming it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from ..defaults import MAX_USD

__all__ = [
    "Budget", "BudgetError", "Budgets", "Period", "Scope", "dollars", "micro", "period_key", "reset_at", "usd",
]

MICRO = 1_000_000
Period = Literal["day", "month"]
Scope = Literal["all", "caller", "model"]
_PERIODS: tuple[Period, ...] = ("day", "month")
_KEYS = frozenset({"day", "month", "unpriced"})


class BudgetError(ValueError):
    """A budget setting that cannot be enforced; `str()` is one line naming it."""


def micro(usd: float) -> int:
    """USD as whole micro-USD, rounded up: a worst case is never under-counted."""
    return math.ceil(round(usd * MICRO, 6))


def usd(amount: int) -> float:
    return amount / MICRO


def dollars(amount: int) -> str:
    """micro-USD as `$5.00`, or to the micro-dollar below a cent."""
    value = usd(amount)
    return f"${value:.2f}" if value == 0 or value >= 0.01 else f"${value:.6f}"


def period_key(period: Period, when: datetime) -> str:
    """The UTC day (`2026-12-01`) or month (`2026-12`) `when` falls in."""
    utc = when.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%d") if period == "day" else utc.strftime("%Y-%m")


def reset_at(period: Period, when: datetime) -> datetime:
    """When the period `when` falls in ends (UTC midnight of the next day or month)."""
    utc = when.astimezone(timezone.utc)
    start = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start + timedelta(days=1)
    start = start.replace(day=1)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


@dataclass(frozen=True)
class Budget:
    """One limit: `scope` (`all`, or one caller or model group named by `name`) over one UTC `period`."""

    scope: Scope
    name: str
    period: Period
    limit: int
    """micro-USD"""
    allow_unpriced: bool = False

    @property
    def id(self) -> str:
        """Stable across processes: `all:day`, `caller:alice:month`, `model:smart:day`."""
        return f"{self.scope}:{self.period}" if self.scope == "all" else f"{self.scope}:{self.name}:{self.period}"

    def label(self) -> str:
        what = {"all": "overall", "caller": f"caller {self.name}'s", "model": f"model group {self.name}'s"}[self.scope]
        return f"{what} {'daily' if self.period == 'day' else 'monthly'} budget of {dollars(self.limit)}"

    def applies(self, caller: str, group: str) -> bool:
        return self.scope == "all" or (self.scope == "caller" and self.name == caller) or (
            self.scope == "model" and self.name == group
        )


@dataclass(frozen=True)
class Budgets:
    """Every configured budget."""

    items: tuple[Budget, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def applying(self, caller: str, group: str) -> list[Budget]:
        return [b for b in self.items if b.applies(caller, group)]

    @classmethod
    def from_settings(
        cls,
        *,
        day: float | None,
        month: float | None,
        section: Mapping[str, Any] | None,
        max_budget: float | None = None,
        max_budget_duration: str | None = None,
        callers: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
    ) -> Budgets:
        """The budgets the settings give. `callers`/`groups` are the names that exist (None: any name).

        Overall limits: the variable, else the section's, else litellm's `max_budget`: a daily limit when its
        `budget_duration` is `1d`/`24h`, else a monthly one (hive-mcp's periods are UTC days and months).
        """
        litellm_period = "day" if str(max_budget_duration or "").strip().lower() in ("1d", "24h") else "month"
        section = dict(section or {})
        _check_keys(section, _KEYS | {"callers", "models"}, "budgets")
        unpriced = _unpriced(section, "budgets")
        out: list[Budget] = []
        for period, given in (("day", day), ("month", month)):
            value = given if given is not None else _amount(section, period, "budgets")
            if value is None and period == litellm_period and max_budget is not None:
                value = _usd(max_budget, "litellm_settings.max_budget")
            if value is not None:
                out.append(Budget("all", "", period, micro(value), unpriced))  # type: ignore[arg-type]
        known = {"callers": None if callers is None else set(callers), "models": None if groups is None else set(groups)}
        for key, scope in (("callers", "caller"), ("models", "model")):
            entries = section.get(key) or {}
            if not isinstance(entries, Mapping):
                raise BudgetError(f"budgets.{key}: must be a mapping of names to budgets, not {entries!r}")
            for name, spec in entries.items():
                where = f"budgets.{key}.{name}"
                names = known[key]
                if names is not None and str(name) not in names:
                    what = "caller (token names and local)" if key == "callers" else "model group"
                    raise BudgetError(f"{where}: not a known {what}; known: {', '.join(sorted(names)) or 'none'}")
                if not isinstance(spec, Mapping):
                    raise BudgetError(f"{where}: must be a mapping with day and/or month, not {spec!r}")
                _check_keys(spec, _KEYS, where)
                allow = _unpriced(spec, where)
                for period in _PERIODS:
                    value = _amount(spec, period, where)
                    if value is not None:
                        out.append(Budget(scope, str(name), period, micro(value), allow))  # type: ignore[arg-type]
        return cls(tuple(out))


def _check_keys(spec: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in spec:
        if key not in allowed:
            raise BudgetError(f"{where}.{key}: not a budget setting (allowed: {', '.join(sorted(allowed))})")


def _unpriced(spec: Mapping[str, Any], where: str) -> bool:
    value = spec.get("unpriced", "deny")
    if value not in ("allow", "deny"):
        raise BudgetError(f"{where}.unpriced: must be allow or deny, not {value!r}")
    return value == "allow"


def _amount(spec: Mapping[str, Any], key: str, where: str) -> float | None:
    if spec.get(key) is None:
        return None
    return _usd(spec[key], f"{where}.{key}")


def _usd(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise BudgetError(f"{where}: must be a number of USD, at least 0, not {value!r}")
    if value > MAX_USD:
        raise BudgetError(f"{where}: must be at most {MAX_USD} USD, not {value!r}")
    return float(value)

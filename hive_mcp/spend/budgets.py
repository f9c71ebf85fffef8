"""Budgets: what they are, which apply to a call, UTC periods, and reading them from the settings.

A budget is a USD limit on one scope (everything, one caller, one model group)
over one UTC period (a day or a month). Money is integer micro-USD everywhere:
sums of floats drift, sums of integers do not.

The kinds of scope are declared once, in `SCOPES`: each names its mapping under
`budgets:` and the key of a call whose value names its scope (`caller:alice`,
`model:smart`), and says whether its budgets are each one caller's (`private`:
another caller does not see them); `scopes(keys)` gives every scope a call counts in. The ledger's
backends and reservations hold, check and charge by those scope strings alone.

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
    "CALLER", "GROUP", "OVERALL", "SCOPES", "Budget", "BudgetError", "Budgets", "Period", "ScopeKind", "dollars",
    "micro", "period_key", "reset_at", "scope_of", "scopes", "usd",
]

MICRO = 1_000_000
Period = Literal["day", "month"]
_PERIODS: tuple[Period, ...] = ("day", "month")
_KEYS = frozenset({"day", "month", "unpriced"})

OVERALL = "all"
"""The scope every call counts in, limited by the overall budgets (the section's own day and month)."""
CALLER, GROUP = "caller", "group"
"""The keys every call has: its caller, and the model group it is on (one per group it may reach)."""


@dataclass(frozen=True)
class ScopeKind:
    """One kind of budget scope: its budgets limit the calls whose key `key` has the budget's name."""

    kind: str
    """A budget's `scope`, and its scope strings' prefix (`caller` -> `caller:alice`)."""
    section: str
    """Its mapping of names to budgets under `budgets:` (`callers`)."""
    key: str
    """The call's key its names match. `GROUP`: a call holds one such scope for each model group it may reach,
    at that group's own worst case; any other key, one scope at the call's worst case (the dearest group's)."""
    noun: str
    """What its names are, in the line refusing a name not known."""
    label: str
    """Its budgets' label, `{name}` their name (`caller {name}'s`)."""
    private: bool
    """Its budgets are each one caller's own (their names are callers'): a caller sees only the one naming it
    (`hive://usage`, `hive-mcp usage`), an admin every one. Not private: every caller sees them all."""


SCOPES: tuple[ScopeKind, ...] = (
    ScopeKind("caller", "callers", CALLER, "caller (token names and local)", "caller {name}'s", private=True),
    ScopeKind("model", "models", GROUP, "model group", "model group {name}'s", private=False),
)
"""Every kind of scope a budget can have besides the overall one; the one place a kind is declared."""


def _kind(scope: str) -> ScopeKind:
    return next(k for k in SCOPES if k.kind == scope)


def scopes(keys: Mapping[str, str]) -> list[tuple[str, bool]]:
    """Each scope a call with `keys` counts in (`all`, then `KIND:VALUE` for each declared kind whose key it
    has), and whether that scope follows its model group (`ScopeKind.key`)."""
    return [(OVERALL, False), *((f"{k.kind}:{keys[k.key]}", k.key == GROUP) for k in SCOPES if k.key in keys)]


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
    """One limit: `scope` (`all`, or a kind of `SCOPES`, its one scope named by `name`) over one UTC `period`."""

    scope: str
    name: str
    period: Period
    limit: int
    """micro-USD"""
    allow_unpriced: bool = False

    @property
    def id(self) -> str:
        """Stable across processes: `all:day`, `caller:alice:month`, `model:smart:day`."""
        return f"{self.scope}:{self.period}" if self.scope == OVERALL else f"{self.scope}:{self.name}:{self.period}"

    @property
    def per_group(self) -> bool:
        """Its scope follows the model group: it limits the calls on group `name`, each at that group's prices."""
        return self.scope != OVERALL and _kind(self.scope).key == GROUP

    @property
    def private(self) -> bool:
        """It is one caller's own, named by `name` (`ScopeKind.private`): hidden from every other caller."""
        return self.scope != OVERALL and _kind(self.scope).private

    def label(self) -> str:
        what = "overall" if self.scope == OVERALL else _kind(self.scope).label.format(name=self.name)
        return f"{what} {'daily' if self.period == 'day' else 'monthly'} budget of {dollars(self.limit)}"

    def applies(self, keys: Mapping[str, str]) -> bool:
        """Whether it limits a call with `keys` (`CALLER`, `GROUP` and any other key a kind reads)."""
        return self.scope == OVERALL or keys.get(_kind(self.scope).key) == self.name


def scope_of(b: Budget) -> str:
    """The scope a budget limits, as `scopes` names it and reservations hold it: `all`, `caller:NAME`, ..."""
    return OVERALL if b.scope == OVERALL else f"{b.scope}:{b.name}"


@dataclass(frozen=True)
class Budgets:
    """Every configured budget."""

    items: tuple[Budget, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def applying(self, keys: Mapping[str, str]) -> list[Budget]:
        return [b for b in self.items if b.applies(keys)]

    @classmethod
    def from_settings(
        cls,
        *,
        day: float | None,
        month: float | None,
        section: Mapping[str, Any] | None,
        max_budget: float | None = None,
        max_budget_duration: str | None = None,
        names: Mapping[str, Iterable[str]] | None = None,
    ) -> Budgets:
        """The budgets the settings give. `names`: each kind's names that exist (`caller`: the callers); a kind
        it leaves out (or None) takes any name.

        Overall limits: the variable, else the section's, else litellm's `max_budget`: a daily limit when its
        `budget_duration` is `1d`/`24h`, else a monthly one (hive-mcp's periods are UTC days and months).
        """
        litellm_period = "day" if str(max_budget_duration or "").strip().lower() in ("1d", "24h") else "month"
        section = dict(section or {})
        _check_keys(section, _KEYS | {k.section for k in SCOPES}, "budgets")
        unpriced = _unpriced(section, "budgets")
        out: list[Budget] = []
        for period, given in (("day", day), ("month", month)):
            value = given if given is not None else _amount(section, period, "budgets")
            if value is None and period == litellm_period and max_budget is not None:
                value = _usd(max_budget, "litellm_settings.max_budget")
            if value is not None:
                out.append(Budget(OVERALL, "", period, micro(value), unpriced))  # type: ignore[arg-type]
        for kind in SCOPES:
            entries = section.get(kind.section) or {}
            if not isinstance(entries, Mapping):
                raise BudgetError(f"budgets.{kind.section}: must be a mapping of names to budgets, not {entries!r}")
            known = None if names is None or kind.kind not in names else set(names[kind.kind])
            for name, spec in entries.items():
                where = f"budgets.{kind.section}.{name}"
                if known is not None and str(name) not in known:
                    raise BudgetError(f"{where}: not a known {kind.noun}; known: {', '.join(sorted(known)) or 'none'}")
                if not isinstance(spec, Mapping):
                    raise BudgetError(f"{where}: must be a mapping with day and/or month, not {spec!r}")
                _check_keys(spec, _KEYS, where)
                allow = _unpriced(spec, where)
                for period in _PERIODS:
                    value = _amount(spec, period, where)
                    if value is not None:
                        out.append(Budget(kind.kind, str(name), period, micro(value), allow))
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

"""Spend: the usage ledger and the budgets enforced before a call (no MCP, no litellm here).

`budgets` (what a budget is, UTC periods, reading the settings, and `SCOPES`:
every kind of budget scope, declared there alone), `ledger` (the shapes and the
backend interface), `sqlite_backend` and `redis_backend` (the stores, by scope
string), `journal` (settled calls on disk until the backend took them), `reserving`
(the worst case held before a call), `settling` (the actual cost charged after
it), `service` (`Spend`: both halves, and the usage its readers see).
"""

from .budgets import Budget, BudgetError, Budgets
from .ledger import Backend, CallRecord, Charge, Refused, Reservation, TotalRow
from .service import BudgetRefusal, Spend, Ticket, utc_now
from .sqlite_backend import SQLiteBackend, default_spend_path

__all__ = [
    "Backend", "Budget", "BudgetError", "BudgetRefusal", "Budgets", "CallRecord", "Charge", "Refused", "Reservation",
    "SQLiteBackend", "Spend", "Ticket", "TotalRow", "default_spend_path", "utc_now",
]

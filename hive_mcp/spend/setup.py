"""The server's `Spend` from its settings and models config: budgets checked, the ledger's store (opened for
the state URL's kind by `hive_mcp.backends.spend_ledger`) wrapped.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..tokens import LOCAL_CALLER, caller_name
from .budgets import Budgets
from .ledger import Backend
from .service import Spend

if TYPE_CHECKING:
    from ..llms.config import ModelsConfig
    from ..provider.base import LLMProvider
    from ..settings import Settings

__all__ = ["callers_of", "configured_budgets", "open_spend"]


def callers_of(tokens: Iterable[str]) -> list[str]:
    """Every caller name there can be: each token's name, and `local` (stdio, or HTTP without tokens)."""
    return [LOCAL_CALLER, *(caller_name(t.encode()) for t in tokens)]


def configured_budgets(settings: Settings, config: ModelsConfig | None, tokens: Iterable[str] | None) -> Budgets:
    """The budgets of the settings; raises BudgetError (one line) for a bad one.

    With `tokens`, a caller's budget must name a token's caller (or `local`) and a model's budget a group of
    the config (the default model without one); None takes any name (`hive-mcp usage`, which reads no tokens).
    """
    return Budgets.from_settings(
        day=settings.budget_usd_day,
        month=settings.budget_usd_month,
        section=settings.budgets,
        max_budget=config.budget.get("max_budget") if config is not None else None,
        max_budget_duration=config.budget.get("budget_duration") if config is not None else None,
        names=None if tokens is None else {
            "caller": callers_of(tokens), "model": config.groups if config is not None else [settings.model],
        },
    )  # fmt: skip


def open_spend(settings: Settings, store: Backend, provider: LLMProvider, budgets: Budgets) -> Spend:
    """The ledger of this server on `store` over `budgets` (`configured_budgets`); nothing is opened before the
    first call."""
    spend = Spend(store, budgets, provider, admins=frozenset(settings.admins))
    # Serving's end writes and releases (the HTTP app's lifespan shutdown, the end of stdio): this is the backstop
    # for what settles after it (a call uvicorn cancels past the grace period) or a process that leaves otherwise.
    atexit.register(spend.release_all)
    # What a process that died left in its journal goes into the ledger now, not at this one's first call.
    assert spend.journal is not None  # set by Spend itself
    threading.Thread(target=spend.journal.replay, name="hive-mcp-journal-replay", daemon=True).start()
    return spend


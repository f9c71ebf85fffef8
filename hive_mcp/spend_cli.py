"""`hive-mcp usage [--since 7d] [--by model|caller|day] [--json]`: the operator's view of the spend ledger.

The ledger is the one the server would use (SQLite in the hive home, or
HIVE_MCP_STATE_URL), seen whole: every caller. Budgets come from the same
settings (and the `--config` / HIVE_MCP_CONFIG file's `hive_mcp:` section), read
by `cli` (`cli_common.command_settings`).
Neither litellm nor mcp is imported.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .cli_common import cost_cell, parse_since, print_table

if TYPE_CHECKING:
    from .llms.config import ModelsConfig
    from .settings import Settings

__all__ = ["SETTINGS", "add_usage_parser", "run_usage"]

SETTINGS = (
    "state_url", "state_password", "spend_keep_days", "spend_calls_days", "budget_usd_day", "budget_usd_month",
    "budgets", "admins",
)  # fmt: skip
"""What `usage` reads (with the config and the default model, as every command does)."""
_BY = {"model": lambda r: r.group, "caller": lambda r: r.caller, "day": lambda r: r.day}


def add_usage_parser(commands: Any, prog: str, parser_class: type[argparse.ArgumentParser]) -> None:
    """The `usage` command, under `commands` (the top-level subparsers)."""
    usage = commands.add_parser(
        "usage", prog=f"{prog} usage", help="what was spent, by model group, caller or day; budgets left",
        description="Spend from the ledger (SQLite in the hive home, or HIVE_MCP_STATE_URL), in USD. Days are UTC.",
    )  # fmt: skip
    usage.add_argument("--since", default="30d", metavar="WHEN",
                       help="a duration back from now (7d, 12h) or a date (2026-11-20); default 30d")  # fmt: skip
    usage.add_argument("--by", choices=tuple(_BY), default="model", help="group the rows by (default model)")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _cost(cost: int, calls: int, unpriced: int) -> str:
    """The cost column of micro-USD `cost` (`cli_common.cost_cell`)."""
    return cost_cell(cost / 1e6, calls, unpriced)


def run_usage(args: argparse.Namespace, settings: Settings, config: ModelsConfig | None) -> tuple[int, str | None]:
    """Run it on `settings` and `config` (`SETTINGS`, read by `cli`): (exit code, error line or None). Bad input
    exits 2, a failing ledger 1."""
    from .spend import BudgetError
    from .backends import spend_ledger
    from .spend.setup import configured_budgets
    from .spend.usage import rows_since, spent_by, unpriced_by, usage_report

    now = datetime.now(timezone.utc)
    try:
        since = parse_since(args.since, now=now)
        budgets = configured_budgets(settings, config, None)
    except (ValueError, BudgetError) as exc:
        return 2, str(exc)
    backend = spend_ledger(settings)
    try:
        rows = rows_since(backend, since)
        report = usage_report(backend, budgets, now)
    except Exception as exc:  # noqa: BLE001 - one line naming the ledger
        return 1, f"the spend ledger ({backend.name}) did not answer: {type(exc).__name__}: {exc}"
    finally:
        backend.close()
    grouped, unpriced = spent_by(rows, _BY[args.by]), unpriced_by(rows, _BY[args.by])
    total = (sum(c for c, _ in grouped.values()), sum(n for _, n in grouped.values()), sum(unpriced.values()))
    if args.json:  # a cost of null: every call of the row was unpriced; a number leaves out its unpriced calls
        doc = {
            "since": since.isoformat(), "by": args.by, "ledger": backend.name,
            "rows": [{args.by: k, "cost_usd": None if unpriced[k] == n else c / 1e6, "calls": n,
                      "unpriced_calls": unpriced[k]} for k, (c, n) in grouped.items()],
            "total_usd": total[0] / 1e6, "unpriced_calls": total[2],
            "budgets": [b.model_dump(mode="json") for b in report.budgets],
        }  # fmt: skip
        print(json.dumps(doc, indent=2))
        return 0, None
    table = [(k, _cost(c, n, unpriced[k]), str(n)) for k, (c, n) in grouped.items()]
    table.append(("TOTAL", _cost(*total), str(total[1])))
    print_table((args.by.upper(), "COST USD", "CALLS"), table)
    if report.budgets:
        print()
        print_table(
            ("BUDGET", "LIMIT USD", "SPENT USD", "RESERVED USD", "LEFT USD", "RESETS (UTC)"),
            [(b.budget, f"{b.limit_usd:.2f}", f"{b.spent_usd:.6f}", f"{b.reserved_usd:.6f}", f"{b.left_usd:.6f}",
              b.resets.strftime("%Y-%m-%d %H:%M")) for b in report.budgets],
        )  # fmt: skip
    return 0, None

"""`hive-mcp usage [--since 7d] [--by model|caller|day] [--json]`: the operator's view of the spend ledger.

The ledger is the one the server would use (SQLite in the hive home, or
HIVE_MCP_STATE_URL), seen whole: every caller. Budgets come from the same
settings (and the `--config` / HIVE_MCP_CONFIG file's `hive_mcp:` section).
Neither litellm nor mcp is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

__all__ = ["add_usage_parser", "run_usage"]

_SETTINGS = (
    "state_url", "state_password", "spend_keep_days", "spend_calls_days", "budget_usd_day", "budget_usd_month",
    "budgets", "admins", "config", "model",
)  # fmt: skip
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


def _cost(micro_usd: int, calls: int, unpriced: int) -> str:
    """A row's cost: `unpriced` when none of its calls had a price, with a `+` when some lacked one."""
    if unpriced and unpriced == calls:
        return "unpriced"
    return f"{micro_usd / 1e6:.6f}" + ("+" if unpriced else "")


def run_usage(args: argparse.Namespace) -> tuple[int, str | None]:
    """Run it: (exit code, error line or None). Bad input exits 2, a failing ledger 1."""
    from .cli import parse_since, print_table
    from .models.config import ConfigError
    from .serve import load_models
    from .settings import SettingsError, load_settings
    from .spend import BudgetError
    from .spend.setup import configured_budgets, open_backend
    from .spend.usage import rows_since, spent_by, usage_report

    now = datetime.now(timezone.utc)
    try:
        since = parse_since(args.since, now=now)
        settings, config = load_models(load_settings(env_file=args.env_file, only=_SETTINGS, export=False))
        budgets = configured_budgets(settings, config, None)
    except (ValueError, ConfigError, SettingsError, BudgetError) as exc:
        return 2, str(exc)
    backend = open_backend(settings)
    try:
        rows = rows_since(backend, since)
        report = usage_report(backend, budgets, now)
    except Exception as exc:  # noqa: BLE001 - one line naming the ledger
        return 1, f"the spend ledger ({backend.name}) did not answer: {type(exc).__name__}: {exc}"
    finally:
        backend.close()
    grouped = spent_by(rows, _BY[args.by])
    unpriced: dict[str, int] = {}
    for r in rows:
        unpriced[_BY[args.by](r)] = unpriced.get(_BY[args.by](r), 0) + r.unpriced_calls
    if args.json:
        doc = {
            "since": since.isoformat(), "by": args.by, "ledger": backend.name,
            "rows": [{args.by: k, "cost_usd": c / 1e6, "calls": n, "unpriced_calls": unpriced.get(k, 0)}
                     for k, (c, n) in grouped.items()],
            "total_usd": sum(c for c, _ in grouped.values()) / 1e6,
            "unpriced_calls": sum(unpriced.values()),
            "budgets": [b.model_dump(mode="json") for b in report.budgets],
        }  # fmt: skip
        print(json.dumps(doc, indent=2))
        return 0, None
    grouped["TOTAL"] = (sum(c for c, _ in grouped.values()), sum(n for _, n in grouped.values()))
    unpriced["TOTAL"] = sum(unpriced.values())
    if unpriced["TOTAL"]:
        # A call litellm could not price counts as 0 USD: "0.000000" would read as free.
        table = [(k, _cost(c, n, unpriced.get(k, 0)), str(n), str(unpriced.get(k, 0))) for k, (c, n) in grouped.items()]
        print_table((args.by.upper(), "COST USD", "CALLS", "UNPRICED"), table)
        print(f"unpriced: {unpriced['TOTAL']} call(s) had no price and count as 0 USD above; give their models' prices "
              "(model_info: input_cost_per_token, output_cost_per_token) in the --config file", file=sys.stderr)
    else:
        print_table((args.by.upper(), "COST USD", "CALLS"), [(k, f"{c / 1e6:.6f}", str(n)) for k, (c, n) in grouped.items()])
    if report.budgets:
        print()
        print_table(
            ("BUDGET", "LIMIT USD", "SPENT USD", "RESERVED USD", "LEFT USD", "RESETS (UTC)"),
            [(b.budget, f"{b.limit_usd:.2f}", f"{b.spent_usd:.6f}", f"{b.reserved_usd:.6f}", f"{b.left_usd:.6f}",
              b.resets.strftime("%Y-%m-%d %H:%M")) for b in report.budgets],
        )  # fmt: skip
    return 0, None

"""What the command modules (`cli`, `conversations_cli`, `spend_cli`) share: the settings a command reads, the
`--since` and `--limit` options as the command line reads them, a cost cell, and tables on stdout. Its own
module so that none of them imports another for these."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .defaults import DEFAULT_PAGE_LIMIT
from .since import parse_since as _parse_since

if TYPE_CHECKING:
    from .llms.config import ModelsConfig
    from .settings import Settings

__all__ = ["add_limit", "command_settings", "cost_cell", "parse_since", "print_table"]

def command_settings(
    flags: Mapping[str, Any], env_file: str | None, only: Iterable[str]
) -> tuple[Settings, ModelsConfig | None]:
    """The settings a command reads (`only`), and the models config, as serving reads them: the top-level flags
    given (each checked as serving checks it, whether or not the command uses it), over the environment and
    `.env`, with the `--config` / HIVE_MCP_CONFIG file's `hive_mcp:` section under them. So a command sees the
    store, the dump directory and the budgets a server started with the same flags would. Raises SettingsError
    (one line) for a bad flag, variable or config."""
    from .llms.config import ConfigError
    from .serve import load_models
    from .settings import SettingsError, load_settings

    given = {name for name, value in flags.items() if value is not None}
    settings = load_settings(flags, env_file=env_file, only={*only, "config", "model", *given}, export=False)
    try:
        return load_models(settings)
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (`--limit`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_limit(parser: argparse.ArgumentParser) -> None:
    """`--limit N` of a `list` command: any N from 1 (past a store's page, the command reads more pages)."""
    parser.add_argument("--limit", type=_positive_int, default=DEFAULT_PAGE_LIMIT, metavar="N",
                        help=f"show at most N (default {DEFAULT_PAGE_LIMIT})")  # fmt: skip


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`--since`: a duration back from now or an ISO date/time, local time unless it has an offset."""
    try:
        return _parse_since(text, now=now, naive=None)
    except ValueError as exc:
        raise ValueError(f"invalid --since {exc}") from None


def cost_cell(usd: float, calls: int, unpriced: int) -> str:
    """A cost column's cell: `unpriced` when none of the row's `calls` had a price (its 0 means nothing), else
    the USD and how many had none."""
    if calls and unpriced == calls:
        return "unpriced"
    return f"{usd:.6f}" + (f" ({unpriced} unpriced)" if unpriced else "")


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """`header` and `rows` on stdout as columns two spaces apart, each as wide as its widest cell."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

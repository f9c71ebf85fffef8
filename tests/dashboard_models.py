"""The Models section the dashboard tests show: the listing an MCP server makes of `catalogues.two_groups`
(`fast`, with an alias and a deployment cooling down, and `smart`), and dumps by day for `fast`."""

from __future__ import annotations

from datetime import datetime, timedelta

from hive_mcp.dashboard.models import day_start
from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from hive_mcp.mcp import ModelList
from hive_mcp.mcp.model_list import ModelsView
from tests.catalogues import two_groups
from tests.dashboard_dumps import failure


def listing() -> ModelList:
    return ModelsView(two_groups(), "fast", Limits()).listing()


def write_days(store: DumpStore, now: datetime) -> dict[str, int]:
    """Dumps for `fast` today (by name, alias and deployment) and yesterday, and one for a model outside both."""
    start = day_start(now)
    today = [start + (now - start) * k for k in (0, 0.3, 0.6, 1)]  # midnight itself counts
    for when, category, model in [
        (today[0], "rate_limit", "fast"),
        (today[1], "rate_limit", "openai/gpt-4o-mini"),
        (today[2], "timeout", "azure/gpt-4o-mini-eu"),
        (today[3], "rate_limit", "quick"),
        (start - timedelta(seconds=1), "auth", "fast"),  # yesterday, one second before midnight
        (start - timedelta(hours=20), "rate_limit", "openai/gpt-4o-mini"),
        (today[3], "auth", "groq/llama-3.1-8b"),
    ]:
        assert store.write(failure(when, category, model))
    return {"fast": 4, "smart": 0, "other": 1}

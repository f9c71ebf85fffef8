"""The Models section the dashboard tests show: a catalogue of two groups (`fast`, with an alias and a
deployment cooling down, and `smart`), the listing an MCP server makes of it, and dumps by day for `fast`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hive_mcp.dashboard.models import day_start
from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from hive_mcp.llms.catalogue import DeploymentInfo, ModelGroup
from hive_mcp.mcp import ModelList
from hive_mcp.mcp.model_list import ModelsView
from tests.catalogues import FakeCatalogue
from tests.dashboard_dumps import failure

COOL_UNTIL = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def two_groups() -> FakeCatalogue:
    """`fast` (two deployments, one cooling down, alias `quick`) and `smart` (one)."""
    return FakeCatalogue(
        [
            ModelGroup(
                name="fast",
                aliases=["quick"],
                deployments=[
                    DeploymentInfo(provider="openai", model="gpt-4o-mini"),
                    DeploymentInfo(provider="azure", model="gpt-4o-mini-eu", healthy=False, cooldown_until=COOL_UNTIL),
                ],
                max_input_tokens=128_000,
                max_output_tokens=16_384,
                input_cost_per_mtok=0.15,
                output_cost_per_mtok=0.6,
            ),
            ModelGroup(name="smart", deployments=[DeploymentInfo(provider="anthropic", model="claude-sonnet-4-5")]),
        ]
    )


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

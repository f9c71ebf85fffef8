"""Every Prometheus metric hive-mcp exports, each defined here once, and the small functions that record them.

Names are `hive_mcp_*` with their unit in the name (seconds, usd, tokens) as Prometheus recommends; labels are
bounded by `labels` (a caller or group only where the operator named it, else `other`; never an id).
prometheus-client is the optional extra `metrics`: without it every function here does nothing. Under
`--workers N` the values live in prometheus-client's multiprocess files (`multiproc`), so one scrape of any
worker returns them all; each gauge says how the workers' values combine.
"""

from __future__ import annotations

from typing import Any

from . import labels

try:
    import prometheus_client as prom
except ImportError:  # the `metrics` extra is not installed
    prom = None

__all__ = [
    "attempt", "budget", "call", "call_finished", "call_started", "conversations_open", "cooldown", "dump_written",
    "enabled", "fallback", "first_chunk", "queue_wait", "retry", "state_latency", "state_outage", "tasks_open",
]  # fmt: skip

CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds a call or its first chunk takes: from a cached answer to a long reasoning call."""
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Seconds hive-mcp itself adds to a call: its promise is milliseconds."""
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0)
"""Seconds waiting for a slot, or for the state backend to answer."""


def enabled() -> bool:
    return prom is not None


def _define() -> dict[str, Any]:
    if prom is None:
        return {}
    counter, histogram, gauge = prom.Counter, prom.Histogram, prom.Gauge
    return {
        "calls": counter(
            "hive_mcp_calls", "Tool calls that reached the provider or were refused, by how they ended.",
            ["tool", "group", "deployment", "outcome", "error_category"]),
        "attempts": counter(
            "hive_mcp_upstream_attempts", "Requests sent upstream (a retry or a fallback is one more).",
            ["group", "deployment", "outcome", "error_category"]),
        "retries": counter(
            "hive_mcp_upstream_retries", "Failed attempts retried in the same group.", ["group", "error_category"]),
        "fallbacks": counter(
            "hive_mcp_fallbacks", "Calls moved from a group to its fallback.", ["group", "error_category"]),
        "duration": histogram(
            "hive_mcp_call_duration_seconds", "Wall time of a tool call.", ["tool", "group"], buckets=CALL_BUCKETS),
        "first_chunk": histogram(
            "hive_mcp_time_to_first_chunk_seconds", "From sending a streamed attempt to its first chunk.",
            ["group", "deployment"], buckets=CALL_BUCKETS),
        "overhead": histogram(
            "hive_mcp_overhead_seconds", "hive-mcp's own time per call: wall time minus time waiting on the upstream.",
            ["tool"], buckets=OVERHEAD_BUCKETS),
        "tokens": counter("hive_mcp_tokens", "Tokens by type (input, output, cached, reasoning).",
                          ["group", "caller", "type"]),
        "cost": counter("hive_mcp_cost_usd", "Cost of calls in US dollars.", ["group", "caller"]),
        "in_flight": gauge("hive_mcp_calls_in_flight", "Tool calls being served now.", ["tool"],
                           multiprocess_mode="livesum"),
        "queue_wait": histogram("hive_mcp_queue_wait_seconds", "Time a call waited for an upstream slot.",
                                buckets=WAIT_BUCKETS),
        "cooldown": gauge("hive_mcp_deployment_cooldown_until_timestamp_seconds",
                          "When a deployment's last cooldown ends (Unix time): cooling down while above time().",
                          ["group", "deployment"], multiprocess_mode="max"),
        "budget_limit": gauge("hive_mcp_budget_limit_usd", "A budget's limit.", ["budget"],
                              multiprocess_mode="mostrecent"),
        "budget_spent": gauge("hive_mcp_budget_spent_usd", "Spent against a budget in its period.", ["budget"],
                              multiprocess_mode="mostrecent"),
        "budget_reserved": gauge("hive_mcp_budget_reserved_usd", "Held for calls in flight against a budget.",
                                 ["budget"], multiprocess_mode="mostrecent"),
        "dumps": counter("hive_mcp_dumps_written", "Failure dumps written."),
        "conversations": gauge("hive_mcp_conversations_open", "Conversations kept.", multiprocess_mode="mostrecent"),
        "tasks": gauge("hive_mcp_tasks_open", "Tasks running now (summed over workers).", multiprocess_mode="livesum"),
        "outages": counter("hive_mcp_state_outages", "Times a state backend stopped answering.", ["store"]),
        "state_latency": histogram("hive_mcp_state_latency_seconds", "State backend round trips.", ["store", "op"],
                                   buckets=WAIT_BUCKETS),
    }  # fmt: skip


_m = _define()


# -- calls (the call chain) ------------------------------------------------------------


def call_started(tool: str) -> None:
    if _m:
        _m["in_flight"].labels(labels.category(tool)).inc()


def call_finished(tool: str) -> None:
    if _m:
        _m["in_flight"].labels(labels.category(tool)).dec()


def call(
    tool: str,
    *,
    group: str | None,
    deployment: str | None,
    outcome: str,
    error_category: str | None,
    duration_s: float,
    overhead_s: float | None,
    caller: str | None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_usd: float = 0.0,
) -> None:
    """One tool call ended: `outcome` ok, error, refused or cancelled; `error_category` the provider's or the
    refusal's category (None when it succeeded)."""
    if not _m:
        return
    tool, g, who = labels.category(tool), labels.group(group), labels.caller(caller)
    _m["calls"].labels(tool, g, labels.deployment(deployment), labels.category(outcome),
                       labels.category(error_category)).inc()  # fmt: skip
    _m["duration"].labels(tool, g).observe(duration_s)
    if overhead_s is not None:
        _m["overhead"].labels(tool).observe(max(0.0, overhead_s))
    for kind, n in (("input", input_tokens), ("output", output_tokens), ("cached", cached_tokens),
                    ("reasoning", reasoning_tokens)):  # fmt: skip
        if n:
            _m["tokens"].labels(g, who, kind).inc(n)
    if cost_usd:
        _m["cost"].labels(g, who).inc(cost_usd)


def queue_wait(seconds: float) -> None:
    if _m:
        _m["queue_wait"].observe(seconds)


# -- attempts (the provider) -----------------------------------------------------------


def attempt(group: str | None, deployment: str | None, outcome: str, error_category: str | None = None) -> None:
    """One upstream attempt ended: `outcome` ok, error, or cancelled (still in flight when its call ended)."""
    if _m:
        _m["attempts"].labels(labels.group(group), labels.deployment(deployment), labels.category(outcome),
                              labels.category(error_category)).inc()  # fmt: skip


def retry(group: str | None, error_category: str) -> None:
    if _m:
        _m["retries"].labels(labels.group(group), labels.category(error_category)).inc()


def fallback(group: str | None, error_category: str) -> None:
    """A call left `group` for its fallback after a failure of `error_category`."""
    if _m:
        _m["fallbacks"].labels(labels.group(group), labels.category(error_category)).inc()


def first_chunk(group: str | None, deployment: str | None, seconds: float) -> None:
    if _m:
        _m["first_chunk"].labels(labels.group(group), labels.deployment(deployment)).observe(seconds)


def cooldown(group: str, deployment: str, until_s: float) -> None:
    """`deployment` of `group` cools down until `until_s` (Unix time)."""
    if _m:
        _m["cooldown"].labels(labels.group(group), labels.deployment(deployment)).set(until_s)


def dump_written() -> None:
    if _m:
        _m["dumps"].inc()


# -- state -----------------------------------------------------------------------------


def budget(name: str, *, limit_usd: float, spent_usd: float, reserved_usd: float) -> None:
    """A budget's standing; `name` is the budget's name in the operator's config (bounded by it)."""
    if _m:
        _m["budget_limit"].labels(name).set(limit_usd)
        _m["budget_spent"].labels(name).set(spent_usd)
        _m["budget_reserved"].labels(name).set(reserved_usd)


def conversations_open(count: int) -> None:
    if _m:
        _m["conversations"].set(count)


def tasks_open(count: int) -> None:
    if _m:
        _m["tasks"].set(count)


def state_outage(store: str) -> None:
    """A state backend (`conversations`, `spend`, `dumps`, `routing`) stopped answering: once per outage."""
    if _m:
        _m["outages"].labels(labels.category(store)).inc()


def state_latency(store: str, op: str, seconds: float) -> None:
    if _m:
        _m["state_latency"].labels(labels.category(store), labels.category(op)).observe(seconds)

"""Which tools may run as tasks, and when a completion becomes one unasked (`tasks.policy.runs_long`, with the
model's reasoning support as the catalogue reports it and the size of the call's text)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread
from mcp_types import CallToolRequestParams

from ..llms.catalogue import Catalogue
from ..tasks.policy import runs_long
from ..tasks.wire import TaskTool

__all__ = ["completion_task_tools"]

COMPLETION_TOOLS = ("complete", "stream_complete")


def _reasoning(catalogue: Catalogue) -> dict[str, bool]:
    """Every group's name and alias -> whether its model reasons. Blocking: the facts are litellm's."""
    return {name: g.supports_reasoning for g in catalogue.groups() for name in (g.name, *g.aliases)}


def _models(arguments: Mapping[str, Any], default_model: str) -> list[str]:
    """The models a call asks: `model` (else the default), or every one of `models` and the `judge`, since a call
    over several lasts as long as its slowest and the judge answers after them."""
    several = arguments.get("models")
    if isinstance(several, list) and several:
        judge = arguments.get("judge")
        return [m for m in (*several, judge) if isinstance(m, str)]
    model = arguments.get("model")
    return [model if isinstance(model, str) and model else default_model]


def _input_chars(arguments: Mapping[str, Any]) -> int:
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v, default=str))
               for k, v in arguments.items() if k in ("prompt", "messages", "system") and v is not None)  # fmt: skip


def completion_task_tools(catalogue: Catalogue, default_model: str) -> dict[str, TaskTool]:
    """`complete` and `stream_complete`: optional tasks, run as one unasked when `runs_long` says so.

    Which models reason is read once, in a worker thread (on first use the catalogue asks litellm, which may
    still be loading), and kept: a group's facts never change while the server runs."""
    reasoning: dict[str, bool] | None = None

    async def decide(params: CallToolRequestParams) -> bool:
        nonlocal reasoning
        if reasoning is None:
            reasoning = await anyio.to_thread.run_sync(_reasoning, catalogue)
        arguments = params.arguments or {}
        slow = any(reasoning.get(name, False) for name in _models(arguments, default_model))
        return runs_long(reasoning=slow, input_chars=_input_chars(arguments))

    return {name: TaskTool("optional", decide) for name in COMPLETION_TOOLS}

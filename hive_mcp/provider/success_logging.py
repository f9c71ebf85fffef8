"""litellm's success logging of an answered call, run after the answer is handed on.

litellm builds its success log (the response's cost, its standard logging payload,
then each callback) in a task it starts as the reply arrives, on the same event
loop, so it runs while the answer is still being recorded and before it is sent.
The LiteLLM proxy defers that work until its response is out (`defer_async_logging`,
then `enqueue_deferred_logging`); a non-streamed call here does the same, the
answer being out once the task that asked for the call is done, or
`SUCCESS_LOGGING_WITHIN_S` after the reply at the latest (a task that goes on
asking does not hold its calls' logs). Every success is still logged, once: a
callback or a Router strategy that learns from successes hears of it a moment later.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from typing import Any

from .offline import litellm

logger = logging.getLogger("hive_mcp.provider")

__all__ = ["SUCCESS_LOGGING_WITHIN_S", "defer_success_logging", "release_success_logging"]

SUCCESS_LOGGING_WITHIN_S = 1.0
"""The longest a call's success log waits for the task that asked for the call."""


def defer_success_logging(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """`litellm.acompletion`'s `kwargs` with a logging object of their own whose success logging waits for
    `release_success_logging`; and that object. The object is made as litellm's own wrapper makes it."""
    kwargs = {**kwargs, "litellm_call_id": str(uuid.uuid4())}
    logging_obj, kwargs = litellm.utils.function_setup(
        "acompletion", litellm.utils.Rules(), datetime.datetime.now(), **kwargs  # noqa: DTZ005 - litellm's naive times
    )
    logging_obj.defer_async_logging = True
    return {**kwargs, "litellm_logging_obj": logging_obj}, logging_obj


def release_success_logging(logging_obj: Any) -> None:
    """Let `logging_obj`'s success log go once the current task is done, or within `SUCCESS_LOGGING_WITHIN_S`."""

    def go(_: object = None) -> None:
        enqueue, logging_obj.enqueue_deferred_logging = logging_obj.enqueue_deferred_logging, None
        if enqueue is None:  # the first of the two let it go; a failed call parked nothing
            return
        try:
            enqueue()
        except Exception as exc:  # noqa: BLE001 - a loop closing under a late log: litellm's logging only
            logger.debug("litellm's success logging not run: %s: %s", type(exc).__name__, exc)

    task = asyncio.current_task()
    if task is None:
        go()
        return
    bound = asyncio.get_running_loop().call_later(SUCCESS_LOGGING_WITHIN_S, go)

    def done(_: object) -> None:
        bound.cancel()  # not left in the loop's timers for the rest of the second, one per call
        go()

    task.add_done_callback(done)

"""litellm's success logging of a call runs after the answer is handed on: once the task that asked for it is done,
or `SUCCESS_LOGGING_WITHIN_S` after the reply at the latest, and never not at all. Through litellm's real HTTP path
to the scripted upstream, with a litellm callback registered as a user (or a Router strategy) registers one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest

from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.offline import litellm
from harness.upstream import Reply, Upstream
from tests.provider_calls import USER


class Heard(litellm.integrations.custom_logger.CustomLogger):  # type: ignore[misc, name-defined]
    """A litellm callback: when each success was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []
        self.event = asyncio.Event()

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:  # type: ignore[no-untyped-def]
        self.at.append(time.monotonic())
        self.event.set()


@pytest.fixture
def heard() -> Iterator[Heard]:
    logger = Heard()
    litellm.logging_callback_manager.add_litellm_callback(logger)
    try:
        yield logger
    finally:  # litellm copies a callback into its per-event lists: it leaves all of them
        litellm.logging_callback_manager.remove_callback_from_all_lists(logger)


async def test_a_calls_success_is_logged_once_the_task_that_asked_is_done(
    provider: LiteLLMProvider, upstream: Upstream, heard: Heard
) -> None:
    upstream.script(Reply.text("hello"))
    done_at: list[float] = []

    async def ask() -> None:
        assert (await provider.acomplete(USER)).content == "hello"
        for _ in range(3):  # the answer recorded (a store's thread), as the conversation step records it
            await anyio.to_thread.run_sync(lambda: None)
        done_at.append(time.monotonic())

    await asyncio.create_task(ask())
    await asyncio.wait_for(heard.event.wait(), 10)
    assert len(heard.at) == 1 and heard.at[0] >= done_at[0]


async def test_a_task_that_goes_on_after_its_call_has_it_logged_within_the_bound(
    provider: LiteLLMProvider, upstream: Upstream, heard: Heard
) -> None:
    upstream.script(Reply.text("hello"))
    assert (await provider.acomplete(USER)).content == "hello"
    await asyncio.wait_for(heard.event.wait(), 10)  # this task is still running: the bound let it go
    assert len(heard.at) == 1

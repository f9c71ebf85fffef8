"""The calls the benchmark sections time: `complete` and `stream_complete` as a client makes them, litellm's own
stream recorded the same way, and the check that each stream's text came through whole and in order."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mcp import Client
from mcp_types import CallToolResult

from bench.common import API_KEY, CALL_S, PROMPT, USER, Bench, BenchError, import_litellm
from bench.upstream_proc import STAMP

def content_of(result: CallToolResult) -> str:
    """The reply's text; a failed call raises, since its timing would mean nothing."""
    if result.is_error:
        raise BenchError("call failed: " + "".join(getattr(c, "text", "") for c in result.content))
    assert result.structured_content is not None
    return result.structured_content["content"]


async def complete(client: Client, **args: object) -> str:
    return content_of(await client.call_tool("complete", {"prompt": PROMPT, **args}, read_timeout_seconds=CALL_S))


@dataclass
class StreamRun:
    """One `stream_complete` call as the client saw it: each progress message with its arrival time."""

    started_ns: int
    finished_ns: int = 0
    content: str = ""
    messages: list[tuple[int, str]] = field(default_factory=list)

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        if message:  # heartbeats carry none
            self.messages.append((time.perf_counter_ns(), message))

    @property
    def text(self) -> str:
        return "".join(m for _, m in self.messages)

    @property
    def elapsed_s(self) -> float:
        return (self.finished_ns - self.started_ns) / 1e9

    @property
    def intact(self) -> bool:
        """The promise of stream_complete: the joined progress messages are the final content."""
        return self.text == self.content

    def stamps(self) -> list[int]:
        """The upstream's send times (paced streams), in the order they arrived."""
        return [int(s) for _, m in self.messages for s in STAMP.findall(m)]

    def latencies_ms(self) -> list[float]:
        """For each paced chunk: from the upstream writing it to its text reaching the progress callback.

        perf_counter_ns is CLOCK_MONOTONIC, one clock for every process on the machine.
        """
        return [(at - int(s)) / 1e6 for at, m in self.messages for s in STAMP.findall(m)]


Streamer = Callable[[str], Awaitable[StreamRun]]
"""Streams one reply of the given model, recording what arrived when."""


async def litellm_stream(bench: Bench, model: str) -> StreamRun:
    """litellm's own stream, in-process, recorded like a `stream_complete` call: each delta a message."""
    litellm = import_litellm()
    run = StreamRun(time.perf_counter_ns())
    response = await litellm.acompletion(
        model=model, api_base=bench.upstream.base_url, api_key=API_KEY, messages=USER, stream=True
    )
    async for chunk in response:
        if chunk.choices and (text := chunk.choices[0].delta.content):
            run.messages.append((time.perf_counter_ns(), text))
    run.finished_ns = time.perf_counter_ns()
    run.content = run.text
    return run


async def stream_complete(client: Client, model: str, **args: object) -> StreamRun:
    run = StreamRun(time.perf_counter_ns())
    result = await client.call_tool(
        "stream_complete", {"prompt": PROMPT, "model": model, **args}, read_timeout_seconds=CALL_S,
        progress_callback=run.on_progress,
    )  # fmt: skip
    run.finished_ns = time.perf_counter_ns()
    run.content = content_of(result)
    return run


class Checks:
    """Counts the streams whose text came through whole and in order; keeps the first few that did not."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}
        self.problems: list[str] = []

    def record(self, variant: str, ok: bool, detail: str) -> None:
        count = self.counts.setdefault(variant, [0, 0])
        count[0] += ok
        count[1] += 1
        if not ok and len(self.problems) < 10:
            self.problems.append(f"{variant}: {detail}")

    def check_stream(self, variant: str, run: StreamRun, *, expected: str | None = None, stamps: int = 0) -> None:
        """The joined progress is the final content, and the upstream's text (`expected`) or
        its `stamps` paced chunks, in the order sent, where they are known."""
        if not run.intact:
            self.record(variant, False, f"joined progress ({len(run.text)} chars) != final content "
                        f"({len(run.content)} chars); first difference at {_first_difference(run.text, run.content)}")
        elif expected is not None and run.content != expected:
            self.record(variant, False, f"content ({len(run.content)} chars) != the upstream's "
                        f"({len(expected)} chars); first difference at {_first_difference(run.content, expected)}")
        elif stamps and len(run.stamps()) != stamps:
            self.record(variant, False, f"{len(run.stamps())} of {stamps} paced chunks arrived")
        elif run.stamps() != sorted(run.stamps()):
            self.record(variant, False, "paced chunks arrived out of order")
        else:
            self.record(variant, True, "")

    def as_json(self) -> dict[str, str]:
        return {variant: f"{ok}/{total} intact" for variant, (ok, total) in self.counts.items()}


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

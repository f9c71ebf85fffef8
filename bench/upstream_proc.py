"""The scripted upstream (harness/upstream.py) in a process of its own, replying by model name.

Run in its own process so it never competes for the GIL with what is measured.
`python -m bench.upstream_proc` prints its port, then serves until stdin closes
(so it also goes when the benchmark dies). litellm strips the `openai/` prefix,
so the upstream sees the model names below:

    bench-text            a short non-streaming completion
    bench-stream-N        N text chunks, sent as fast as possible
    bench-paced-R-N       N chunks at R a second; each chunk's text is `<T>`, T
                          the upstream's time.perf_counter_ns() as it sends it
    bench-slow-MS-NAME    a short non-streaming completion sent MS milliseconds after the request
                          (NAME tells several such models apart)

`GET /stats` answers the upstream's counters and when (perf_counter_ns) each
completion request arrived; `GET /stats?reset=1` also starts them afresh.
"""

from __future__ import annotations

import re
import sys
import time

from harness.upstream import RecordedRequest, Reply, Upstream

TEXT_MODEL = "openai/bench-text"
TEXT_REPLY = "hello"
STAMP = re.compile(r"<(\d+)>")
"""A paced chunk's send time, in the text the client receives."""

_STREAM = re.compile(r"bench-stream-(\d+)")
_PACED = re.compile(r"bench-paced-(\d+)-(\d+)")
_SLOW = re.compile(r"bench-slow-(\d+)-\w+")


def stream_model(chunks: int) -> str:
    return f"openai/bench-stream-{chunks}"


def stream_chunks(chunks: int) -> list[str]:
    """The chunk texts of `stream_model(chunks)`. They differ: litellm rejects a repeated chunk."""
    return [f"tok{i} " for i in range(chunks)]


def stream_text(chunks: int) -> str:
    """The whole reply of `stream_model(chunks)`."""
    return "".join(stream_chunks(chunks))


def paced_model(per_second: int, chunks: int) -> str:
    return f"openai/bench-paced-{per_second}-{chunks}"


def slow_model(ms: int, name: str = "one") -> str:
    """A model whose one reply (`TEXT_REPLY`) takes `ms` to arrive; `name` tells several such models apart."""
    return f"openai/bench-slow-{ms}-{name}"


def _stamp() -> str:
    return f"<{time.perf_counter_ns()}>"


class Replies:
    """`Upstream.reply_for`: the reply a request's model names, or the counters for `/stats`."""

    def __init__(self) -> None:
        self.upstream: Upstream | None = None
        self.arrivals: list[int] = []

    def __call__(self, request: RecordedRequest) -> Reply | None:
        if request.path.startswith("/stats"):
            return self._stats(reset="reset=1" in request.path)
        self.arrivals.append(time.perf_counter_ns())
        model = request.body.get("model", "") if isinstance(request.body, dict) else ""
        if m := _STREAM.fullmatch(model):
            return Reply.stream(stream_chunks(int(m[1])))
        if m := _PACED.fullmatch(model):
            per_second, chunks = int(m[1]), int(m[2])
            return Reply.stream([_stamp] * chunks, delay=1 / per_second)
        if m := _SLOW.fullmatch(model.removeprefix("openai/")):
            return Reply.text(TEXT_REPLY, delay=int(m[1]) / 1000)
        return Reply.text(TEXT_REPLY)

    def _stats(self, *, reset: bool) -> Reply:
        up = self.upstream
        assert up is not None
        body = {
            "requests": len(up.requests),
            "open": up.open_connections,
            "peak": up.peak_connections,
            "arrivals_ns": self.arrivals,
        }
        if reset:
            up.peak_connections = up.open_connections
            self.arrivals = []
        return Reply("json", body=body)


def main() -> None:
    replies = Replies()
    with Upstream(reply_for=replies) as upstream:
        replies.upstream = upstream
        print(upstream.port, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin, or dies


if __name__ == "__main__":
    main()

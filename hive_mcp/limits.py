"""Cost control: which calls may reach the upstream, how big, how long, and how many at once.

`Limits` is what a call's admission asks before it spends money. Every check runs
before any upstream request, so a refused call costs nothing and leaves no dump:

* `check_model` — the model must match one of the allowed fnmatch patterns
  (`gpt-4o*`, `anthropic/*`). The server's default model is always allowed: the
  operator chose it, and a call that names no model gets it.
* `max_tokens_for` — a call may not ask for more than the cap; a call that asks
  for nothing gets the cap when the provider's own default is larger.
* `deadline_for` — a call may shorten the server's deadline, never lengthen it.
* `check_input_size` — prompt + messages + system + tools, measured as UTF-8
  JSON, must fit in `max_input_bytes`.
* `slot(caller)` — at most `max_in_flight` upstream calls at once (an
  `anyio.CapacityLimiter`), and at most `caller_in_flight` of them one caller's;
  a call beyond either waits, first come first served, for at most
  `queue_timeout_s` in all, then gets `Busy`. A caller's extra calls wait in
  their own queue and join the shared one only once a share of theirs is free,
  so they never stand in front of another caller's calls.

A refusal raises `LimitError` (`Busy` for the queue), whose `str()` is one line
naming the argument. The queue lives on one event loop: use one `Limits` per
running server.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .refusal import Refusal
from .defaults import DEFAULT_DEADLINE_S, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_INPUT_BYTES, DEFAULT_QUEUE_TIMEOUT_S
from .text import shorten

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "caller_share",
    "Busy",
    "LimitError",
    "Limits",
    "input_size",
]

LEASE_MARGIN_S = 60.0
"""What a call holds in shared state without renewing it (its budget reservation) outlives its deadline by
this: the provider gives up by the deadline, so a lease never ends while its call runs, and one whose process
died ends this long after the call would have."""

INPUT_FIELDS = ("prompt", "messages", "system", "tools")
"""What counts towards the input limit."""


class LimitError(Refusal, ValueError):
    """A call refused by a limit. `str()` is one line: `invalid arguments: <field>: <why>`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"invalid arguments: {self.field}: {self.message}"


def caller_share(max_in_flight: int) -> int:
    """The calls one caller may have in flight when not configured: half the server's, at least 1."""
    return max(1, max_in_flight // 2)


class Busy(LimitError):
    """Every upstream slot (or every one of the caller's share) stayed taken for the whole queue timeout."""

    def __init__(self, max_in_flight: int, waited_s: float, whose: str = "") -> None:
        super().__init__(
            "busy",
            f"the server is busy: {max_in_flight} calls{whose} are already in flight and this one waited "
            f"{waited_s:g}s for a turn; try again later",
        )

    def __str__(self) -> str:
        return self.message


def input_size(value: Any) -> int:
    """The size of `value` as compact UTF-8 JSON, in bytes (lone surrogates count as 3 bytes)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return len(text.encode("utf-8", "surrogatepass"))


class Limits:
    """The server's cost controls; the defaults only bound concurrency, deadline and input size."""

    def __init__(
        self,
        *,
        allowed_models: Iterable[str] = (),
        max_tokens: int | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
        caller_in_flight: int | None = None,
    ) -> None:
        """`caller_in_flight`: the calls one caller may have in flight (None: no share, as over stdio, where
        there is one caller)."""
        patterns = tuple(p.strip() for p in allowed_models if p and p.strip())
        if max_tokens is not None and max_tokens < 1:
            raise ValueError("max_tokens must be at least 1 (or None for no cap)")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if not (math.isfinite(queue_timeout_s) and queue_timeout_s >= 0):
            raise ValueError("queue_timeout_s must be a finite number >= 0")
        if not (math.isfinite(deadline_s) and deadline_s > 0):
            raise ValueError("deadline_s must be a finite number > 0")
        if max_input_bytes < 1:
            raise ValueError("max_input_bytes must be at least 1")
        if caller_in_flight is not None and caller_in_flight < 1:
            raise ValueError("caller_in_flight must be at least 1 (or None for no share)")
        self.allowed_models = patterns
        self.max_tokens = max_tokens
        self.max_in_flight = max_in_flight
        self.queue_timeout_s = float(queue_timeout_s)
        self.deadline_s = float(deadline_s)
        self.max_input_bytes = max_input_bytes
        # FIFO hand-off: a released slot goes to the oldest waiter, so a newcomer cannot overtake the
        # queue; a waiter cancelled as it is handed one passes it on.
        self._limiter = anyio.CapacityLimiter(max_in_flight)
        self.caller_in_flight = caller_in_flight
        # Each caller's share, while one of their calls holds or waits for it (then dropped: no growth).
        self._shares: dict[str, anyio.CapacityLimiter] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The settings' limits; over HTTP each caller gets a share (HIVE_MCP_CALLER_IN_FLIGHT, else
        `caller_share`), over stdio the one caller has them all."""
        share = None
        if settings.transport != "stdio":
            share = settings.caller_in_flight or caller_share(settings.max_in_flight)
        return cls(
            caller_in_flight=share,
            allowed_models=settings.allowed_models,
            max_tokens=settings.max_tokens,
            max_in_flight=settings.max_in_flight,
            queue_timeout_s=settings.queue_timeout_s,
            deadline_s=settings.deadline_s,
            max_input_bytes=settings.max_input_bytes,
        )

    def __repr__(self) -> str:
        return (
            f"Limits(allowed_models={self.allowed_models!r}, max_tokens={self.max_tokens!r}, "
            f"max_in_flight={self.max_in_flight}, caller_in_flight={self.caller_in_flight!r}, "
            f"queue_timeout_s={self.queue_timeout_s:g}, "
            f"deadline_s={self.deadline_s:g}, max_input_bytes={self.max_input_bytes})"
        )

    # -- per-call checks -------------------------------------------------------------

    def model_allowed(self, model: str) -> bool:
        return not self.allowed_models or any(fnmatch.fnmatchcase(model, p) for p in self.allowed_models)

    def check_model(self, requested: str | None, default: str) -> str:
        """The model to use: `requested`, or `default` when None. The default model always passes."""
        if requested is None or requested == default:
            return default
        if not self.model_allowed(requested):
            shown = shorten(requested, 80)
            raise LimitError(
                "model",
                f"{shown!r} is not allowed on this server; allowed: {', '.join(self.allowed_models)} "
                f"(or the default, {default})",
            )
        return requested

    def max_tokens_for(self, requested: int | None, provider_default: int | None) -> int | None:
        """The max_tokens to send, None for the provider's default. Raises LimitError above the cap."""
        cap = self.max_tokens
        if cap is None:
            return requested
        if requested is not None:
            if requested > cap:
                raise LimitError("max_tokens", f"{requested} is over this server's cap of {cap}")
            return requested
        if provider_default is None or provider_default > cap:
            return cap
        return None

    def deadline_for(self, requested: float | None) -> float:
        """The call's deadline in seconds. Raises LimitError when longer than the server's."""
        if requested is None:
            return self.deadline_s
        if requested > self.deadline_s:
            raise LimitError("deadline_s", f"{requested:g}s is over this server's deadline of {self.deadline_s:g}s")
        return requested

    def check_input_size(self, parts: Mapping[str, Any]) -> int:
        """Refuse an input over `max_input_bytes`, naming its largest part. Returns the size.

        `parts` maps argument names (prompt, messages, system, tools) to what will be
        sent; None values do not count.
        """
        sizes = {name: input_size(value) for name, value in parts.items() if value is not None}
        total = sum(sizes.values())
        if total > self.max_input_bytes:
            largest = max(sizes, key=lambda name: sizes[name])
            raise LimitError(
                largest,
                f"the input is {total:,} bytes ({' + '.join(INPUT_FIELDS)} as UTF-8 JSON), "
                f"over this server's limit of {self.max_input_bytes:,}",
            )
        return total

    # -- concurrency -----------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return int(self._limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        """Calls queued for a slot now, in the shared queue or behind their caller's own calls."""
        return self._limiter.statistics().tasks_waiting + sum(
            share.statistics().tasks_waiting for share in self._shares.values()
        )

    @asynccontextmanager
    async def slot(self, caller: str | None = None) -> AsyncIterator[None]:
        """Hold one of the `max_in_flight` upstream slots for the body, and one of `caller`'s share of them
        (when there are shares); raises Busy after the queue timeout, counted over both waits."""
        borrower = object()  # one slot per call, even when one task makes several
        await anyio.lowlevel.checkpoint_if_cancelled()
        deadline = anyio.current_time() + self.queue_timeout_s
        share = None
        if self.caller_in_flight is not None and caller is not None:
            share = self._shares.setdefault(caller, anyio.CapacityLimiter(self.caller_in_flight))
        try:
            if share is not None and not await _acquire(share, borrower, deadline):
                raise Busy(self.caller_in_flight or 0, self.queue_timeout_s, " of this caller's") from None
            try:
                if not await _acquire(self._limiter, borrower, deadline):
                    raise Busy(self.max_in_flight, self.queue_timeout_s) from None
                try:
                    # The wait can return normally although the call was cancelled meanwhile (the hand-off
                    # woke it first): notice it here, so the slot passes on instead of going unused.
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    yield
                finally:
                    self._limiter.release_on_behalf_of(borrower)
            finally:
                if share is not None:
                    share.release_on_behalf_of(borrower)
        finally:
            if share is not None and not share.borrowed_tokens and not share.statistics().tasks_waiting:
                self._shares.pop(caller, None)  # type: ignore[arg-type]


async def _acquire(limiter: anyio.CapacityLimiter, borrower: object, deadline: float) -> bool:
    """Take a token of `limiter` for `borrower`, waiting until `deadline` at most; whether it was taken.

    A free token is taken even with no time left to wait.
    """
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
        return True
    except anyio.WouldBlock:
        with anyio.CancelScope(deadline=deadline):
            await limiter.acquire_on_behalf_of(borrower)
            return True
        return False

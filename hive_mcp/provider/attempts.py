"""One call's attempts: the log, the deadline, and the rule for what happens after each.

Both the completion and the stream loops drive an `Attempts`, so each rule
(retry or give up, how long to wait, an empty reply, the deadline) lives here once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import anyio

from ..dumps.format import AttemptRecord
from ..text import one_line
from .base import Answering, Cover, LLMResponse, ProviderError, Usage
from .errors import ErrorClass, classify, clean_message, full_text, reply_usage, timed_out_unsent
from .replies import billed_usage
from .retry import RetryPolicy, response_headers, retry_delay
from .telemetry import CallTelemetry

if TYPE_CHECKING:
    from .routing import Deployment, Route

logger = logging.getLogger("hive_mcp.provider")

EMPTY_REPLY = "the model returned no text and no tool calls"
EMPTY_STREAM = "stream ended with no text and no tool calls"
COVER_LIMIT = 600
"""The longest line of a `cover` hook's refusal kept: a budget's names the budget, two amounts and a reset."""


class Attempts:
    """The attempts of one call to `model`, each recorded as it ends."""

    def __init__(
        self,
        model: str,
        policy: RetryPolicy,
        *,
        max_retries: int | None,
        deadline_s: float,
        secrets: Sequence[str],
        empty_expected: bool,
        max_tokens: int,
        watch: CallTelemetry,
        prompt_owed: Callable[[Deployment | None], Usage],
        route: Route | None = None,
        answering: Answering | None = None,
    ) -> None:
        self.model = model
        self.prompt_owed = prompt_owed
        """What a reply that said nothing of its usage is charged, on a deployment (None: unrouted): its prompt
        by litellm's count, at that deployment's prices (`failure.prompt_owed`)."""
        self.route = route
        self.answering = answering if answering is not None else Answering()
        """Whether the upstream is working on the call (`Answering.working`), kept as each attempt goes and ends."""
        self.watch = watch
        """Each attempt's span and metrics, and the time the call waits on the upstream."""
        self.policy = policy
        self.max_retries = policy.max_retries if max_retries is None else max(0, max_retries)
        self.deadline_s = deadline_s
        self.deadline_at = time.monotonic() + deadline_s
        self.secrets = secrets  # normalized once by the provider (`redact.normalize_secrets`)
        self.empty_expected = empty_expected
        self.max_tokens = max_tokens
        self.records: list[AttemptRecord] = []
        self.response: LLMResponse | None = None
        self.pending_delay = 0.0
        # Retries count per group (a fallback group starts afresh); backoff counts the waits, not the hops.
        self.group_start = 0
        self.waits = 0
        self.empty_streams = 0  # empty streams retried, against the policy's stream_empty_retries
        self.billed = self.answering.billed
        """What the provider billed for replies this call did not keep (empty ones): the call owes it. The request's
        `answering` holds it too, for a call cancelled before its next attempt."""
        self.covered = Usage()
        """`billed` as the request's `cover` hook was last told of it: a retry after a reply billed since must
        tell it again first (`cover`)."""
        self.unread = False
        """The latest attempt owes its prompt, its usage unknown: its 2xx reply was billed and said nothing of its
        usage, or it timed out once the upstream had its request (`Answering.working`). The prompt goes into
        `billed` once another attempt follows (`carry`)."""
        self.unread_on: Deployment | None = None
        """The deployment that attempt went to (None: unrouted)."""

    # -- time ------------------------------------------------------------------------

    def remaining(self) -> float:
        return max(0.0, self.deadline_at - time.monotonic())

    def sleep_s(self, delay: float) -> float:
        """How long to actually sleep for a `delay` the rule chose: scaled, and never past the deadline."""
        return min(delay * self.policy.time_scale, self.remaining())

    def deadline_exceeded(self, sent: tuple[Usage, bool] | None = None) -> ProviderError:
        """The call's deadline ran out. `sent`: the usage the upstream sent for the attempt it cut (a stream's,
        `replies.billed_usage`): what it billed, charged as it stands rather than litellm's count of its prompt
        and text."""
        message = f"the call's deadline of {self.deadline_s:g}s ran out"
        self.record("timeout", None, message, 0.0)
        if sent is not None:
            self.bill(sent[0], stated=sent[1])
        return self.error("timeout", None, message, False)

    # -- the log ---------------------------------------------------------------------

    def record(
        self, error_type: str, status: int | None, message: str, delay: float, detail: str | None = None
    ) -> None:
        deployment = self.route.deployment if self.route is not None else None
        self.watch.ended(error_type, status)
        # A timeout cut what the upstream was working on, if anything (`_timed_out` tells whether its request
        # went); any other end is an error status, a lost connection or a reply (whose callers say whether its
        # usage is known).
        if error_type != "timeout":
            self.answering.working = False
        self.records.append(
            AttemptRecord(
                time=datetime.now(timezone.utc), error_type=error_type, status=status, message=message,
                delay_s=delay, detail=detail, deployment=deployment.label if deployment else None,
                model_group=deployment.group if deployment else None,
            )
        )

    @property
    def count(self) -> int:
        return len(self.records) + (1 if self.response is not None else 0)

    def error(self, error_type: str, status: int | None, message: str, retryable: bool) -> ProviderError:
        if self.route is not None and self.route.skipped:  # a fallback that could have answered was refused
            message = "; ".join([message, *self.route.skipped])
        billed = self.billed if self.billed.input_tokens or self.billed.output_tokens else None
        return ProviderError(
            message, error_type=error_type, model=self.model, attempts=len(self.records), status=status,
            retryable=retryable, billed=billed, upstream_wait_s=self.watch.upstream_wait_s,
        )

    def sending(self) -> None:
        """An attempt's request goes now (unless the deadline has already run out): the upstream works on it until
        an error status comes back."""
        self.answering.working = self.remaining() > 0
        self.answering.counted = False

    def bill(self, reply: Usage, estimated: bool = False, stated: bool = False) -> None:
        """A reply the provider answered (and so billed) that this call does not keep, at its usage (`estimated`:
        litellm's count, a stream's that reported none; `stated`: its cost is the upstream's figure, kept in
        `Answering.stated` too). One that says nothing of its usage leaves the upstream
        `working` on the call: it owes its prompt, by litellm's count, which a call ending now is charged
        (`Spend.settle_short`) and a call going on holds in `billed` (`carry`)."""
        if reply.input_tokens or reply.output_tokens:
            self.billed.add(reply)
            if stated:
                self.answering.stated.add(reply)
            self.answering.estimated += int(estimated)
            self.answering.working, self.answering.counted = False, True
            return
        self.owe_prompt()

    def owe_prompt(self) -> None:
        """The latest attempt owes its prompt (`unread`): the upstream had it in hand, and what it billed for it
        is unknown."""
        self.unread, self.unread_on = True, self.route.deployment if self.route is not None else None
        self.answering.working = True

    def _timed_out(self, exc: BaseException) -> None:
        """An attempt timed out (litellm's timeout, an error status 408: the LiteLLM proxy's answer when its own
        upstream timed out). Once its request went, the upstream may have billed its prompt: owed (`owe_prompt`),
        as a silent 2xx reply's is. Before (`timed_out_unsent`: a connect timeout), nothing was billed."""
        if timed_out_unsent(exc):
            self.answering.working = False
        elif self.answering.working:
            self.owe_prompt()

    async def carry(self) -> None:
        """Another attempt follows one that owes its prompt (`unread`): that prompt (`prompt_owed`, counted in a
        worker thread: a long prompt takes a while) goes into `billed` (`estimated`), so each such attempt is owed
        once whatever ends the call. Cancelled while it counts, nothing changes: the call still owes that prompt
        as `working`."""
        if not self.unread:
            return
        prompt = await anyio.to_thread.run_sync(self.prompt_owed, self.unread_on)
        self.unread = False
        self.billed.add(prompt)
        self.answering.estimated += 1
        self.answering.working = False

    def _bill_failure(self, exc: BaseException, info: ErrorClass, sent: tuple[Usage, bool] | None) -> None:
        """A failure on a reply the upstream answered was billed: the usage it carries (a reply its content filter
        stopped, litellm's count when it was a stream that reported none); else the usage the upstream `sent`
        before the attempt failed (a stream's, with whether its cost was stated: `replies.billed_usage`), whatever
        the failure; else the usage the reply litellm could not read held, quoted in its text. Each at the cost
        its upstream stated, where it stated one."""
        billed = getattr(exc, "billed", None)
        if info.answered and isinstance(billed, Usage):
            self.bill(billed, getattr(exc, "estimated", False), getattr(exc, "stated", False))
        elif sent is not None:
            self.bill(sent[0], stated=sent[1])
        elif info.answered:
            quoted, stated = billed_usage(reply_usage(exc)) or (Usage(), False)
            self.bill(quoted, stated=stated)

    async def next_attempt(self, hook: Cover | None, delay: float | None) -> None:
        """Before an attempt: `cover` what was billed, then wait out the `delay` the last attempt's end chose
        (None before the first). The hook comes first: a retry it refuses is not waited for."""
        await self.carry()
        await self.cover(hook)
        if delay is not None:
            await self.watch.waiting(anyio.sleep(self.sleep_s(delay)))

    async def cover(self, hook: Cover | None) -> None:
        """When a reply was billed since the hook was last told (and so the caller's hold, made for one
        attempt, no longer covers what the call may owe), tell it everything billed so far. A hook that raises
        stops the call here, before the attempt is sent: a `budget` ProviderError carrying what was billed, its
        one line the hook's; the dump's last attempt says it was not retried."""
        if hook is None or self.billed == self.covered:
            return
        try:
            await hook(self.billed.model_copy(), self.answering.stated.model_copy())
        except Exception as exc:  # noqa: BLE001 - whatever the hook refused with, the retry is not sent
            line = one_line(str(exc) or type(exc).__name__, COVER_LIMIT)
            if self.records:  # the billed reply's record: the attempt after it was not sent
                self.records[-1].message += f"; not retried: {line}"
            raise self.error("budget", None, line, False) from None
        self.covered = self.billed.model_copy()

    # -- outcomes --------------------------------------------------------------------

    def failed(self, exc: BaseException, sent: tuple[Usage, bool] | None = None) -> float:
        """Record a failed attempt; return the delay before the next one, or raise ProviderError.

        Routed, a retryable failure goes at once (delay 0) to another healthy deployment of
        the group while there is one, and to the group's fallback when every deployment is
        cooling down; only when nothing else can answer does the wait (Retry-After, else
        backoff) apply. A group whose retries ran out, or a failure retrying cannot mend,
        moves to the next fallback group at once. `sent`: the usage the upstream sent before the
        attempt failed (`_bill_failure`).
        """
        info = classify(exc)
        route = self.route
        if route is not None:
            route.failed(exc, info)
        retries_done = len(self.records) - self.group_start
        if info.retryable and retries_done < self.max_retries:
            if route is not None and route.has_other():
                delay = 0.0
            elif route is not None and route.cooling_down() and route.fall_back(info.error_type):
                return self._fell_back(exc, info, sent)
            else:
                delay = retry_delay(response_headers(exc), self.waits, self.policy)
                self.waits += 1
            self._record_failure(exc, info, delay, sent)
            self.watch.retried(info.error_type)
            logger.warning(
                "%s from %s (attempt %d), retrying in %.2fs", info.error_type, self._where(), len(self.records), delay
            )
            return delay
        if route is not None and route.fall_back(info.error_type):
            return self._fell_back(exc, info, sent)
        raise self._record_failure(exc, info, 0.0, sent)

    def _fell_back(self, exc: BaseException, info: ErrorClass, sent: tuple[Usage, bool] | None) -> float:
        """Record the failure that moved the call to a fallback group, whose retries and backoff start afresh."""
        self._record_failure(exc, info, 0.0, sent)
        self.watch.fell_back(info.error_type)
        self.group_start = len(self.records)
        self.waits = 0
        return 0.0

    def _where(self) -> str:
        deployment = self.route.deployment if self.route is not None else None
        return f"{deployment.label} ({deployment.group})" if deployment is not None else self.model

    def failed_after_text(self, exc: BaseException, sent: tuple[Usage, bool] | None = None) -> ProviderError:
        """A stream failed once its text had gone out: retrying would repeat it, so this is the end
        (routed, the failure still counts against the deployment's health). `sent` as for `failed`."""
        info = classify(exc)
        if self.route is not None:
            self.route.failed(exc, info)
        return self._record_failure(exc, info, 0.0, sent)

    def _record_failure(
        self, exc: BaseException, info: ErrorClass, delay: float, sent: tuple[Usage, bool] | None
    ) -> ProviderError:
        """Log one failed attempt: the one-line message, and the whole text for the dump alone. Billed first: a
        timeout after the upstream sent its usage owes that, not its prompt again (`_timed_out`)."""
        message = info.message or clean_message(exc, self.secrets)
        self.record(info.error_type, info.status, message, delay, full_text(exc, self.secrets))
        self._bill_failure(exc, info, sent)
        if info.error_type == "timeout":
            self._timed_out(exc)
        return self.error(info.error_type, info.status, message, info.retryable)

    def received(self, response: LLMResponse) -> LLMResponse | None:
        """Accept a reply, or record an empty one and return None to retry after `pending_delay`."""
        if response.content or response.tool_calls or response.stop_reason == "refusal" or self.empty_expected:
            return self.accept(response)
        if response.stop_reason == "length":
            self.log_exhausted()
            return self.accept(response)
        retries_done = len(self.records)
        if retries_done >= self.max_retries:
            self.record("empty_response", 200, EMPTY_REPLY, 0.0)
            self.bill(response, response.estimated, response.cost_stated)
            raise self.error("empty_response", 200, "the model returned an empty reply", True)
        delay = retry_delay(None, retries_done, self.policy)
        self.record("empty_response", 200, EMPTY_REPLY, delay)
        self.bill(response, response.estimated, response.cost_stated)
        logger.warning("empty reply from %s (attempt %d), retrying in %.2fs", self.model, retries_done + 1, delay)
        self.pending_delay = delay
        return None

    def empty_stream(self, reply: LLMResponse) -> float | None:
        """A stream ended with no text and no tool calls: None to accept it (an empty reply was expected, or
        max_tokens ran out), else record it and return the delay before the next attempt, or raise
        ProviderError once the policy's empty-stream retries are spent."""
        if self.empty_expected:
            return None
        if reply.stop_reason == "length":
            self.log_exhausted()
            return None
        retry = self.empty_streams < self.policy.stream_empty_retries
        delay = self.policy.stream_empty_delay_s if retry else 0.0
        self.record("empty_stream", 200, EMPTY_STREAM, delay)
        self.bill(reply, reply.estimated, reply.cost_stated)
        if not retry:
            raise self.error("empty_stream", 200, "the model returned an empty stream", False)
        self.empty_streams += 1
        return delay

    def log_exhausted(self) -> None:
        logger.warning("empty reply from %s: max_tokens (%s) was exhausted", self.model, self.max_tokens)

    def accept(self, response: LLMResponse) -> LLMResponse:
        """The reply the call keeps; its usage includes what the replies not kept were billed (`estimated` when
        litellm counted any of them)."""
        self.response = response
        response.attempts = self.count
        response.add(self.billed)
        response.estimated = response.estimated or self.answering.estimated > 0
        if self.route is not None and self.route.deployment is not None:
            response.model = self.route.deployment.label
            response.model_group = self.route.called
            response.answered_group = self.route.deployment.group
        return response

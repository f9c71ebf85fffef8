"""LiteLLMProvider: hive's LiteLLM provider, ported.

Owns the retry loop (litellm's own retries are off, so one attempt is one upstream
request), empty-reply handling, stream assembly and one failure dump per failed call.
The loops live here; how a request is shaped (`shaping`), what each attempt
decides (`attempts`), which deployment of a config's group each attempt goes to
(`routing`), how a reply is read (`replies`) and what a dump holds (`failure`)
live in their own modules.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Literal

import anyio

from ..defaults import DEFAULT_DEADLINE_S, DEFAULT_MODEL
from ..limits import LimitError
from ..text import one_line
from .attempts import Attempts
from .deadline import Expired, ReadDeadline
from .facts import config_facts, default_facts, model_facts, price_of
from .base import CompletionRequest, LLMProvider, LLMResponse, Message, ModelRef, PromptSize, ProviderError, Usage
from .errors import MESSAGE_LIMIT
from .echoes import Scrubber
from .events import FinishEvent, StreamEvent, ToolCallDeltaEvent, ToolCallEvent
from ..dumps.format import DumpWriter, default_dump_dir
from ..redact import credential_values, secret_forms, url_secrets
from .failure import build_dump, count_text, count_tokens, prompt_owed, prompt_size
from .offline import litellm
from .replies import billed_usage, cost, cut_to, from_stream, parse
from .retry import RetryPolicy
from ..llms.catalogue import is_pattern
from .routing import Deployment, ModelRouter
from .shaping import JSON_MODE_INSTRUCTION, Endpoint, Shaped, refused_unsent, shape, unknown_model
from .stream import OutputCap, StreamAssembler, get
from .success_logging import defer_success_logging, release_success_logging
from .telemetry import CallTelemetry

logger = logging.getLogger("hive_mcp.provider")

__all__ = ["JSON_MODE_INSTRUCTION", "LiteLLMProvider"]


def quiet() -> bool:
    """Whether nothing in this process listens to litellm's end of a stream: no callback, no cache.

    With `include_usage`, litellm hands over its usage chunk from its end-of-stream
    pass, once the upstream's stream is over, and then, if asked for the next
    chunk, builds the whole reply again, only for its callbacks and its cache (a
    deep copy, two tasks). When nobody listens, the stream is closed on the usage
    chunk instead. A Router's strategy that learns from callbacks (least-busy,
    latency-based) registers one, and then the pass runs.
    """
    return not (litellm.callbacks or litellm.success_callback or litellm._async_success_callback or litellm.cache)


class LiteLLMProvider(LLMProvider):
    """Any litellm model. Extra kwargs go to every litellm call.

    Per call, `model=`, `temperature=` and other litellm kwargs override; `deadline=`
    (seconds, at most the provider's `deadline_s`) bounds the whole call, retries included.

    Dumps go to `dump_store`; by default (None) a `DumpStore` in `default_dump_dir()`,
    and `False` writes none. Every credential in the environment at construction
    (`redact.credential_values`) and `api_key` are secrets: never in an error, a log
    line or a dump. With a `router` (a models config), `model` names a group or an
    alias, nothing outside the config is callable, and the config's secrets are secrets too;
    so are what `api_base` carries (`redact.url_secrets`) and `secrets` (the server's bearer tokens),
    each also percent- and base64-encoded (`redact.secret_forms`).
    `capture_content` puts prompt and answer text on the attempts' trace spans, redacted of those secrets.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        api_base: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        dump_store: DumpWriter | Literal[False] | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        router: ModelRouter | None = None,
        secrets: Iterable[str] = (),
        capture_content: bool = False,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.capture_content = capture_content
        """Prompt and answer text go on the attempts' trace spans, redacted (`HIVE_MCP_OTEL_CAPTURE_CONTENT`)."""
        self.router = router
        self.deadline_s = deadline_s
        self.api_key = api_key
        self.api_base = api_base
        self.retry = retry or RetryPolicy()
        self.secrets = secret_forms((
            *credential_values(os.environ), api_key, *url_secrets(api_base),
            *(router.config.secrets if router is not None else ()), *secrets,
        ))
        self.echoes = Scrubber(self.secrets)
        """The secrets an upstream's reply may echo, replaced before it is handed on (`echoes`)."""
        if dump_store is None:
            from ..dumps.store import DumpStore

            dump_store = DumpStore(default_dump_dir())
        self.dump_store: DumpWriter | None = None if dump_store is False else dump_store
        self.extra = kwargs
        self._counted_as: dict[str, str] = {}
        """A group's name or alias -> the model its tokens are counted for (`counted_as`): the config does not
        change. A name a wildcard group takes is worked out each time (a caller may make up a new one per call)."""
        self._unpriced: dict[str, bool] = {}
        """A listed deployment's id (or the default model, without a config) -> whether it has no price: the config
        and litellm's local map do not change (`_unpriced_now`)."""
        if self.dump_store is not None:
            for secret in self.secrets:
                self.dump_store.add_secret(secret)

    def warm_up(self) -> None:
        """One offline call (litellm's `mock_response`: no request is sent).

        litellm imports more of itself on its first call, about 0.2-0.3 s here;
        run this while nobody waits and the first real call does not pay it.
        """
        model, api_base = self.model, self.api_base
        if self.router is not None:
            first = next((d for g in self.router.groups if not is_pattern(g) for d in self.router.deployments(g)), None)
            if first is None:  # wildcards alone: no model to name before a call names one
                return
            model, api_base = first.model, None
        try:
            litellm.completion(
                model=model, messages=[{"role": "user", "content": "warm-up"}], mock_response="ok",
                api_key="warm-up", api_base=api_base, num_retries=0,
            )
        except Exception as exc:  # noqa: BLE001 - only a missed speed-up
            logger.debug("litellm warm-up failed: %s: %s", type(exc).__name__, one_line(str(exc), MESSAGE_LIMIT))

    # -- LLMProvider -----------------------------------------------------------------

    def _begin(self, request: CompletionRequest, *, stream: bool) -> _Call:
        """Shape the request and open its attempt log; raises ProviderError (no key, or a name the config lacks)."""
        route = None
        if self.router is not None:
            name = request.model or self.model
            route = self.router.route(name, request.refused_groups)
            endpoint = Endpoint(model=name, api_key=None, api_base=None, extra=self.extra)
        else:
            endpoint = Endpoint(model=self.model, api_key=self.api_key, api_base=self.api_base, extra=self.extra)
        shaped = shape(endpoint, request, stream=stream, routed=route is not None)
        deadline = self.deadline_s if request.deadline is None else min(float(request.deadline), self.deadline_s)
        attempts = Attempts(
            shaped.model, self.retry, max_retries=request.max_retries, deadline_s=deadline,
            secrets=self.secrets, empty_expected=shaped.empty_expected,
            max_tokens=request.max_tokens, route=route, answering=request.answering,
            prompt_owed=functools.partial(prompt_owed, shaped),
            watch=CallTelemetry(
                request, shaped.messages, stream=stream, secrets=self.secrets, capture=self.capture_content
            ),
        )
        return _Call(request, shaped, attempts, stream)

    @staticmethod
    async def _target(call: _Call) -> tuple[dict[str, Any], str]:
        """The next attempt's litellm kwargs and model: routed, on the deployment the route chooses (which the
        request's `answering` then names)."""
        attempts = call.attempts
        route = attempts.route
        if route is None:
            attempts.watch.begin(call.shaped.model, call.shaped.model, call.shaped.model, attempts.count + 1)
            return call.shaped.kwargs, call.shaped.model
        deployment = await route.next(call.shaped.messages)
        if call.request.answering is not None:
            call.request.answering.group, call.request.answering.deployment = deployment.group, deployment.label
        attempts.watch.begin(deployment.model, deployment.group, deployment.label, attempts.count + 1)
        return route.router.attempt_kwargs(call.shaped.kwargs, deployment), deployment.model

    async def _acomplete(self, request: CompletionRequest) -> LLMResponse:
        call = self._begin(request, stream=False)
        attempts = call.attempts
        delay: float | None = None
        try:
            while True:
                try:
                    await attempts.next_attempt(request.cover, delay)
                    with anyio.move_on_after(attempts.remaining()) as scope:
                        kwargs, model = await self._target(call)
                        attempts.sending()
                        if call.shaped.codex:
                            reply = await attempts.watch.waiting(self._collect(kwargs, model))
                        else:
                            kwargs, logging_obj = defer_success_logging(kwargs)
                            response = await attempts.watch.waiting(litellm.acompletion(**kwargs))
                            release_success_logging(logging_obj)
                            reply = parse(response, model, self.echoes)
                        cut_to(reply, model, request.max_tokens)
                    if scope.cancelled_caught:
                        raise attempts.deadline_exceeded()
                except ProviderError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every upstream failure is classified
                    delay = attempts.failed(exc)
                else:
                    done = attempts.received(reply)
                    if done is not None:
                        break
                    delay = attempts.pending_delay
        except ProviderError as err:
            await self._dump(call, err)
            raise
        except BaseException:
            attempts.watch.close()  # cancelled: the attempt in flight ends with the call
            raise
        await self._succeeded(call, done)
        await self._dump(call)
        return done

    async def _stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        try:
            call = self._begin(request, stream=True)
        except ProviderError as err:
            yield err.as_event()
            return
        attempts = call.attempts
        delay: float | None = None
        try:
            while True:
                assembler = StreamAssembler(echoes=self.echoes)
                sent_any = False
                try:
                    await attempts.next_attempt(request.cover, delay)
                    with anyio.move_on_after(attempts.remaining()) as scope:
                        kwargs, model = await self._target(call)
                        attempts.sending()
                        response = await attempts.watch.waiting(litellm.acompletion(**kwargs))
                    if scope.cancelled_caught:
                        raise attempts.deadline_exceeded()
                    assembler.cap = OutputCap(request.max_tokens, functools.partial(count_text, model))
                    assembler.tap(response)
                    deadline = ReadDeadline(attempts.deadline_at)
                    try:
                        chunks = response.__aiter__()
                        while True:
                            try:
                                chunk = await attempts.watch.waiting(deadline.read(chunks.__anext__()))
                            except Expired:
                                raise attempts.deadline_exceeded(self._sent(assembler, model)) from None
                            attempts.watch.first_chunk()
                            for event in assembler.feed(chunk):
                                sent_any = sent_any or not isinstance(event, ToolCallDeltaEvent)
                                yield event
                            if assembler.cut or (
                                assembler.finish_reason and not get(chunk, "choices") and get(chunk, "usage")
                                and quiet()
                            ):
                                break
                    except StopAsyncIteration:
                        pass
                    finally:
                        deadline.close()
                        await response.aclose()
                    for event in assembler.finish():
                        sent_any = True
                        yield event
                    reply = from_stream(assembler, model)
                    if assembler.cut:
                        self._cut_usage(call, reply, model)
                    delay = attempts.empty_stream(reply) if assembler.is_empty else None
                except ProviderError as err:
                    await self._dump(call, err)
                    yield err.as_event()
                    return
                except Exception as exc:  # noqa: BLE001
                    # The usage the upstream sent before the failure (in the chunk that carried its error, even):
                    # what it billed for this attempt, at the cost it stated.
                    sent = self._sent(assembler, model)
                    try:
                        if sent_any:
                            raise attempts.failed_after_text(exc, sent) from None
                        delay = attempts.failed(exc, sent)
                    except ProviderError as err:
                        await self._dump(call, err)
                        yield err.as_event()
                        return
                    continue

                if delay is not None:
                    continue
                done = attempts.accept(reply)
                await self._succeeded(call, done)
                await self._dump(call)
                for tc in done.tool_calls:
                    yield ToolCallEvent(tool_use_id=tc.id, tool_name=tc.name, tool_input=tc.input)
                yield FinishEvent(done)
                return
        finally:
            attempts.watch.close()  # a stream closed early: the attempt in flight ends with it

    @staticmethod
    def _sent(assembler: StreamAssembler, model: str) -> tuple[Usage, bool] | None:
        """The usage the upstream sent in the stream so far (with whether its cost was stated), None if none."""
        usage = assembler.sent_usage
        return billed_usage(usage, assembler.hidden, model) if usage is not None else None

    # -- bounds ----------------------------------------------------------------------

    def count_tokens(
        self, messages: list[Message], model: str, *, tools: list[dict[str, Any]] | None = None
    ) -> int | None:
        """`failure.count_tokens`: litellm's count for the model `model` is sent as (`counted_as`), None if it
        fails (unknown: nothing is left out)."""
        return count_tokens(self.counted_as(model), messages, tools)

    def prompt_size(
        self, messages: list[Message], model: str, *, tools: list[dict[str, Any]] | None = None
    ) -> PromptSize:
        """`failure.prompt_size`, counted as `count_tokens` counts: never None."""
        return prompt_size(self.counted_as(model), messages, tools)

    def count_text(self, text: str, model: str) -> int | None:
        """`failure.count_text`: litellm's count of a reply's text, as `count_tokens` counts; None if it fails."""
        return count_text(self.counted_as(model), text)

    def text_counter(self, model: str) -> Callable[[str], int | None]:
        """`count_text` for `model`, as a module function and a model name: it pickles, for the file-counting
        processes (`hive_mcp.files.CountPool`), which import litellm once each."""
        return functools.partial(count_text, self.counted_as(model))

    def counted_as(self, model: str) -> str:
        """The model litellm's tokenizer is chosen by for a call to `model`: with a config, the model of the
        dearest deployment (by input price; the first listed among equals or unpriced ones) of the group `model`
        calls, which a wildcard group names for `model`; else (a name outside the config) `model` itself."""
        if self.router is None:
            return model
        known = self._counted_as.get(model)
        if known is not None:
            return known
        group = self.router.resolve(model)
        members = self.router.members(group, model) if group is not None else []
        dearest = max(members, key=lambda d: (price_of(config_facts(d.raw)) or (0.0, 0.0))[0], default=None)
        counted = dearest.model if dearest is not None else model
        if group is not None and not is_pattern(group):  # a name a wildcard takes may be made up: not kept
            self._counted_as[model] = counted
        return counted

    def resolve(self, model: str) -> ModelRef:
        """`LLMProvider.resolve`; a model this server refuses unsent (another provider's that nothing configures) is
        not looked up: litellm's model information for a local provider asks that provider's port. Without a
        config, a name other than the server's own that litellm cannot place is the caller's mistake: refused
        (LimitError on `model`, as admission's other refusals of a name), nothing sent, nothing dumped."""
        if self.router is None and model != self.model and (unknown := unknown_model(model)) is not None:
            raise LimitError("model", unknown)
        if self.router is None and refused_unsent(self.model, model):
            return ModelRef(model, (model,))
        return super().resolve(model)

    def deployments(self, model: str) -> list[str]:
        group = self.router.resolve(model) if self.router is not None else None
        return [d.label for d in self.router.members(group, model)] if group is not None else []  # type: ignore[union-attr]

    def max_input_tokens(self, model: str) -> int | None:
        """litellm's model information (`register_model` entries included); None for a model it does not know."""
        value = model_facts(model).get("max_input_tokens")
        return int(value) if isinstance(value, int) and value > 0 else None

    def price(self, model: str, group: str | None = None) -> tuple[float, float] | None:
        """litellm's cost map, under the config's prices and the price rule (`facts._priced`: a zero is no
        price); for a group, the dearest input and output price among its deployments (its fallback groups are
        priced apart: `reachable`). None: unpriced (one deployment without a price leaves the group unpriced).

        `group`: the group answering a call to `model` (a fallback group), by default the one `model` calls; a
        wildcard group is priced for `model`, the name its deployments are sent."""
        if self.router is None:
            targets = [default_facts(model)]
        else:
            group = group or self.router.resolve(model)
            if group is None:
                return None
            # A fallback group is priced for the name its hop sends (a wildcard group's target name).
            sent = self.router.reach(model).get(group, model)
            targets = [config_facts(d.raw) for d in self.router.members(group, sent)]
        prices = [price_of(facts) for facts in targets]
        if not prices or None in prices:
            return None
        return max(p[0] for p in prices), max(p[1] for p in prices)  # type: ignore[index]

    def reachable(self, model: str) -> list[str]:
        """`model`'s group and every group its fallbacks (any category, chained, the defaults and the generic
        `"*"` entry too) may reach (`ModelRouter.reach`); a wildcard fallback group only when it takes the name
        its hop sends."""
        if self.router is None:
            return [model]
        return list(self.router.reach(model)) or [model]

    @staticmethod
    def _cut_usage(call: _Call, reply: LLMResponse, model: str) -> None:
        """A stream cut at its max_tokens: its usage counted by litellm, its output at most max_tokens (the
        upstream's own figure, when it sent one, counts output the caller never received)."""
        produced = reply.content + (reply.reasoning or "")
        out = count_text(model, produced)
        if not reply.input_tokens:
            reply.input_tokens = count_tokens(model, call.shaped.messages, call.shaped.kwargs.get("tools")) or 0
        reply.output_tokens = min(out if out is not None else len(produced.encode()), call.request.max_tokens)
        reply.cost_usd, reply.cost_stated = cost(model, reply, None), False  # a stated cost covered the cut text
        reply.estimated = True

    # -- codex: every call streams ---------------------------------------------------

    async def _collect(self, kwargs: dict[str, Any], model: str) -> LLMResponse:
        assembler = StreamAssembler(echoes=self.echoes)
        response = await litellm.acompletion(**kwargs)
        try:
            async for chunk in response:
                assembler.feed(chunk)
        finally:
            await response.aclose()
        assembler.finish()
        return from_stream(assembler, model)

    def _unpriced_now(self, deployment: Deployment | None, model: str) -> bool:
        """Whether the reply of `deployment` (None: no config, `model` sent as named) has no price. Kept per listed
        deployment, and for the default model without a config; worked out each time for a wildcard group's
        deployment (one id answers for every name it takes) and any other name (a caller may make up one per call)."""
        if deployment is not None:
            key = None if is_pattern(deployment.group) else deployment.id
        else:
            key = model if model == self.model else None
        unpriced = self._unpriced.get(key) if key is not None else None
        if unpriced is None:
            facts = config_facts(deployment.raw) if deployment is not None else default_facts(model)
            unpriced = price_of(facts) is None
            if key is not None:
                self._unpriced[key] = unpriced
        return unpriced

    async def _succeeded(self, call: _Call, response: LLMResponse) -> None:
        route = call.attempts.route
        deployment = route.deployment if route is not None else None
        # Whatever litellm made of it (a model it knows, a zero); the upstream's own figure is charged as it is,
        # the figure it stated for replies billed before this one (`Answering.stated`) too.
        if not response.cost_stated and self._unpriced_now(deployment, call.shaped.model):
            stated = call.attempts.answering.stated.cost_usd
            response.unpriced, response.cost_usd, response.cost_stated = not stated, stated, stated > 0
        call.attempts.watch.succeeded(response)
        if route is not None:
            await route.succeeded(response.input_tokens + response.output_tokens)

    # -- dumps -----------------------------------------------------------------------

    async def _dump(self, call: _Call, error: ProviderError | None = None) -> None:
        """Write the call's one dump (if it has one) and put its id on the error or the response; then the last
        attempt's span ends, naming it."""
        dump_id = None
        try:
            if self.dump_store is None:
                return
            dump = build_dump(call.shaped, call.request, call.attempts, error, stream=call.stream)
            if dump is None:
                return
            dump_id = await anyio.to_thread.run_sync(self.dump_store.write, dump)
            if error is not None:
                error.dump_id = dump_id
            if call.attempts.response is not None:
                call.attempts.response.dump_id = dump_id
        finally:
            call.attempts.watch.close(dump_id)


@dataclasses.dataclass(frozen=True)
class _Call:
    """One call in progress: what was asked, what is sent, and its attempts so far."""

    request: CompletionRequest
    shaped: Shaped
    attempts: Attempts
    stream: bool

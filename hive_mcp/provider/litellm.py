"""LiteLLMProvider: hive's LiteLLM provider, ported.

Owns the retry loop (litellm's own retries are off, so one attempt is one upstream
request), empty-reply handling, stream assembly and one failure dump per failed call.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any, Literal

# Before litellm is imported: no network fetches at import or call time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import anyio  # noqa: E402
import litellm  # noqa: E402

from ..dumps.format import AttemptRecord, DumpWriter, FailureDump, default_dump_dir  # noqa: E402
from ..redact import credential_values, strip_credentials  # noqa: E402
from .base import LLMProvider, LLMResponse, Message, ProviderError, Tool, ToolCall  # noqa: E402
from .events import (  # noqa: E402
    FinishEvent,
    StreamEvent,
    TextDeltaEvent,
    TextEndEvent,
    ToolCallEvent,
)
from .retry import RetryPolicy, classify, clean_message, response_headers, retry_delay  # noqa: E402
from .stream import StreamAssembler, parse_arguments  # noqa: E402

litellm.suppress_debug_info = True  # it prints help banners to stdout, which stdio MCP owns
logger = logging.getLogger("hive_mcp.provider")

JSON_MODE_INSTRUCTION = "Please respond with a valid JSON object."
CODEX_MARKER = "chatgpt.com/backend-api/codex"
CODEX_DEFAULT_SYSTEM = "You are a helpful assistant."
DEFAULT_DEADLINE_S = 600.0


class LiteLLMProvider(LLMProvider):
    """Any litellm model. Extra kwargs go to every litellm call.

    Per call, `model=`, `temperature=` and other litellm kwargs override; `deadline=`
    (seconds, at most the provider's `deadline_s`) bounds the whole call, retries included.

    Dumps go to `dump_store`; by default (None) a `DumpStore` in `default_dump_dir()`,
    and `False` writes none. Every credential in the environment at construction
    (`redact.credential_values`) and `api_key` are secrets: never in an error, a log
    line or a dump.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        api_base: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        dump_store: DumpWriter | Literal[False] | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.deadline_s = deadline_s
        self.api_key = api_key
        self.api_base = api_base
        self.retry = retry or RetryPolicy()
        self.secrets = (*credential_values(os.environ), *([api_key] if api_key else []))
        if dump_store is None:
            from ..dumps.store import DumpStore

            dump_store = DumpStore(default_dump_dir())
        self.dump_store: DumpWriter | None = None if dump_store is False else dump_store
        self.extra = kwargs
        if self.dump_store is not None:
            for secret in self.secrets:
                self.dump_store.add_secret(secret)

    def warm_up(self) -> None:
        """One offline call (litellm's `mock_response`: no request is sent).

        litellm imports more of itself on its first call, about 0.2-0.3 s here;
        run this while nobody waits and the first real call does not pay it.
        """
        try:
            litellm.completion(
                model=self.model, messages=[{"role": "user", "content": "warm-up"}], mock_response="ok",
                api_key="warm-up", num_retries=0,
            )
        except Exception as exc:  # noqa: BLE001 - only a missed speed-up
            logger.debug("litellm warm-up failed: %s: %s", type(exc).__name__, exc)

    # -- public API ----------------------------------------------------------------

    def complete(
        self,
        messages: list[Message],
        system: str = "",
        tools: list[Tool] | None = None,
        max_tokens: int = 1024,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        call = _Call(self, messages, system, tools, max_tokens, response_format, json_mode, max_retries, False, kwargs)
        try:
            while True:
                try:
                    raw = self._collect_sync(call) if call.codex else litellm.completion(**call.kwargs)
                except Exception as exc:  # noqa: BLE001 - every upstream failure is classified
                    delay = call.failed(exc)
                else:
                    done = call.received(raw if call.codex else call.parse(raw))
                    if done is not None:
                        break
                    delay = call.pending_delay
                time.sleep(delay * self.retry.time_scale)
        except ProviderError as err:
            self._dump_sync(call, err)
            raise
        self._dump_sync(call)
        return done

    async def acomplete(
        self,
        messages: list[Message],
        system: str = "",
        tools: list[Tool] | None = None,
        max_tokens: int = 1024,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        call = _Call(self, messages, system, tools, max_tokens, response_format, json_mode, max_retries, False, kwargs)
        try:
            while True:
                try:
                    with anyio.move_on_after(call.remaining()) as scope:
                        raw = await self._collect_async(call) if call.codex else await litellm.acompletion(**call.kwargs)
                    if scope.cancelled_caught:
                        raise call.deadline_exceeded()
                except ProviderError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every upstream failure is classified
                    delay = call.failed(exc)
                else:
                    done = call.received(raw if call.codex else call.parse(raw))
                    if done is not None:
                        break
                    delay = call.pending_delay
                await anyio.sleep(min(delay * self.retry.time_scale, call.remaining()))
        except ProviderError as err:
            await self._dump_async(call, err)
            raise
        await self._dump_async(call)
        return done

    async def stream(
        self,
        messages: list[Message],
        system: str = "",
        tools: list[Tool] | None = None,
        max_tokens: int = 4096,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        **kwargs: Any,
    ) -> AsyncIterator[StreamEvent]:
        max_retries = kwargs.pop("max_retries", None)
        try:
            call = _Call(self, messages, system, tools, max_tokens, response_format, json_mode, max_retries, True, kwargs)
        except ProviderError as err:
            yield err.as_event()
            return
        empty_retries = 0
        while True:
            assembler = StreamAssembler()
            sent_any = False
            try:
                with anyio.move_on_after(call.remaining()) as scope:
                    response = await litellm.acompletion(**call.kwargs)
                if scope.cancelled_caught:
                    raise call.deadline_exceeded()
                try:
                    chunks = response.__aiter__()
                    while True:
                        with anyio.move_on_after(call.remaining()) as scope:
                            chunk = await chunks.__anext__()
                        if scope.cancelled_caught:
                            raise call.deadline_exceeded()
                        for event in assembler.feed(chunk):
                            sent_any = True
                            yield event
                except StopAsyncIteration:
                    pass
                finally:
                    await response.aclose()
            except ProviderError as err:
                await self._dump_async(call, err)
                yield err.as_event()
                return
            except Exception as exc:  # noqa: BLE001
                info = classify(exc)
                if sent_any:
                    # Text already went out: retrying would repeat it. End the stream instead.
                    message = clean_message(exc, call.secrets)
                    call.record(info.error_type, info.status, message, 0.0)
                    err = call.error(info.error_type, info.status, message, info.retryable)
                    await self._dump_async(call, err)
                    yield err.as_event()
                    return
                try:
                    delay = call.failed(exc)
                except ProviderError as err:
                    await self._dump_async(call, err)
                    yield err.as_event()
                    return
                await anyio.sleep(min(delay * self.retry.time_scale, call.remaining()))
                continue

            if assembler.is_empty and not call.empty_expected:
                if assembler.finish_reason == "length":
                    logger.warning("empty reply from %s: max_tokens (%s) was exhausted", call.model, max_tokens)
                else:
                    retry = empty_retries < self.retry.stream_empty_retries
                    delay = self.retry.stream_empty_delay_s if retry else 0.0
                    call.record("empty_stream", 200, "stream ended with no text and no tool calls", delay)
                    if retry:
                        empty_retries += 1
                        await anyio.sleep(min(delay * self.retry.time_scale, call.remaining()))
                        continue
                    err = call.error("empty_stream", 200, "the model returned an empty stream", False)
                    await self._dump_async(call, err)
                    yield err.as_event()
                    return
            response_ = call.finish_stream(assembler)
            await self._dump_async(call)
            if response_.content:
                yield TextEndEvent(full_text=response_.content)
            for tc in response_.tool_calls:
                yield ToolCallEvent(tool_use_id=tc.id, tool_name=tc.name, tool_input=tc.input)
            yield FinishEvent(**{f.name: getattr(response_, f.name) for f in dataclasses.fields(FinishEvent)})
            return

    # -- codex: every call streams ---------------------------------------------------

    def _collect_sync(self, call: _Call) -> LLMResponse:
        assembler = StreamAssembler()
        response = litellm.completion(**call.kwargs)
        try:
            for chunk in response:
                assembler.feed(chunk)
        finally:
            response.close()
        return call.from_stream(assembler)

    async def _collect_async(self, call: _Call) -> LLMResponse:
        assembler = StreamAssembler()
        response = await litellm.acompletion(**call.kwargs)
        try:
            async for chunk in response:
                assembler.feed(chunk)
        finally:
            await response.aclose()
        return call.from_stream(assembler)

    # -- dumps -----------------------------------------------------------------------

    def _dump_sync(self, call: _Call, error: ProviderError | None = None) -> None:
        dump = call.dump(error)
        if dump is not None and self.dump_store is not None:
            dump_id = self.dump_store.write(dump)
            call.set_dump_id(dump_id, error)

    async def _dump_async(self, call: _Call, error: ProviderError | None = None) -> None:
        dump = call.dump(error)
        if dump is not None and self.dump_store is not None:
            store = self.dump_store
            dump_id = await anyio.to_thread.run_sync(store.write, dump)
            call.set_dump_id(dump_id, error)


class _Call:
    """The state of one call across its attempts: request, attempts so far, outcome.

    Both the sync and the async loops drive it, so each rule lives here once.
    """

    def __init__(
        self,
        provider: LiteLLMProvider,
        messages: list[Message],
        system: str,
        tools: list[Tool] | None,
        max_tokens: int,
        response_format: dict[str, Any] | None,
        json_mode: bool,
        max_retries: int | None,
        stream: bool,
        overrides: dict[str, Any],
    ) -> None:
        self.provider = provider
        overrides = dict(overrides)
        self.model: str = overrides.pop("model", None) or provider.model
        deadline = overrides.pop("deadline", None)
        self.deadline_s = provider.deadline_s if deadline is None else min(float(deadline), provider.deadline_s)
        self.deadline_at = time.monotonic() + self.deadline_s
        self.max_retries = provider.retry.max_retries if max_retries is None else max(0, max_retries)
        self.stream = stream
        self.codex = CODEX_MARKER in (provider.api_base or "")
        self.secrets = provider.secrets
        self.attempts: list[AttemptRecord] = []
        self.response: LLMResponse | None = None
        self.pending_delay = 0.0
        self.dump_id: str | None = None

        self.messages = [m for m in messages if not _is_ghost(m)]
        has_system_message = any(m.get("role") == "system" for m in self.messages)
        if json_mode:
            if system or not has_system_message:
                system = f"{system}\n\n{JSON_MODE_INSTRUCTION}" if system else JSON_MODE_INSTRUCTION
            else:
                self.messages = _append_to_first_system(self.messages, JSON_MODE_INSTRUCTION)
        if self.codex and not system and not has_system_message:
            system = CODEX_DEFAULT_SYSTEM
        if system:
            self.messages = [{"role": "system", "content": system}, *self.messages]
        last_role = next((m.get("role") for m in reversed(self.messages) if m.get("role") != "system"), None)
        self.empty_expected = last_role == "assistant" or (stream and last_role == "tool")

        kwargs: dict[str, Any] = {**provider.extra, **overrides}
        kwargs.update(model=self.model, messages=self.messages, num_retries=0, max_retries=0)
        if provider.api_key:
            kwargs["api_key"] = provider.api_key
        if provider.api_base:
            kwargs["api_base"] = provider.api_base
        if tools:
            kwargs["tools"] = [t.to_openai() for t in tools]
        if response_format is not None:
            kwargs["response_format"] = response_format
        if self.codex:
            kwargs.update(stream=True, store=False)
        else:
            kwargs["max_tokens"] = max_tokens
            if stream:
                kwargs.update(stream=True, stream_options={"include_usage": True})
        self.kwargs = kwargs
        self.max_tokens = max_tokens
        self.tools = kwargs.get("tools")
        self.response_format = response_format
        self._check_credentials()

    def _check_credentials(self) -> None:
        """Fail before any request when no key is configured, naming the variable to set."""
        if self.provider.api_key or self.kwargs.get("api_key"):
            return
        try:
            missing = litellm.validate_environment(model=self.model).get("missing_keys") or []
        except Exception:  # noqa: BLE001 - an unknown provider: let the request tell
            return
        keys = [k for k in missing if "KEY" in k or "TOKEN" in k]
        if keys:
            names = " or ".join(keys)
            raise ProviderError(
                f"no API key configured: set {names} (or HIVE_MCP_API_KEY)",
                error_type="auth",
                model=self.model,
                attempts=0,
            )

    # -- attempts --------------------------------------------------------------------

    def remaining(self) -> float:
        return max(0.0, self.deadline_at - time.monotonic())

    def deadline_exceeded(self) -> ProviderError:
        message = f"the call's deadline of {self.deadline_s:g}s ran out"
        self.record("timeout", None, message, 0.0)
        return self.error("timeout", None, message, False)

    def record(self, error_type: str, status: int | None, message: str, delay: float) -> None:
        self.attempts.append(
            AttemptRecord(
                time=datetime.now(timezone.utc), error_type=error_type, status=status, message=message, delay_s=delay
            )
        )

    @property
    def attempt_count(self) -> int:
        return len(self.attempts) + (1 if self.response is not None else 0)

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; return the delay before the next one, or raise ProviderError."""
        info = classify(exc)
        message = clean_message(exc, self.secrets)
        retries_done = len(self.attempts)
        if info.retryable and retries_done < self.max_retries:
            delay = retry_delay(response_headers(exc), retries_done, self.provider.retry)
            self.record(info.error_type, info.status, message, delay)
            logger.warning(
                "%s from %s (attempt %d), retrying in %.2fs", info.error_type, self.model, retries_done + 1, delay
            )
            return delay
        self.record(info.error_type, info.status, message, 0.0)
        raise self.error(info.error_type, info.status, message, info.retryable)

    def received(self, response: LLMResponse) -> LLMResponse | None:
        """Accept a reply, or record an empty one and return None to retry after `pending_delay`."""
        if response.content or response.tool_calls or self.empty_expected:
            return self._accept(response)
        if response.stop_reason == "length":
            logger.warning("empty reply from %s: max_tokens (%s) was exhausted", self.model, self.max_tokens)
            return self._accept(response)
        retries_done = len(self.attempts)
        if retries_done >= self.max_retries:
            self.record("empty_response", 200, "the model returned no text and no tool calls", 0.0)
            raise self.error("empty_response", 200, "the model returned an empty reply", True)
        delay = retry_delay(None, retries_done, self.provider.retry)
        self.record("empty_response", 200, "the model returned no text and no tool calls", delay)
        logger.warning("empty reply from %s (attempt %d), retrying in %.2fs", self.model, retries_done + 1, delay)
        self.pending_delay = delay
        return None

    def _accept(self, response: LLMResponse) -> LLMResponse:
        self.response = response
        response.attempts = self.attempt_count
        return response

    def error(self, error_type: str, status: int | None, message: str, retryable: bool) -> ProviderError:
        return ProviderError(
            message,
            error_type=error_type,
            model=self.model,
            attempts=len(self.attempts),
            status=status,
            retryable=retryable,
        )

    # -- replies ---------------------------------------------------------------------

    def parse(self, raw: Any) -> LLMResponse:
        choice = raw.choices[0]
        message = choice.message
        tool_calls = [
            ToolCall(id=tc.id or f"call_{i}", name=tc.function.name or "", input=parse_arguments(tc.function.arguments))
            for i, tc in enumerate(getattr(message, "tool_calls", None) or [])
        ]
        input_tokens, output_tokens, cached = _usage_numbers(getattr(raw, "usage", None))
        cost = _cost(self.model, input_tokens, output_tokens, raw)
        return LLMResponse(
            content=message.content or "",
            model=getattr(raw, "model", None) or self.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            cost_usd=cost,
            stop_reason=choice.finish_reason or "",
            tool_calls=tool_calls,
            raw_response=raw,
        )

    def from_stream(self, assembler: StreamAssembler) -> LLMResponse:
        input_tokens, output_tokens, cached = _usage_numbers(assembler.usage)
        return LLMResponse(
            content=assembler.text,
            model=assembler.model or self.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            cost_usd=_cost(self.model, input_tokens, output_tokens, None),
            stop_reason=assembler.finish_reason or ("tool_calls" if assembler.tool_calls else "stop"),
            tool_calls=assembler.tool_calls,
        )

    def finish_stream(self, assembler: StreamAssembler) -> LLMResponse:
        return self._accept(self.from_stream(assembler))

    # -- the dump --------------------------------------------------------------------

    def dump(self, error: ProviderError | None) -> FailureDump | None:
        """The call's one dump: None when every attempt succeeded first time."""
        if not self.attempts:
            return None
        if error is None:
            outcome = "recovered"
            error_type = self.attempts[-1].error_type
        else:
            error_type = error.error_type
            # Retries that ran out are giving up; one attempt means it was never retried
            # (a permanent error, max_retries=0, or a stream whose text had gone out).
            outcome = "gave_up" if len(self.attempts) > 1 else "not_retried"
        tokens, method = _estimate_tokens(self.model, self.messages)
        return FailureDump(
            timestamp=datetime.now(timezone.utc),
            model=self.model,
            api_base=strip_credentials(self.kwargs.get("api_base")),
            error_type=error_type,
            outcome=outcome,
            attempts=self.attempts,
            estimated_tokens=tokens,
            token_estimate_method=method,
            message_count=len(self.messages),
            messages=self.messages,
            tools=self.tools,
            max_tokens=self.max_tokens,
            temperature=self.kwargs.get("temperature"),
            stream=self.stream,
            response_format=self.response_format,
            request_keys=sorted(k for k in self.kwargs if k not in ("api_key",)),
        )

    def set_dump_id(self, dump_id: str | None, error: ProviderError | None) -> None:
        self.dump_id = dump_id
        if error is not None:
            error.dump_id = dump_id
        if self.response is not None:
            self.response.dump_id = dump_id


def _append_to_first_system(messages: list[Message], text: str) -> list[Message]:
    out = list(messages)
    for i, m in enumerate(out):
        if m.get("role") == "system" and isinstance(m.get("content"), str):
            out[i] = {**m, "content": f"{m['content']}\n\n{text}"}
            return out
    return [{"role": "system", "content": text}, *out]


def _is_ghost(message: Message) -> bool:
    """An assistant turn with nothing in it: some providers reject these outright."""
    if message.get("role") != "assistant" or message.get("tool_calls"):
        return False
    content = message.get("content")
    if isinstance(content, list):
        return not any(part for part in content)
    return not (content or "").strip() if isinstance(content, str) or content is None else False


def _usage_numbers(usage: Any) -> tuple[int, int, int]:
    if not usage:
        return 0, 0, 0

    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    input_tokens = get(usage, "prompt_tokens") or 0
    output_tokens = get(usage, "completion_tokens") or 0
    details = get(usage, "prompt_tokens_details")
    cached = (get(details, "cached_tokens") if details else None) or get(usage, "cache_read_input_tokens") or 0
    return int(input_tokens), int(output_tokens), int(cached)


def _cost(model: str, input_tokens: int, output_tokens: int, raw: Any) -> float:
    """USD from litellm's cost table; 0.0 for a model it does not know (never raises).

    litellm has already priced a whole response (`_hidden_params["response_cost"]`,
    its documented place); pricing it again cost about a tenth of a call's CPU.
    """
    try:
        if raw is not None:
            known = (getattr(raw, "_hidden_params", None) or {}).get("response_cost")
            if known is not None:
                return float(known)
            return float(litellm.completion_cost(completion_response=raw, model=model) or 0.0)
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=input_tokens, completion_tokens=output_tokens
        )
        return float(prompt + completion)
    except Exception:  # noqa: BLE001 - unknown models raise; cost is best effort
        return 0.0


def _estimate_tokens(model: str, messages: list[Message]) -> tuple[int, str]:
    try:
        return int(litellm.token_counter(model=model, messages=messages)), "litellm.token_counter"
    except Exception:  # noqa: BLE001
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        return chars // 4, "chars/4"

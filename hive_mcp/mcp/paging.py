"""Answers too big for one reply: the first part inline, the whole as `hive://results/{id}`.

`ResultPages.page_result(result, caller, count)` takes a finished completion result: when its answer counts
more than the inline limit (by `count`, the provider's counter for the answering model), the whole is kept
for `caller` in the results store and the result carries its first part, a line saying how much was left out
and a `resource_link` to the whole; its structured content says `truncated`, `parts`, `result_uri` and
`omitted_tokens`. The whole reads at `hive://results/{id}`, each part (within the limit) at `?part=N`, or
through the `read_result` tool, for agents whose host does not read resources. A result is its caller's
(admins and the stdio user read any; another caller's id reads as not found), listed in `resources/list`
for its owner, and kept for the store's TTL. A store that fails leaves the answer whole and inline, with one
warning per outage: nothing is lost.

A call to several models is paged by answer (`page_answers`): the answers share the inline limit, and each
one too long for its share is kept as a result of its own, named in its entry.

The completion tools page their result (`page`) once the call chain's outcome is mapped, so a task's result
is paged as a direct call's is.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
from mcp_types import (
    INTERNAL_ERROR,
    CallToolResult,
    ReadResourceResult,
    Resource,
    ResourceLink,
    ResourceTemplate,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import BaseModel, ConfigDict, Field

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool as MCPTool
from mcp.shared.exceptions import MCPError

from ..defaults import RESULT_INLINE_TOKENS
from ..outage import Outage
from ..provider.base import LLMProvider
from ..results import ResultStore, ResultStoreError, ResultSummary, StoredResult, UnknownResult, split_parts
from ..tokens import owner_scope
from .answers import AnswerEntry, answers_text
from .args import parse_args
from .constants import DEFAULT_RESOURCE_PAGE_SIZE
from .callers import caller
from .errors import ArgumentError, error_result
from .routes import Pages, Route, not_found
from .schema import build_tool

__all__ = ["RESULT_URI_TEMPLATE", "ReadResultArgs", "ResultPages", "result_uri"]

logger = logging.getLogger("hive_mcp.results")

RESULTS_URI_PREFIX = "hive://results/"
RESULT_URI_TEMPLATE = RESULTS_URI_PREFIX + "{id}{?part}"
_PART = re.compile(r"[0-9]{1,9}")
"""How `?part=` names a part: ASCII digits, no more than any part number needs."""
BYTES_PER_TOKEN_GUESS = 3
"""When the counter cannot tell (None), a token is taken as this many UTF-8 bytes: fewer than most text has,
so a guessed part stays within the limit."""


def result_uri(result_id: str) -> str:
    return RESULTS_URI_PREFIX + result_id


def _counter(count: Callable[[str], int | None]) -> Callable[[str], int]:
    """`count`, or a guess by bytes where it cannot tell."""

    def counted(text: str) -> int:
        n = count(text)
        return n if n is not None else math.ceil(len(text.encode()) / BYTES_PER_TOKEN_GUESS)

    return counted


class ReadResultArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The id ending result_uri.", max_length=64)
    part: int = Field(ge=1, description="From 1 to the result's parts.")


def _resource(s: ResultSummary) -> Resource:
    return Resource(
        uri=result_uri(s.id), name=f"result-{s.id}", title="A long answer",
        description=f"{s.tokens} tokens in {s.parts} parts (?part=N)", mime_type="text/plain", size=s.size,
    )  # fmt: skip


@dataclass
class ResultPages:
    """Pages big answers into `store` and serves them back (routes, listing, `read_result`), per caller."""

    store: ResultStore
    provider: LLMProvider
    inline_tokens: int = RESULT_INLINE_TOKENS
    admins: frozenset[str] = frozenset()
    listed: int = DEFAULT_RESOURCE_PAGE_SIZE
    """How many of a caller's results lead the first page of `resources/list` (newest first)."""
    on_keep: Callable[[str, str], None] | None = None
    """Told (result id, owner) of each answer kept: its owner's resource list changed."""
    outage: Outage = field(init=False)

    def __post_init__(self) -> None:
        if self.inline_tokens < 1:
            raise ValueError("inline_tokens must be >= 1")
        self.outage = Outage(
            logger, "the results store is unavailable (%s) at %s: long answers are returned whole until it answers",
            f"the results store is back at {self.store.name}: long answers are paged again", self.store.name,
        )  # fmt: skip

    # -- paging ----------------------------------------------------------------

    async def page_result(
        self, result: CallToolResult, who: str, count: Callable[[str], int | None]
    ) -> CallToolResult:
        """`result` with its answer paged when it counts more than the inline limit by `count`; else itself."""
        structured = result.structured_content
        if result.is_error or not isinstance(structured, dict) or structured.get("truncated"):
            return result
        text = structured.get("content")
        limit = self.inline_tokens
        if not isinstance(text, str) or len(text.encode()) <= limit:  # a token is at least one byte
            return result
        text = self.store.redact(text)  # what is kept, and so what is paged, holds no secret
        counted = _counter(count)
        total = await anyio.to_thread.run_sync(counted, text)
        if total <= limit:
            return result
        cut = await self._keep(who, text, total, limit, counted)
        if cut is None:
            return result  # whole, inline: nothing lost
        kept, first, omitted = cut
        return result.model_copy(update={
            "content": [TextContent(type="text", text=first), TextContent(type="text", text=self._note(kept, omitted)),
                        self._link(kept)],
            "structured_content": {**structured, "content": first, "truncated": True, "parts": kept.parts,
                                   "result_uri": result_uri(kept.id), "omitted_tokens": omitted},
        })  # fmt: skip

    async def page_answers(
        self, result: CallToolResult, who: str, count: Callable[[str, str], int | None]
    ) -> CallToolResult:
        """A fan-out's `result` with its answers paged when together they count more than half the inline limit
        (its structured content holds each twice: in its entry and in the text), by `count(text, model)`. The
        answers share that half: each takes what it needs, up to an even share of what the shorter ones left;
        one longer than its share is kept as a result of its own (parts of that share), its entry holding the
        first part and what `page_result` adds, the text that part and the line naming the rest."""
        structured = result.structured_content
        if result.is_error or not isinstance(structured, dict) or not structured.get("answers"):
            return result
        entries = [AnswerEntry.model_validate(e) for e in structured["answers"]]
        verdict = AnswerEntry.model_validate(structured["verdict"]) if structured.get("verdict") else None
        every = [*entries, *([verdict] if verdict is not None else [])]
        limit = max(1, self.inline_tokens // 2)
        if sum(len(e.content.encode()) for e in every) <= limit:
            return result
        texts = [self.store.redact(e.content) for e in every]
        counters = [_counter(lambda t, m=e.deployment or e.model: count(t, m)) for e in every]
        totals = [await anyio.to_thread.run_sync(c, t) for c, t in zip(counters, texts)]
        if sum(totals) <= limit:
            return result
        shares, left = [0] * len(every), limit
        for placed, i in enumerate(sorted(range(len(every)), key=totals.__getitem__)):
            shares[i] = max(1, left // (len(every) - placed))
            left -= min(totals[i], shares[i])
        paged, shown, links = [], [], []
        for e, text, total, share, counted in zip(every, texts, totals, shares, counters):
            cut = await self._keep(who, text, total, share, counted) if total > share else None
            if cut is not None:
                kept, first, omitted = cut
                e = e.model_copy(update={"content": first, "truncated": True, "parts": kept.parts,
                                         "result_uri": result_uri(kept.id), "omitted_tokens": omitted})  # fmt: skip
                links.append(self._link(kept))
                shown.append(e.model_copy(update={"content": f"{first}\n{self._note(kept, omitted)}"}))
            else:
                shown.append(e)
            paged.append(e)
        if not links:
            return result  # the store failed: whole, inline
        n = len(entries)
        verdict = paged[n] if n < len(paged) else None
        return result.model_copy(update={
            "content": [TextContent(type="text", text=answers_text(shown[:n], shown[n] if verdict else None)), *links],
            "structured_content": {
                **structured, "content": answers_text(paged[:n], verdict), "truncated": True,
                "omitted_tokens": sum(e.omitted_tokens or 0 for e in paged), "answers": [e.lean() for e in paged[:n]],
                **({"verdict": verdict.lean()} if verdict is not None else {}),
            },
        })  # fmt: skip

    async def _keep(
        self, who: str, text: str, total: int, limit: int, counted: Callable[[str], int]
    ) -> tuple[StoredResult, str, int] | None:
        """`text` (`total` tokens by `counted`, more than `limit`) kept for `who` in parts of `limit`: what was
        kept, its first part and the tokens left out of that part. None when the store fails (one warning per
        outage): the answer goes whole."""
        bounds = await anyio.to_thread.run_sync(split_parts, text, limit, counted)
        try:
            kept = await self.store.put(who, text, bounds, tokens=total)
        except ResultStoreError as exc:
            if not exc.told:
                self.outage.failed(exc)
            return None
        self.outage.worked()
        if self.on_keep is not None:
            self.on_keep(kept.id, kept.owner)
        first = kept.part(1)
        return kept, first, total - await anyio.to_thread.run_sync(counted, first)

    def _note(self, kept: StoredResult, omitted: int) -> str:
        uri, last = result_uri(kept.id), kept.parts
        return (
            f"[The answer continues: {omitted} more tokens in {last - 1} more part(s). Read {uri} (whole, or "
            f"?part=2 to ?part={last}), or call read_result with id {kept.id} and part 2 to {last}. Kept "
            f"{round(self.store.ttl_s / 60)} min.]"
        )

    @staticmethod
    def _link(kept: StoredResult) -> ResourceLink:
        return ResourceLink(
            type="resource_link", uri=result_uri(kept.id), name=f"result-{kept.id}", title="The whole answer",
            mime_type="text/plain", size=len(kept.text.encode()),
        )  # fmt: skip

    async def page(self, result: CallToolResult, who: str, model: str | None) -> CallToolResult:
        """`page_result`, counted by the provider's counter for `model` (the answering model); for a fan-out
        (`model` None), `page_answers`, each answer counted for the deployment that wrote it."""
        if model is None:
            return await self.page_answers(result, who, self.provider.count_text)
        return await self.page_result(result, who, lambda text: self.provider.count_text(text, model))

    # -- reading ---------------------------------------------------------------

    def _scope(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        return owner_scope(caller(ctx), self.admins)

    async def _read(self, ctx: ServerRequestContext[Any, Any], uri: str, value: str) -> ReadResourceResult:
        rid, _, query = value.partition("?")
        try:
            kept = await self.store.get(rid, self._scope(ctx))
        except UnknownResult as exc:
            raise not_found(ctx, uri, str(exc)) from None
        except ResultStoreError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=str(exc)) from None
        text = kept.text
        if query:
            wanted = parse_qs(query).get("part", [""])
            # ASCII digits only, and few of them: `isdigit` takes superscripts and other scripts' digits, which
            # `int` refuses or reads as another number, and `int` refuses more than 4300 digits.
            n = int(wanted[0]) if len(wanted) == 1 and _PART.fullmatch(wanted[0]) else 0
            if not 1 <= n <= kept.parts:
                raise not_found(ctx, uri, f"no such part: part is 1 to {kept.parts}")
            text = kept.part(n)
        return ReadResourceResult(contents=[TextResourceContents(uri=uri, text=text, mime_type="text/plain")])

    def routes(self) -> list[Route]:
        template = ResourceTemplate(
            uri_template=RESULT_URI_TEMPLATE, name="result", title="A long answer",
            description="An answer too long for one reply, whole, or one part of it (?part=N).",
            mime_type="text/plain",
        )  # fmt: skip
        return [Route(RESULT_URI_TEMPLATE, template, self._read, owned=True)]

    def pages_with(self, pages: Pages) -> Pages:
        """`pages` with the caller's results leading the first page (a store that fails lists none)."""

        async def both(ctx: ServerRequestContext[Any, Any], cursor: str | None) -> tuple[list[Resource], str | None]:
            items, next_cursor = await pages(ctx, cursor)
            if cursor is not None:
                return items, next_cursor
            try:
                mine = await self.store.list(self._scope(ctx), self.listed)
            except ResultStoreError as exc:
                if not exc.told:
                    self.outage.failed(exc)
                mine = []
            return [*map(_resource, mine), *items], next_cursor

        return both

    async def read_result(self, ctx: Context) -> CallToolResult:
        """Read part of a long answer (result_uri in a truncated result)."""
        try:
            args = parse_args(ReadResultArgs, ctx)
        except ArgumentError as exc:
            return error_result(str(exc))
        try:
            kept = await self.store.get(args.id.removeprefix(RESULTS_URI_PREFIX), self._scope(ctx.request_context))
            text = kept.part(args.part)
        except UnknownResult as exc:
            return error_result(f"not found: {exc}")
        except ResultStoreError as exc:
            return error_result(str(exc))
        except IndexError:
            return error_result(f"invalid arguments: part: result {args.id} has {kept.parts} part(s)")
        content = [TextContent(type="text", text=text)]
        if args.part < kept.parts:
            content.append(TextContent(type="text", text=f"[part {args.part} of {kept.parts}; next: part {args.part + 1}]"))
        return CallToolResult(content=content)

    def tool(self) -> MCPTool:
        annotations = ToolAnnotations(title="Read a long answer", read_only_hint=True, open_world_hint=False)
        return build_tool(self.read_result, ReadResultArgs, annotations)

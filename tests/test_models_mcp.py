"""The model catalogue over MCP: `list_models`, `hive://models`, the `model` field and its checks,
argument completion, and change notifications. The SDK's real Client in-process, both protocol eras;
the catalogue is a plain class implementing the `Catalogue` protocol (the interface the MCP layer
reads), and calls that go upstream take the real LiteLLMProvider to the scripted upstream.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from hive_mcp.mcp import MODEL_URI_TEMPLATE, MODELS_URI, ModelList, model_uri
from hive_mcp.mcp.constants import RESOURCE_NOT_FOUND_LEGACY
from hive_mcp.llms.catalogue import Catalogue, DeploymentInfo, ModelGroup
from hive_mcp.llms.static import StaticCatalogue
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.base import CompletionRequest, LLMResponse
from tests.catalogues import COOL_UNTIL, FakeCatalogue, two_groups
from tests.clients import MODEL, WAIT, connect, make_dump, mcp_server, Notifications, text_of
from tests.conftest import FAST_RETRY, TEST_KEY
from tests.tool_budgets import NEW_TOOL_BUDGET, TOTAL_BUDGET, definition_size
from harness.upstream import Reply, Upstream

def config_groups() -> FakeCatalogue:
    """`catalogues.two_groups` named as a config's groups, with capabilities, and `smart`'s key unset."""
    return two_groups(
        "openai/fast", "anthropic/smart", smart_facts={"credentials_present": False},
        fast_facts={"supports_tools": True, "supports_vision": True, "supports_reasoning": False,
                    "supports_json_schema": True},
    )  # fmt: skip


def named(count: int) -> FakeCatalogue:
    return FakeCatalogue([ModelGroup(name=f"openai/model-number-{i:03d}") for i in range(count)])


async def read_json(c: Any, uri: str) -> Any:
    [content] = (await c.read_resource(uri)).contents
    assert isinstance(content, types.TextResourceContents) and content.mime_type == "application/json"
    return json.loads(content.text)


def interface_keys_only(listing: dict[str, Any]) -> None:
    """Nothing but the interface's fields is shown (the interface holds no key, password or credentialed URL)."""
    assert set(listing) == set(ModelList.model_fields)
    for group in listing["groups"]:
        assert set(group) == set(ModelGroup.model_fields)
        for deployment in group["deployments"]:
            assert set(deployment) == set(DeploymentInfo.model_fields)


# ---------------------------------------------------------------------------
# list_models and the resources
# ---------------------------------------------------------------------------


async def test_list_models_and_the_resource_show_the_catalogue(make_server: Callable[..., MCPServer], mode: str) -> None:
    catalogue = config_groups()
    async with connect(make_server(catalogue=catalogue), mode) as c:
        r = await c.call_tool("list_models", {})
        resource = await read_json(c, MODELS_URI)
        refused = await c.call_tool("list_models", {"verbose": True})
    assert not r.is_error and r.structured_content is not None
    listing = r.structured_content
    assert listing == resource == json.loads(text_of(r))  # the same content, as a tool and as a resource
    interface_keys_only(listing)
    assert listing["groups"] == [g.model_dump(mode="json") for g in catalogue.groups()]
    fast = listing["groups"][0]
    assert fast["aliases"] == ["quick"] and fast["max_input_tokens"] == 128_000 and fast["input_cost_per_mtok"] == 0.15
    assert fast["deployments"][1] == {
        "provider": "azure",
        "model": "gpt-4o-mini-eu",
        "healthy": False,
        "cooldown_until": "2026-12-01T12:30:00Z",
        "credentials": True,
    }
    assert listing["groups"][1]["credentials_present"] is False
    assert listing["any_model"] is False and listing["default_model"] == MODEL
    assert "alias" in listing["note"]
    assert refused.is_error and "verbose" in text_of(refused) and "\n" not in text_of(refused)


async def test_without_a_config_the_default_model_and_any_model_string(
    make_server: Callable[..., MCPServer], mode: str
) -> None:
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("list_models", {})
    assert r.structured_content is not None
    listing = r.structured_content
    interface_keys_only(listing)
    assert listing["any_model"] is True and listing["default_model"] == MODEL
    [group] = listing["groups"]
    assert group["name"] == MODEL and group["deployments"] == [
        {"provider": "openai", "model": "gpt-4o-mini", "healthy": True, "cooldown_until": None, "credentials": True}
    ]
    assert "any litellm model string" in listing["note"]


async def test_the_note_names_the_allow_list(make_server: Callable[..., MCPServer]) -> None:
    async with connect(make_server(limits=Limits(allowed_models=["openai/*", "anthropic/claude-*"])), "auto") as c:
        r = await c.call_tool("list_models", {})
    assert r.structured_content is not None
    assert "matching openai/*, anthropic/claude-*" in r.structured_content["note"]


def test_the_static_catalogue_names_the_provider_when_the_model_string_does() -> None:
    [bare] = StaticCatalogue("gpt-4o-mini").groups()
    [routed] = StaticCatalogue("openrouter/anthropic/claude-3").groups()
    assert (bare.deployments[0].provider, bare.deployments[0].model) == ("", "gpt-4o-mini")
    assert (routed.deployments[0].provider, routed.deployments[0].model) == ("openrouter", "anthropic/claude-3")
    catalogue: Catalogue = StaticCatalogue(MODEL)  # it implements the protocol the MCP layer reads
    assert catalogue.any_model and catalogue.callable_names() == [MODEL]


async def test_one_group_by_name_or_alias_and_the_listings(make_server: Callable[..., MCPServer], mode: str) -> None:
    catalogue = config_groups()
    async with connect(make_server(catalogue=catalogue), mode) as c:
        by_name = await read_json(c, model_uri("openai/fast"))
        by_alias = await read_json(c, model_uri("quick"))
        unencoded = await read_json(c, "hive://models/anthropic/smart")
        resources = [r.uri for r in (await c.list_resources()).resources]
        templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
    assert by_name == by_alias == catalogue.groups()[0].model_dump(mode="json")
    assert unencoded["name"] == "anthropic/smart"
    assert model_uri("openai/fast") == "hive://models/openai%2Ffast"
    assert resources[0] == MODELS_URI
    assert MODEL_URI_TEMPLATE in templates and "hive://failed-requests/{id}" in templates


async def test_an_unknown_group_is_resource_not_found(make_server: Callable[..., MCPServer], mode: str) -> None:
    async with connect(make_server(catalogue=config_groups()), mode) as c:
        with pytest.raises(MCPError) as info:
            await c.read_resource(model_uri("openai/nope"))
    expected = RESOURCE_NOT_FOUND_LEGACY if mode == "legacy" else types.INVALID_PARAMS
    assert info.value.error.code == expected
    assert "not found" in info.value.error.message and "\n" not in info.value.error.message


# ---------------------------------------------------------------------------
# The model field
# ---------------------------------------------------------------------------


async def list_tools(server: MCPServer, mode: str) -> dict[str, types.Tool]:
    async with connect(server, mode) as c:
        return {t.name: t for t in (await c.list_tools()).tools}


async def test_the_model_field_enumerates_up_to_30_names(make_server: Callable[..., MCPServer], mode: str) -> None:
    catalogue = named(29)
    catalogue._groups[0].aliases = ["first"]
    tools = await list_tools(make_server(catalogue=catalogue), mode)
    plain = await list_tools(make_server(), mode)
    for name in ("complete", "stream_complete"):
        assert tools[name].input_schema["properties"]["model"] == {"enum": catalogue.callable_names()}
        assert len(catalogue.callable_names()) == 30
        assert "enum" not in plain[name].input_schema["properties"]["model"]  # any model string: no enum


async def test_past_30_names_the_description_names_the_first_and_points_to_list_models(
    make_server: Callable[..., MCPServer], mode: str
) -> None:
    catalogue = named(31)
    tools = await list_tools(make_server(catalogue=catalogue), mode)
    for name in ("complete", "stream_complete"):
        field = tools[name].input_schema["properties"]["model"]
        assert "enum" not in field and field["type"] == "string"
        text = field["description"]
        assert "31" in text and "list_models" in text
        assert "openai/model-number-000" in text and "openai/model-number-030" not in text


def enum_cost(names: list[str]) -> int:
    """What an enum of `names` may add to one tool: each name's length + 4 (quotes, comma, space)."""
    return sum(len(n) + 4 for n in names)


async def test_the_tools_stay_within_budget_with_a_catalogue(make_server: Callable[..., MCPServer], mode: str) -> None:
    # An enum costs each tool that takes `model` its names; a description past 30 names costs at most
    # what an enum of the names it shows would, plus one sentence.
    for catalogue, allowance in (
        (named(30), 2 * enum_cost(named(30).callable_names())),
        (named(500), 2 * (enum_cost(named(500).callable_names()[:10]) + 60)),
    ):
        tools = await list_tools(make_server(catalogue=catalogue), mode)
        sizes = {name: definition_size(t) for name, t in tools.items()}
        assert sum(sizes.values()) <= TOTAL_BUDGET + allowance, sizes
        assert sizes["list_models"] <= NEW_TOOL_BUDGET, sizes


async def test_an_unknown_model_lists_the_callable_names_and_sends_nothing(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    small, large = config_groups(), named(25)
    async with connect(make_server(catalogue=small), mode) as a, connect(make_server(catalogue=large), mode) as b:
        r = await a.call_tool("complete", {"prompt": "hi", "model": "openai/gpt-4o"})
        s = await a.call_tool("stream_complete", {"prompt": "hi", "model": "fast"})
        many = await b.call_tool("complete", {"prompt": "hi", "model": "nope"})
    for result in (r, s, many):
        assert result.is_error and "\n" not in text_of(result)
        assert text_of(result).startswith("invalid arguments: model: ")
    assert "openai/fast, anthropic/smart, quick" in text_of(r)
    assert "'fast'" in text_of(s)
    names = large.callable_names()
    assert f"{names[19]} and 5 more" in text_of(many) and names[20] not in text_of(many)
    assert upstream.chat_requests() == []


async def test_a_group_is_callable_whatever_the_allow_list(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    # With a config the catalogue decides what is callable; the allow-list is for any-model servers.
    upstream.script(Reply.text("from the group"))
    server = make_server(catalogue=config_groups(), limits=Limits(allowed_models=["anthropic/*"]))
    async with connect(server, mode) as c:
        r = await c.call_tool("complete", {"prompt": "hi", "model": "openai/fast"})
    assert not r.is_error, text_of(r)
    [req] = upstream.chat_requests()
    assert req.body["model"] == "fast"


class GroupNamingProvider(LiteLLMProvider):
    """The real provider, naming the group it called as a Router-backed provider does."""

    async def _acomplete(self, request: CompletionRequest) -> LLMResponse:
        response = await super()._acomplete(request)
        return response.model_copy(update={"model_group": "openai/fast"})


async def test_the_result_names_the_group_called_when_there_is_one(
    provider: Any, upstream: Upstream, store: DumpStore, mode: str
) -> None:
    upstream.script(Reply.text("grouped"), Reply.text("plain"))
    grouping = GroupNamingProvider(
        model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    async with (
        connect(mcp_server(grouping, store, catalogue=config_groups()), mode) as a,
        connect(mcp_server(provider, store), mode) as b,
    ):
        grouped = await a.call_tool("complete", {"prompt": "hi", "model": "openai/fast"})
        plain = await b.call_tool("complete", {"prompt": "hi"})
    assert grouped.structured_content is not None and plain.structured_content is not None
    assert call_facts(grouped)["model_group"] == "openai/fast"
    assert "model_group" not in plain.structured_content  # absent, not null, when no group was called


# ---------------------------------------------------------------------------
# completion/complete on hive://models/{name}
# ---------------------------------------------------------------------------


async def test_argument_completion_offers_the_names_that_start_with_the_typed_text(
    make_server: Callable[..., MCPServer], mode: str
) -> None:
    template = types.ResourceTemplateReference(type="ref/resource", uri=MODEL_URI_TEMPLATE)
    other = types.ResourceTemplateReference(type="ref/resource", uri="hive://failed-requests/{id}")
    async with connect(make_server(catalogue=config_groups()), mode) as c:
        openai = await c.complete(template, {"name": "name", "value": "openai/"})
        everything = await c.complete(template, {"name": "name", "value": ""})
        none = await c.complete(template, {"name": "name", "value": "mistral/"})
        elsewhere = await c.complete(other, {"name": "id", "value": ""})
    assert openai.completion.values == ["openai/fast"]
    assert everything.completion.values == ["openai/fast", "anthropic/smart", "quick"]
    assert everything.completion.total == 3 and not everything.completion.has_more
    assert none.completion.values == [] and elsewhere.completion.values == []


async def test_argument_completion_stops_at_100_values(make_server: Callable[..., MCPServer]) -> None:
    template = types.ResourceTemplateReference(type="ref/resource", uri=MODEL_URI_TEMPLATE)
    async with connect(make_server(catalogue=named(150)), "auto") as c:
        assert c.server_capabilities.completions is not None
        r = await c.complete(template, {"name": "name", "value": "openai/model-number-"})
    assert len(r.completion.values) == 100 and r.completion.total == 150 and r.completion.has_more


async def test_argument_completion_for_a_prompt_the_server_does_not_have_is_invalid_params(
    make_server: Callable[..., MCPServer], mode: str
) -> None:
    """Completion, Error Handling: "Invalid prompt name: -32602 (Invalid params)", in one line, not an empty
    list that reads as a prompt with nothing to offer. (This server has no prompts.)"""
    async with connect(make_server(catalogue=config_groups()), mode) as c:
        with pytest.raises(MCPError) as info:
            await c.complete(types.PromptReference(type="ref/prompt", name="nope"), {"name": "x", "value": ""})
    assert info.value.error.code == types.INVALID_PARAMS
    assert info.value.error.message == "Unknown prompt: 'nope'"


# ---------------------------------------------------------------------------
# Change notifications
# ---------------------------------------------------------------------------


def change_from_another_thread(catalogue: FakeCatalogue) -> None:
    """A deployment enters cooldown, told from a thread that is no part of the event loop (as the Router's)."""
    changer = threading.Thread(target=catalogue.cool_down, args=(1, 0, COOL_UNTIL))
    changer.start()
    changer.join(WAIT)


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_legacy_subscribers_hear_the_catalogue_change(
    make_server: Callable[..., MCPServer], store: DumpStore
) -> None:
    catalogue = config_groups()
    server = make_server(catalogue=catalogue)
    subscriber, bystander = Notifications(), Notifications()
    async with (
        connect(server, "legacy", message_handler=subscriber) as a,
        connect(server, "legacy", message_handler=bystander) as b,
    ):
        await a.session.subscribe_resource(MODELS_URI)
        await a.session.subscribe_resource(model_uri("anthropic/smart"))
        await b.list_tools()  # any request makes a legacy session known
        await anyio.to_thread.run_sync(change_from_another_thread, catalogue)

        await subscriber.wait_for(types.ResourceUpdatedNotification, 2)
        updated = {m.params.uri for m in subscriber.seen if isinstance(m, types.ResourceUpdatedNotification)}
        assert updated == {MODELS_URI, model_uri("anthropic/smart")}
        assert subscriber.count(types.ResourceListChangedNotification) == 0  # the list itself did not change
        listing = await read_json(a, MODELS_URI)
        assert listing["groups"][1]["deployments"][0]["healthy"] is False

        # A dump written after the change reaches the bystander after anything the change sent it.
        await anyio.to_thread.run_sync(store.write, make_dump(1))
        await bystander.wait_for(types.ResourceListChangedNotification, 1)
    assert bystander.count(types.ResourceUpdatedNotification) == 0  # only subscribers hear of updates
    assert catalogue.listeners == []  # the server let go of the catalogue when it stopped


async def test_listen_stream_hears_the_catalogue_change(make_server: Callable[..., MCPServer]) -> None:
    catalogue = config_groups()
    async with connect(make_server(catalogue=catalogue), "auto") as c:
        async with c.listen(resource_subscriptions=[MODELS_URI]) as sub:
            await anyio.to_thread.run_sync(change_from_another_thread, catalogue)
            with anyio.fail_after(WAIT):
                async for event in sub:
                    break
    assert type(event).__name__ == "ResourceUpdated" and getattr(event, "uri", None) == MODELS_URI


async def test_a_catalogue_change_is_told_without_reading_the_groups_on_the_event_loop(
    make_server: Callable[..., MCPServer],
) -> None:
    """A group's entry reads its deployments' cooldowns from the Router (from Redis, when instances share them):
    which resources a change updates is told from the catalogue's names, so no change waits on that read."""
    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    class Watched(FakeCatalogue):
        def groups(self) -> list[ModelGroup]:
            if threading.get_ident() == loop_thread:
                on_loop.append("groups")
            return super().groups()

        def callable_names(self) -> list[str]:
            groups = FakeCatalogue.groups(self)
            return [g.name for g in groups] + [a for g in groups for a in g.aliases]

    catalogue = Watched(config_groups().groups())
    async with connect(make_server(catalogue=catalogue), "auto") as c:
        async with c.listen(resource_subscriptions=[MODELS_URI, model_uri("quick")]) as sub:
            await anyio.to_thread.run_sync(change_from_another_thread, catalogue)
            heard = set()
            with anyio.fail_after(WAIT):
                async for event in sub:
                    heard.add(getattr(event, "uri", None))
                    if len(heard) == 2:
                        break
    assert heard == {MODELS_URI, model_uri("quick")}  # an alias's resource is told too
    assert on_loop == [], on_loop

"""LiteLLM proxy configs as their users write them: fallbacks and cooldowns under `litellm_settings`,
wildcard routes, deployments whose variables are not set, and what dumps say of a deployment.

Each config has the shape of one of LiteLLM's documented examples (the proxy's config reference,
its reliability and wildcard-routing pages); every deployment is a scripted upstream on 127.0.0.1
reached through litellm's real HTTP path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits

from hive_mcp.llms import ConfigError, load_config
from hive_mcp.provider import LiteLLMProvider, ProviderError
from hive_mcp.provider.facts import ConfigCatalogue
from hive_mcp.provider.retry import RetryPolicy
from hive_mcp.provider.routing import ModelRouter
from hive_mcp.exposure import allowed_models
from hive_mcp.settings import Settings
from tests.clients import connect, mcp_server, text_of
from tests.conftest import FAST_RETRY
from tests.provider_calls import USER
from harness.upstream import Reply, Upstream

OPENAI_KEY = "sk-proj-openai-0123456789SECRET"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def routed(tmp_path: Path, text: str, environ: dict[str, str] | None = None, **kw: Any) -> tuple[LiteLLMProvider, DumpStore]:
    config = load_config(write(tmp_path, text), environ or {})
    store = DumpStore(tmp_path / "dumps")
    router = ModelRouter(config)
    provider = LiteLLMProvider(model=config.default_group(), router=router, retry=kw.pop("retry", FAST_RETRY),
                               dump_store=store, **kw)
    return provider, store


def hits(*servers: Upstream) -> list[int]:
    return [len(s.chat_requests()) for s in servers]


# ---------------------------------------------------------------------------
# 1. fallbacks, allowed_fails and cooldown_time under litellm_settings
# ---------------------------------------------------------------------------


def reliability_config(ups: list[Upstream], litellm_settings: str, router_settings: str = "") -> str:
    """The proxy docs' reliability example: two groups, the fallbacks where its config reference puts them."""
    a, b, c = ups
    return f"""
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params: {{model: openai/gpt-3.5-turbo, api_base: "{a.base_url}", api_key: {OPENAI_KEY}}}
  - model_name: gpt-4
    litellm_params: {{model: openai/gpt-4, api_base: "{b.base_url}", api_key: {OPENAI_KEY}}}
  - model_name: claude
    litellm_params: {{model: openai/claude-proxy, api_base: "{c.base_url}", api_key: {OPENAI_KEY}}}
litellm_settings:
  drop_params: true
{litellm_settings}
{router_settings}
"""


LITELLM_FALLBACKS = """\
  fallbacks: [{"gpt-3.5-turbo": ["gpt-4"]}]
  context_window_fallbacks: [{"gpt-3.5-turbo": ["claude"]}]
  allowed_fails: 3
  cooldown_time: 30
"""


def test_litellm_settings_fallbacks_and_cooldowns_are_applied_without_a_warning(tmp_path, ups) -> None:
    config = load_config(write(tmp_path, reliability_config(ups, LITELLM_FALLBACKS)), {})
    assert not [w for w in config.warnings if "litellm_settings" in w], config.warnings
    router = ModelRouter(config)
    assert router.fallback_groups("gpt-3.5-turbo", "transient") == ["gpt-4"]
    assert router.fallback_groups("gpt-3.5-turbo", "context_window") == ["claude"]
    assert router.cooldown_s == 30.0
    assert router.router.settings().allowed_fails == 3


async def test_a_group_that_fails_falls_back_as_litellm_settings_say(tmp_path, ups) -> None:
    a, b, c = ups
    a.script(*[Reply.error(503)] * 2)
    b.script(Reply.text("from gpt-4"))
    provider, _ = routed(tmp_path, reliability_config(ups, LITELLM_FALLBACKS),
                         retry=RetryPolicy(max_retries=1, time_scale=0.001))
    response = await provider.acomplete(USER, model="gpt-3.5-turbo")
    assert (response.content, response.model, response.model_group) == ("from gpt-4", "openai/gpt-4", "gpt-3.5-turbo")
    assert hits(a, b, c) == [2, 1, 0]


def test_router_settings_win_over_litellm_settings_with_one_warning(tmp_path, ups) -> None:
    text = reliability_config(
        ups, LITELLM_FALLBACKS, "router_settings:\n  fallbacks: [{gpt-3.5-turbo: [claude]}]\n  cooldown_time: 5\n"
    )
    config = load_config(write(tmp_path, text), {})
    router = ModelRouter(config)
    assert router.fallback_groups("gpt-3.5-turbo", "transient") == ["claude"]
    assert router.cooldown_s == 5.0
    assert router.router.settings().allowed_fails == 3  # set in litellm_settings alone: applied
    [shadowed] = [w for w in config.warnings if "litellm_settings" in w]
    assert "router_settings" in shadowed and "cooldown_time" in shadowed and "fallbacks" in shadowed


def test_a_litellm_settings_fallback_to_no_group_is_one_line_naming_its_place(tmp_path, ups) -> None:
    text = reliability_config(ups, '  fallbacks: [{"gpt-3.5-turbo": ["gpt-5"]}]')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert "litellm_settings.fallbacks" in str(info.value) and "'gpt-5'" in str(info.value)


# ---------------------------------------------------------------------------
# 4. a group cooling down goes to its fallback at once
# ---------------------------------------------------------------------------


async def test_a_group_whose_only_deployment_cools_down_goes_to_its_fallback_at_once(tmp_path, ups) -> None:
    a, b, c = ups
    a.script(*[Reply.error(503)] * 20)
    b.script(Reply.text("from the fallback"))
    settings = '  fallbacks: [{"gpt-3.5-turbo": ["gpt-4"]}]\n  allowed_fails: 1\n  cooldown_time: 30\n'
    provider, store = routed(tmp_path, reliability_config(ups, settings))
    response = await provider.acomplete(USER, model="gpt-3.5-turbo")
    assert response.content == "from the fallback"
    # Two failures put the deployment in cooldown (allowed_fails 1); the next attempt is the fallback's.
    assert hits(a, b) == [2, 1] and response.attempts == 3
    dump = store.read(response.dump_id)
    assert [r.model_group for r in dump.attempts] == ["gpt-3.5-turbo", "gpt-3.5-turbo"]
    # While it cools down, a new call does not knock on it: the fallback answers first time.
    again = await provider.acomplete(USER, model="gpt-3.5-turbo")
    assert (again.model, again.attempts) == ("openai/gpt-4", 1) and hits(a, b) == [2, 2]


# ---------------------------------------------------------------------------
# 2. wildcard routes
# ---------------------------------------------------------------------------


def wildcard_config(ups: list[Upstream]) -> str:
    """The proxy docs' wildcard routing: one provider's models, a team prefix, and everything else."""
    a, b, c = ups
    return f"""
model_list:
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_base: "{a.base_url}", api_key: {OPENAI_KEY}}}
  - model_name: "team-a/*"
    litellm_params: {{model: "openai/*", api_base: "{b.base_url}", api_key: {OPENAI_KEY}}}
  - model_name: "*"
    litellm_params: {{model: "*", api_base: "{c.base_url}", api_key: {OPENAI_KEY}}}
"""


async def test_a_name_matching_a_wildcard_goes_to_that_entry_with_the_model_substituted(tmp_path, ups) -> None:
    a, b, c = ups
    provider, _ = routed(tmp_path, wildcard_config(ups))
    first = await provider.acomplete(USER, model="openai/gpt-4o-mini")
    assert (first.model, first.model_group) == ("openai/gpt-4o-mini", "openai/*")
    second = await provider.acomplete(USER, model="team-a/gpt-4.1")
    assert second.model == "openai/gpt-4.1"
    third = await provider.acomplete(USER, model="openai/o3")
    assert third.model_group == "openai/*"
    assert [r.body["model"] for s in (a, b) for r in s.chat_requests()] == ["gpt-4o-mini", "o3", "gpt-4.1"]
    assert hits(c) == [0]


async def test_the_catch_all_passes_a_provider_model_through(tmp_path, ups) -> None:
    a, b, c = ups
    provider, _ = routed(tmp_path, wildcard_config(ups))
    response = await provider.acomplete(USER, model="hosted_vllm/llama-3")
    assert (response.model, response.model_group) == ("hosted_vllm/llama-3", "*")
    assert [r.body["model"] for r in c.chat_requests()] == ["llama-3"]


@pytest.mark.parametrize("name", ["*", "openai/*", "team-a/*"])
async def test_a_literal_wildcard_is_refused_before_any_request(tmp_path, ups, name: str) -> None:
    provider, _ = routed(tmp_path, wildcard_config(ups))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model=name)
    assert info.value.attempts == 0 and "wildcard" in str(info.value) and "\n" not in str(info.value)
    assert hits(*ups) == [0, 0, 0]


async def test_wildcards_are_listed_as_patterns_and_callable_over_mcp(tmp_path, ups, store) -> None:
    a, b, c = ups
    a.script(Reply.text("through the wildcard"))
    provider, _ = routed(tmp_path, "\n".join(wildcard_config(ups).splitlines()[:4]))  # openai/* alone
    config = provider.router.config
    catalogue = ConfigCatalogue(config)
    settings = Settings(model="openai/gpt-4o-mini")
    limits = Limits(allowed_models=allowed_models(settings, config))
    server = mcp_server(provider, store, default_model="openai/gpt-4o-mini", catalogue=catalogue, limits=limits)
    async with connect(server, "auto") as client:
        listing = (await client.call_tool("list_models", {})).structured_content
        assert [g["name"] for g in listing["groups"]] == ["openai/*"]
        assert "any model a wildcard group (openai/*) matches" in listing["note"]
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "enum" not in tools["complete"].input_schema["properties"]["model"]
        ok = await client.call_tool("complete", {"prompt": "hi", "model": "openai/gpt-4o-mini"})
        refused = await client.call_tool("complete", {"prompt": "hi", "model": "anthropic/claude-x"})
    assert not ok.is_error and text_of(ok) == "through the wildcard"
    assert refused.is_error and "anthropic/claude-x" in text_of(refused)
    assert hits(a, b, c) == [1, 0, 0]


async def test_a_hidden_alias_is_callable_over_mcp_and_shown_nowhere(tmp_path, ups, store) -> None:
    """`model_group_alias: {name: {model: group, hidden: true}}`: litellm routes the name and leaves it out of
    its model list. So here: a call naming it is answered by its group; list_models, the `model` field's
    schema and its completions do not show it."""
    a, _, _ = ups
    a.script(Reply.text("through the hidden alias"))
    provider, _ = routed(tmp_path, f"""
model_list:
  - model_name: fast
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{a.base_url}", api_key: {OPENAI_KEY}}}
router_settings:
  model_group_alias: {{quick: fast, backstage: {{model: fast, hidden: true}}}}
""")
    server = mcp_server(provider, store, default_model="fast", catalogue=ConfigCatalogue(provider.router.config))
    async with connect(server, "auto") as client:
        answered = await client.call_tool("complete", {"prompt": "hi", "model": "backstage"})
        listing = json.dumps((await client.call_tool("list_models", {})).structured_content)
        [tool] = [t for t in (await client.list_tools()).tools if t.name == "complete"]
        offered = await client.complete(
            types.ResourceTemplateReference(type="ref/resource", uri="hive://models/{name}"), {"name": "name", "value": "b"}
        )
    assert not answered.is_error and text_of(answered) == "through the hidden alias", text_of(answered)
    assert hits(a) == [1]
    assert "backstage" not in listing and "quick" in listing
    model = tool.input_schema["properties"]["model"]
    assert "backstage" not in json.dumps(model) and "enum" not in model  # a client checking an enum would refuse it
    assert offered.completion.values == []


def test_an_operators_allow_list_still_narrows_a_wildcard(tmp_path, ups) -> None:
    config = load_config(write(tmp_path, wildcard_config(ups)), {})
    narrowed = Limits(allowed_models=allowed_models(Settings(allowed_models=("openai/gpt-4o*",)), config))
    assert narrowed.model_allowed("openai/gpt-4o-mini") and not narrowed.model_allowed("openai/o3")
    derived = Limits(allowed_models=allowed_models(Settings(), config))
    assert derived.model_allowed("openai/o3") and derived.model_allowed("team-a/x")


def test_a_config_of_wildcards_alone_needs_a_default_model_that_one_matches(tmp_path, ups) -> None:
    from hive_mcp.serve import load_models

    path = write(tmp_path, wildcard_config(ups))
    with pytest.raises(ConfigError) as info:
        load_models(Settings(config=path), {})
    assert "wildcard" in str(info.value) and "hive_mcp.model" in str(info.value)
    settings, _ = load_models(Settings(config=path, model="openai/gpt-4o-mini"), {})
    assert settings.model == "openai/gpt-4o-mini"


# ---------------------------------------------------------------------------
# 3. a variable that is not set
# ---------------------------------------------------------------------------


def providers_config(ups: list[Upstream]) -> str:
    """The proxy docs' multi-provider example: each deployment's key from its own variable."""
    a, b, c = ups
    return f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-eu
      api_base: "{a.base_url}"
      api_key: os.environ/AZURE_API_KEY
      api_version: "2024-10-21"
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: "{b.base_url}"
      api_key: os.environ/OPENAI_API_KEY
  - model_name: claude-sonnet
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: "{c.anthropic_base}"
      api_key: os.environ/ANTHROPIC_API_KEY
router_settings:
  model_group_alias: {{gpt-4: gpt-4o, legacy: gpt-3.5-turbo}}
"""


def test_missing_variables_are_one_warning_and_their_deployments_are_listed_without_credentials(tmp_path, ups) -> None:
    config = load_config(write(tmp_path, providers_config(ups)), {"OPENAI_API_KEY": OPENAI_KEY})
    [missing] = [w for w in config.warnings if "not set" in w]
    assert "AZURE_API_KEY" in missing and "ANTHROPIC_API_KEY" in missing and "OPENAI_API_KEY" not in missing
    [alias] = [w for w in config.warnings if "legacy" in w]
    assert "gpt-3.5-turbo" in alias
    assert config.aliases == {"gpt-4": "gpt-4o"}
    groups = {g.name: g for g in ConfigCatalogue(config).groups()}
    assert [(d.provider, d.credentials) for d in groups["gpt-4o"].deployments] == [("azure", False), ("openai", True)]
    assert groups["gpt-4o"].credentials_present
    assert not groups["claude-sonnet"].credentials_present
    assert [d.credentials for d in groups["claude-sonnet"].deployments] == [False]


async def test_routing_skips_a_deployment_without_credentials(tmp_path, ups) -> None:
    a, b, c = ups
    provider, _ = routed(tmp_path, providers_config(ups), {"OPENAI_API_KEY": OPENAI_KEY})
    for _ in range(6):
        response = await provider.acomplete(USER, model="gpt-4")
        assert response.model == "openai/gpt-4o"
    assert hits(a, b) == [0, 6]
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model="claude-sonnet")
    err = info.value
    assert (err.error_type, err.attempts) == ("auth", 0)
    assert "ANTHROPIC_API_KEY" in str(err) and "\n" not in str(err)
    assert hits(c) == [0]


def test_a_config_with_no_usable_deployment_is_fatal_naming_the_variables(tmp_path, ups) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, providers_config(ups)), {})
    text = str(info.value)
    assert "\n" not in text
    assert all(name in text for name in ("AZURE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"))


# ---------------------------------------------------------------------------
# 5. a dump names the deployment's api_base
# ---------------------------------------------------------------------------


async def test_a_routed_calls_dump_and_the_dashboard_name_the_deployments_api_base(tmp_path, ups) -> None:
    from hive_mcp.dashboard.data import detail

    a, b, c = ups
    a.script(Reply.error(503))
    provider, store = routed(tmp_path, reliability_config(ups, ""), retry=RetryPolicy(max_retries=0, time_scale=0.001))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model="gpt-3.5-turbo")
    dump = store.read(info.value.dump_id)
    assert dump.api_base == a.base_url and detail(dump).api_base == a.base_url
    assert OPENAI_KEY not in store.read_text(dump.id) and hits(a) == [1]


def test_the_default_model_is_the_first_group_with_a_usable_deployment(tmp_path, ups) -> None:
    from hive_mcp.serve import load_models

    path = write(tmp_path, providers_config(ups))
    settings, config = load_models(Settings(config=path), {"ANTHROPIC_API_KEY": "sk-ant-0123456789SECRET"})
    assert config is not None and config.groups[0] == "gpt-4o"
    assert settings.model == "claude-sonnet"


async def test_a_wildcard_whose_variable_is_unset_names_it_when_called(tmp_path, ups) -> None:
    a, b, c = ups
    text = wildcard_config(ups).replace(f'api_base: "{a.base_url}", api_key: {OPENAI_KEY}',
                                        f'api_base: "{a.base_url}", api_key: os.environ/OPENAI_API_KEY')
    catch_all = text.index('  - model_name: "*"')
    provider, _ = routed(tmp_path, text[:catch_all])  # openai/* (its key unset) and team-a/*
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model="openai/gpt-4o-mini")
    assert info.value.error_type == "auth" and "OPENAI_API_KEY" in str(info.value)
    assert hits(*ups) == [0, 0, 0]


# ---------------------------------------------------------------------------
# 6. credential_list: credentials a deployment names by litellm_credential_name
# ---------------------------------------------------------------------------


def credentials_config(ups: list[Upstream], name: str = "default_openai") -> str:
    """The proxy docs' credential example: the key and base URL in `credential_list`, named by the deployment."""
    a, b, c = ups
    return f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      litellm_credential_name: {name}
  - model_name: claude
    litellm_params: {{model: openai/claude-proxy, api_base: "{b.base_url}", api_key: {OPENAI_KEY}}}
credential_list:
  - credential_name: default_openai
    credential_values:
      api_key: os.environ/OPENAI_API_KEY
      api_base: "{a.base_url}"
    credential_info:
      description: "Production credentials"
"""


async def test_a_deployment_calls_with_the_credential_it_names(tmp_path, ups) -> None:
    a, b, c = ups
    a.script(Reply.text("with the credential"))
    environ = {"OPENAI_API_KEY": "sk-cred-0123456789SECRET"}
    provider, _ = routed(tmp_path, credentials_config(ups), environ)
    config = provider.router.config
    assert not [w for w in config.warnings if "credential_list" in w], config.warnings
    assert {"sk-cred-0123456789SECRET", a.base_url} <= set(config.secrets)  # every credential value
    response = await provider.acomplete(USER, model="gpt-4o")
    assert (response.content, response.model) == ("with the credential", "openai/gpt-4o")
    [request] = a.chat_requests()
    assert request.headers["authorization"] == "Bearer sk-cred-0123456789SECRET"
    assert hits(b, c) == [0, 0]
    [deployment] = provider.router.deployments("gpt-4o")
    assert deployment.api_base == a.base_url  # what a dump names: the credential's endpoint
    [group] = [g for g in ConfigCatalogue(config).groups() if g.name == "gpt-4o"]
    assert group.credentials_present


@pytest.mark.parametrize(
    ("change", "line", "where", "what"),
    [
        (("litellm_credential_name: default_openai", "litellm_credential_name: prod_openai"), 6,
         "model_list[0].litellm_params.litellm_credential_name", "'prod_openai' is not a credential_name in credential_list"),
        (("  - credential_name: default_openai", "  - credential_name: [x]"), 10,
         "credential_list[0].credential_name", "must be a non-empty string"),
        (('      description: "Production credentials"', ""), 14,
         "credential_list[0].credential_info", "missing"),
    ],
)
def test_a_credential_mistake_is_one_line_naming_file_line_and_key(tmp_path, ups, change, line, where, what) -> None:
    text = credentials_config(ups).replace(*change)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {"OPENAI_API_KEY": "sk-cred-0123456789SECRET"})
    message = str(info.value)
    assert message.startswith(f"{path}: line {line}: {where}: ") and "\n" not in message, message
    assert what in message and "sk-cred-0123456789SECRET" not in message


def test_a_credentials_unset_variable_is_one_line_naming_it(tmp_path, ups) -> None:
    path = write(tmp_path, credentials_config(ups))
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value).startswith(f"{path}: line 12: credential_list[0].credential_values.api_key: ")
    assert "OPENAI_API_KEY is not set" in str(info.value)

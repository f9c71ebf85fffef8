"""The fallback forms litellm's Router resolves, as proxy configs write them: the generic `"*"` key, a key that
is a `model_group_alias` name, a target that is an alias, and a target a wildcard group matches.

Each is accepted at start-up, and a group that fails really falls back to the target through litellm's real HTTP
path to a scripted upstream; the spend reservation's reach (`ModelRef.reach`) holds the target's group, priced
for the name the hop sends.
"""

from __future__ import annotations

import pytest

from harness.upstream import Reply, Upstream
from hive_mcp.llms import ConfigError, load_config
from hive_mcp.provider.retry import RetryPolicy
from tests.provider_calls import USER
from tests.routing_configs import KEY_A as OPENAI_KEY, make_provider

ONE_TRY = RetryPolicy(max_retries=0, time_scale=0.001)


def hits(*servers: Upstream) -> list[int]:
    return [len(s.chat_requests()) for s in servers]


def two_groups(ups: list[Upstream], first: str, second: str, settings: str) -> str:
    """The first group on upstream a, the second on b; `settings` the router_settings lines."""
    a, b, _ = ups
    return f"""
model_list:
  - model_name: "{first}"
    litellm_params: {{model: openai/gpt-4o, api_base: "{a.base_url}", api_key: {OPENAI_KEY}, input_cost_per_token: 1e-6, output_cost_per_token: 2e-6}}
  - model_name: "{second}"
    litellm_params: {{model: "openai/{'*' if '*' in second else 'claude-proxy'}", api_base: "{b.base_url}", api_key: {OPENAI_KEY}, input_cost_per_token: 3e-6, output_cost_per_token: 4e-6}}
router_settings:
{settings}
"""


FORMS = {
    # name: (first group, second group, router_settings, the name called, the group answering, the model b is sent)
    "generic": ("gpt-4o", "claude", '  fallbacks: [{"*": [claude]}]', "gpt-4o", "claude", "claude-proxy"),
    "alias key": ("gpt-4o-prod", "claude", "  model_group_alias: {gpt-4o: gpt-4o-prod}\n  fallbacks: [{gpt-4o: [claude]}]",
                  "gpt-4o", "claude", "claude-proxy"),
    "alias target": ("gpt-4o", "claude-prod", "  model_group_alias: {claude: claude-prod}\n  fallbacks: [{gpt-4o: [claude]}]",
                     "gpt-4o", "claude-prod", "claude-proxy"),
    "wildcard target": ("gpt-4o", "anthropic/*", '  fallbacks: [{gpt-4o: ["anthropic/claude-3-5-sonnet"]}]',
                        "gpt-4o", "anthropic/*", "claude-3-5-sonnet"),
}


@pytest.mark.parametrize("form", list(FORMS))
async def test_a_failing_group_falls_back_in_each_form_litellm_resolves(tmp_path, ups, form: str) -> None:
    first, second, settings, called, answering, sent = FORMS[form]
    a, b, c = ups
    a.script(Reply.error(503))
    b.script(Reply.text("from the fallback"))
    provider, _ = make_provider(tmp_path, two_groups(ups, first, second, settings), retry=ONE_TRY)
    response = await provider.acomplete(USER, model=called)
    assert (response.content, response.answered_group) == ("from the fallback", answering)
    assert hits(a, b, c) == [1, 1, 0]
    assert [r.body["model"] for r in b.chat_requests()] == [sent]
    ref = provider.resolve(called)
    assert ref.reach == (provider.router.resolve(called), answering)
    assert ref.prices[answering] == (3e-6, 4e-6)  # priced for the name the hop sends, not unpriced


def test_a_specific_key_wins_over_the_generic_one_wherever_it_is_listed(tmp_path, ups) -> None:
    """litellm's `get_fallback_model_group`: a group's own entry first, the generic `"*"` only when none is."""
    text = two_groups(ups, "gpt-4o", "claude", '  fallbacks: [{"*": [claude]}, {claude: [gpt-4o]}]')
    provider, _ = make_provider(tmp_path, text)
    assert provider.router.fallback_groups("claude", "transient") == ["gpt-4o"]
    assert provider.router.fallback_groups("gpt-4o", "transient") == ["claude"]


def test_an_alias_key_applies_to_calls_by_the_alias_alone(tmp_path, ups) -> None:
    """As litellm's Router looks a fallback up by the name called: the group called by its own name has none."""
    text = two_groups(ups, "gpt-4o-prod", "claude", "  model_group_alias: {gpt-4o: gpt-4o-prod}\n"
                      "  fallbacks: [{gpt-4o: [claude]}]")
    provider, _ = make_provider(tmp_path, text)
    assert provider.resolve("gpt-4o-prod").reach == ("gpt-4o-prod",)


@pytest.mark.parametrize(
    ("settings", "where", "what"),
    [
        ('  fallbacks: [{gpt-4o: ["anthropic/claude"]}]', "router_settings.fallbacks[0].gpt-4o[0]",
         "'anthropic/claude' is not a model_name, alias or name a wildcard group takes"),
        ('  fallbacks: [{gpt-5: [claude]}]', "router_settings.fallbacks[0].gpt-5",
         "'gpt-5' is not a model_name, alias or name a wildcard group takes"),
        ('  fallbacks: [{gpt-4o: ["*"]}]', "router_settings.fallbacks[0].gpt-4o[0]", "'*' is not a model_name"),
    ],
)
def test_a_fallback_naming_nothing_is_still_one_line(tmp_path, ups, settings: str, where: str, what: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(two_groups(ups, "gpt-4o", "claude", settings))
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value).startswith(f"{path}: line 8: {where}: "), str(info.value)
    assert what in str(info.value)

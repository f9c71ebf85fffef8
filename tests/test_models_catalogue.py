"""The catalogue from a config (litellm's model info, the config's overrides, live cooldowns) and without one;
and `serve.load_models`: the `hive_mcp:` section as defaults, the config's retry and litellm settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hive_mcp.llms import ConfigError, load_config
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.facts import ConfigCatalogue, DefaultCatalogue
from hive_mcp.provider.routing import ModelRouter
from hive_mcp.exposure import allowed_models
from hive_mcp.build import build
from hive_mcp.serve import load_models
from hive_mcp.settings import load_settings
from tests.conftest import FAST_RETRY
from harness.upstream import Reply, Upstream

KEY = "sk-catalogue-0123456789SECRET"
PASSWORD = "redis-pass-0123456789SECRET"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


CONFIG = f"""
model_list:
  - model_name: fast
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:9/v1", api_key: {KEY}}}
  - model_name: fast
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:10/v1", api_key: {KEY}}}
  - model_name: local
    litellm_params: {{model: openai/my-local-model, api_base: "http://127.0.0.1:11/v1"}}
    model_info: {{max_input_tokens: 32000, input_cost_per_token: 0.000001, supports_vision: true}}
router_settings:
  model_group_alias: {{quick: fast, secret-alias: {{model: local, hidden: true}}}}
"""


def test_config_catalogue_names_groups_info_and_no_secret(tmp_path) -> None:
    config = load_config(write(tmp_path, CONFIG), {})
    catalogue = ConfigCatalogue(config)
    assert catalogue.any_model is False
    assert catalogue.callable_names() == ["fast", "local", "quick"]  # the hidden alias is callable, not listed
    fast, local = catalogue.groups()
    assert (fast.name, fast.aliases, len(fast.deployments)) == ("fast", ["quick"], 2)
    assert fast.deployments[0].provider == "openai" and fast.deployments[0].model == "gpt-4o-mini"
    assert fast.max_input_tokens and fast.max_input_tokens > 100_000  # litellm's model information
    assert fast.input_cost_per_mtok and fast.input_cost_per_mtok > 0 and fast.supports_tools is True
    assert fast.credentials_present is True
    assert (local.max_input_tokens, local.input_cost_per_mtok, local.supports_vision) == (32000, 1.0, True)
    dumped = "".join(g.model_dump_json() for g in catalogue.groups())
    assert KEY not in dumped and "127.0.0.1" not in dumped


def test_credentials_present_is_false_for_a_deployment_without_its_key(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    config = load_config(write(tmp_path, "model_list:\n  - model_name: c\n    litellm_params: {model: anthropic/claude-sonnet-4-5}\n"), {})
    (group,) = ConfigCatalogue(config).groups()
    assert group.credentials_present is False


def test_catalogue_shows_a_cooldown_and_tells_listeners(tmp_path) -> None:
    with Upstream(Reply.error(429)) as bad, Upstream() as good:
        text = f"""
model_list:
  - model_name: g
    litellm_params: {{model: openai/a, api_base: "{bad.base_url}", api_key: k}}
  - model_name: g
    litellm_params: {{model: openai/b, api_base: "{good.base_url}", api_key: k}}
router_settings: {{allowed_fails: 0, cooldown_time: 60}}
"""
        config = load_config(write(tmp_path, text), {})
        router = ModelRouter(config)
        catalogue = ConfigCatalogue(config)
        catalogue.attach(router)
        changed = threading.Event()
        catalogue.add_listener(changed.set)
        assert all(d.healthy for d in catalogue.groups()[0].deployments)
        provider = LiteLLMProvider(model="g", router=router, retry=FAST_RETRY, dump_store=False)
        while not bad.chat_requests():
            provider.complete([{"role": "user", "content": "hi"}])
        assert changed.wait(5)
        by_model = {d.model: d for d in catalogue.groups()[0].deployments}
        assert by_model["a"].healthy is False and by_model["a"].cooldown_until is not None
        assert by_model["b"].healthy is True


def test_default_catalogue_without_a_config() -> None:
    catalogue = DefaultCatalogue("openai/gpt-4o-mini")
    assert catalogue.any_model is True and catalogue.callable_names() == ["openai/gpt-4o-mini"]
    (group,) = catalogue.groups()
    assert group.name == "openai/gpt-4o-mini" and group.max_input_tokens


# -- serve.load_models -------------------------------------------------------------------


def settings_with(tmp_path: Path, config: Path, environ: dict[str, str], **flags: object):
    return load_settings({"config": str(config), **flags}, environ=environ, cwd=tmp_path, export=False)


def test_hive_mcp_section_is_a_default_under_flags_and_environment(tmp_path) -> None:
    path = write(tmp_path, CONFIG + "hive_mcp:\n  model: local\n  hive_mcp_port: 9100\n  heartbeat_s: 3\n  log_level: DEBUG\n")
    settings = settings_with(tmp_path, path, {"HIVE_MCP_HEARTBEAT_S": "7"}, log_level="WARNING")
    configured, config = load_models(settings, environ={})
    assert config is not None
    assert (configured.model, configured.port) == ("local", 9100)  # from the file
    assert configured.heartbeat_s == 7.0 and configured.log_level == "WARNING"  # the environment and the flag win


def test_without_a_model_the_first_group_is_the_default(tmp_path) -> None:
    configured, _ = load_models(settings_with(tmp_path, write(tmp_path, CONFIG), {}), environ={})
    assert configured.model == "fast"


@pytest.mark.parametrize(
    ("section", "words"),
    [("hive_mcp:\n  modle: x\n", "hive_mcp.modle: not a hive-mcp setting"),
     ("hive_mcp:\n  port: many\n", "hive_mcp.port"),
     ("hive_mcp:\n  model: gpt-4o\n", "'gpt-4o'")],
)
def test_bad_hive_mcp_values_are_one_line_config_errors(tmp_path, section, words) -> None:
    path = write(tmp_path, CONFIG + section)
    with pytest.raises(ConfigError) as info:
        load_models(settings_with(tmp_path, path, {}), environ={})
    assert words in str(info.value) and "\n" not in str(info.value)


def test_no_config_changes_nothing(tmp_path) -> None:
    settings = load_settings({}, environ={}, cwd=tmp_path, export=False)
    assert load_models(settings) == (settings, None)
    assert allowed_models(settings) == ()


def test_build_with_a_config_redacts_its_secrets_and_takes_its_retries_and_settings(tmp_path) -> None:
    text = CONFIG + f"""  num_retries: 2
  redis_password: {PASSWORD}
litellm_settings: {{drop_params: true, request_timeout: 12}}
"""
    settings = settings_with(tmp_path, write(tmp_path, text), {"HIVE_MCP_DUMP_DIR": str(tmp_path / "d")})
    settings, config = load_models(settings, environ={})
    assert config is not None
    assert allowed_models(settings, config) == ("fast", "local", "quick", "secret-alias")
    app = build(settings, config)
    provider = app.provider._load()  # noqa: SLF001 - the provider as the server's background thread builds it
    assert isinstance(provider, LiteLLMProvider)
    assert KEY in provider.secrets and PASSWORD in provider.secrets
    assert provider.retry.max_retries == 2
    assert provider.extra == {"drop_params": True}
    router = provider.router
    assert router is not None
    deployment = router.deployments("fast")[0]
    kwargs = router.attempt_kwargs({"model": "fast", "messages": [], "num_retries": 3}, deployment)
    assert kwargs["timeout"] == 12.0 and kwargs["model"] == "openai/gpt-4o-mini"  # request_timeout, per attempt
    assert (kwargs["num_retries"], kwargs["max_retries"]) == (0, 0)  # litellm retries nothing itself


def test_build_returns_the_application_by_name(tmp_path) -> None:
    """`build` names what it opened: the server, the provider, the stores, the config's catalogue and the
    dashboard's sources; conversations off leaves no conversation store."""
    import dataclasses

    from hive_mcp.conversations import ConversationStore
    from hive_mcp.spend import Spend

    settings = settings_with(tmp_path, write(tmp_path, CONFIG), {"HIVE_MCP_DUMP_DIR": str(tmp_path / "d")})
    settings, config = load_models(settings, environ={})
    app = build(settings, config)
    assert isinstance(app.catalogue, ConfigCatalogue) and "local" in app.catalogue.callable_names()
    assert isinstance(app.conversations, ConversationStore) and isinstance(app.spend, Spend)
    assert app.store.directory == tmp_path / "d" and app.sources(None).models is not None
    assert app.server.name == "hive-mcp" and app.provider.model == settings.model
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.store = None  # type: ignore[misc]
    assert build(settings.model_copy(update={"conversations": "off"}), config).conversations is None

"""The LiteLLM-format models config: what it accepts, and one clear line for each mistake."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hive_mcp.llms import ConfigError, load_config
from hive_mcp.llms.router_names import numeric_parameters, router_parameters, routing_strategies, typed_parameters

GOOD = """\
model_list:
  - model_name: fast
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9/v1
      api_key: os.environ/FAST_KEY
      rpm: 60
  - model_name: fast
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://user:hunter2hunter2@127.0.0.1:9/v1"}
  - model_name: smart
    litellm_params: {model: anthropic/claude-sonnet-4-5}
    model_info: {max_input_tokens: 1000}
router_settings:
  routing_strategy: usage-based-routing-v2
  fallbacks: [{fast: [smart]}]
  model_group_alias: {quick: fast, secret-quick: {model: fast, hidden: true}}
  allowed_fails: 2
  cooldown_time: 30
  num_retries: 4
litellm_settings:
  drop_params: true
  request_timeout: 30
hive_mcp:
  HEARTBEAT_S: 5
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_proxy_config_loads_with_groups_aliases_and_resolved_references(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), {"FAST_KEY": "k-0123456789abcdef"})
    assert config.groups == ["fast", "smart"]
    assert config.aliases == {"quick": "fast", "secret-quick": "fast"}
    assert config.callable_names() == ["fast", "smart", "quick", "secret-quick"]
    assert config.model_list[0]["litellm_params"]["api_key"] == "k-0123456789abcdef"
    assert config.model_list[2]["model_info"] == {"max_input_tokens": 1000}
    assert config.router_settings["routing_strategy"] == "usage-based-routing-v2"
    assert config.router_settings["fallbacks"] == [{"fast": ["smart"]}]
    # hive-mcp's own retry policy takes the Router's retry count; the Router gets none of its own.
    assert config.num_retries == 4 and "num_retries" not in config.router_settings
    assert config.litellm_settings == {"drop_params": True, "request_timeout": 30}
    assert config.hive_mcp == {"heartbeat_s": 5}
    assert config.warnings == ()


def test_every_key_and_password_in_the_file_is_a_secret(tmp_path: Path) -> None:
    text = GOOD.replace("rpm: 60", "rpm: 60\n      aws_secret_access_key: wJalrXUtnFEMIK7MDENG")
    text += "  \nrouter_settings_extra: 1\n"
    config = load_config(write(tmp_path, text), {"FAST_KEY": "k-0123456789abcdef"})
    assert set(config.secrets) >= {"k-0123456789abcdef", "hunter2hunter2", "wJalrXUtnFEMIK7MDENG"}
    assert "openai/gpt-4o-mini" not in config.secrets and "user" not in config.secrets


def test_keys_in_the_proxys_own_sections_are_secrets_too(tmp_path: Path) -> None:
    """A config shared with the LiteLLM proxy holds its master key and its database's password, which hive-mcp
    ignores but an upstream (that proxy) may echo; litellm_settings may hold a cache's password."""
    text = GOOD + (
        "general_settings:\n  master_key: sk-master-0123456789\n  database_url: postgresql://u:pgpass0123456@db/x\n"
        "  alerting_key: os.environ/ALERT_KEY\n"
    )  # fmt: skip
    text = text.replace("request_timeout: 30", "request_timeout: 30\n  cache_params: {password: cachepass0123456}")
    config = load_config(write(tmp_path, text), {"FAST_KEY": "k-0123456789abcdef"})
    assert set(config.secrets) >= {"sk-master-0123456789", "pgpass0123456", "cachepass0123456"}
    assert not any(s.startswith("os.environ/") for s in config.secrets)


def test_credentials_in_request_headers_are_secrets_with_the_token_alone_too(tmp_path: Path) -> None:
    """A deployment's `extra_headers` (or `headers`) may carry the credential: an upstream echoing it back says
    the token without its scheme, or one cookie's value."""
    text = GOOD.replace("{model: openai/gpt-4o-mini, ", (
        "{model: openai/gpt-4o-mini, extra_headers: {Authorization: 'Bearer corp-hdr-0123456789', "
        "Proxy-Authorization: 'Basic cHJveHk6cGFzczAxMjM0NTY=', Cookie: 'session=cookie0123456789; theme=dark'}, "
        "headers: {X-Api-Key: hdrkey0123456789}, "
    ), 1)  # fmt: skip
    assert text != GOOD
    config = load_config(write(tmp_path, text), {"FAST_KEY": "k-0123456789abcdef"})
    assert set(config.secrets) >= {
        "Bearer corp-hdr-0123456789", "corp-hdr-0123456789", "cHJveHk6cGFzczAxMjM0NTY=", "cookie0123456789",
        "hdrkey0123456789",
    }  # fmt: skip
    assert "Bearer" not in config.secrets and "Basic" not in config.secrets  # the scheme is no secret


def test_references_are_resolved_inside_lists_and_from_environment_variables(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        environment_variables:
          GROUP_B: smart
        model_list:
          - model_name: fast
            litellm_params: {model: openai/a, tags: [os.environ/TAG]}
          - model_name: smart
            litellm_params: {model: openai/b}
        router_settings:
          fallbacks: [{fast: [os.environ/GROUP_B]}]
        """)
    config = load_config(path, {"TAG": "blue"})
    assert config.model_list[0]["litellm_params"]["tags"] == ["blue"]
    assert config.router_settings["fallbacks"] == [{"fast": ["smart"]}]
    assert config.environment == {"GROUP_B": "smart"}


def test_a_deployments_missing_variable_marks_it_and_is_one_warning(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), {})
    assert config.unset == (("FAST_KEY",), (), ())
    assert [config.usable(i) for i in range(3)] == [False, True, True]
    assert config.model_list[0]["litellm_params"]["api_key"] is None
    [warning] = [w for w in config.warnings if "not set" in w]
    assert "FAST_KEY" in warning and "fast (openai/gpt-4o-mini" in warning


def test_a_missing_variable_outside_model_list_is_an_error_naming_it_and_its_line(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, GOOD + "  redis_password: os.environ/REDIS_PASSWORD\n"),
                    {"FAST_KEY": "k-0123456789abcdef"})
    assert text.startswith(f"{tmp_path / 'config.yaml'}: line 25: hive_mcp.redis_password:"), text
    assert "os.environ/REDIS_PASSWORD is not set" in text


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, "model_list:\n  - model_name: a\n    litellm_params: {model: [x\n"))
    assert "line 4" in text and "not valid YAML" in text


@pytest.mark.parametrize(
    ("body", "line", "where", "what"),
    [
        ("model_list:\n  - litellm_params: {model: openai/x}\n", 2, "model_list[0]", "missing model_name"),
        ("model_list:\n  - model_name: a\n", 2, "model_list[0].litellm_params", "missing"),
        ("model_list:\n  - model_name: a\n    litellm_params: {api_base: x}\n", 3, "model_list[0].litellm_params.model",
         "missing"),
        ("model_list:\n  - model_name: ''\n    litellm_params: {model: x}\n", 2, "model_list[0].model_name",
         "non-empty"),
        ("model_list: []\n", 1, "model_list", "non-empty list"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nrouter_settings:\n  routing_strategy: fastest\n",
         5, "router_settings.routing_strategy", "unknown routing strategy 'fastest'"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nrouter_settings:\n  fallbacks: [{a: [b]}]\n",
         5, "router_settings.fallbacks[0].a[0]", "'b' is not a model_name"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nrouter_settings:\n  cooldown_time: soon\n",
         5, "router_settings.cooldown_time", "must be a finite number"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nlitellm_settings:\n  drop_params: 'yes'\n",
         5, "litellm_settings.drop_params", "must be bool"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nlitellm_settings:\n  max_budget: -1\n",
         5, "litellm_settings.max_budget", "at least 0"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nrouter_settings: [1]\n",
         4, "router_settings", "must be a mapping"),
        # numbers YAML reads as not finite: no timeout, cooldown or budget is one
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nrouter_settings:\n  cooldown_time: .nan\n",
         5, "router_settings.cooldown_time", "finite"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nrouter_settings:\n  timeout: .inf\n",
         5, "router_settings.timeout", "finite"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nlitellm_settings:\n  max_budget: .nan\n",
         5, "litellm_settings.max_budget", "finite"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: x}\nlitellm_settings:\n  request_timeout: .inf\n",
         5, "litellm_settings.request_timeout", "finite"),
    ],
)
def test_each_mistake_is_one_line_naming_file_line_and_key(
    tmp_path: Path, body: str, line: int, where: str, what: str
) -> None:
    path = write(tmp_path, body)
    text = error_of(path)
    assert text.startswith(f"{path}: line {line}: {where}: "), text
    assert what in text


@pytest.mark.parametrize(
    ("entry", "where", "what"),
    [
        ("model_info: {input_cost_per_token: cheap}", "model_info.input_cost_per_token",
         "must be a number of at least 0, not 'cheap'"),
        ("model_info: {max_input_tokens: big}", "model_info.max_input_tokens",
         "must be a whole number of at least 0, not 'big'"),
        ("model_info: {max_output_tokens: 1.5}", "model_info.max_output_tokens", "whole number"),
        ("model_info: {output_cost_per_token: -0.1}", "model_info.output_cost_per_token", "at least 0"),
        ("model_info: {max_tokens: true}", "model_info.max_tokens", "not True"),
        ("model_info: {input_cost_per_token: .nan}", "model_info.input_cost_per_token", "not nan"),
        ("litellm_params: {model: openai/gpt-4o-mini, rpm: many}", "litellm_params.rpm", "whole number"),
        ("litellm_params: {model: openai/gpt-4o-mini, timeout: soon}", "litellm_params.timeout", "not 'soon'"),
        ("litellm_params: {model: openai/gpt-4o-mini, max_retries: [1]}", "litellm_params.max_retries", "not [1]"),
        ("litellm_params: {model: openai/gpt-4o-mini, weight: heavy}", "litellm_params.weight", "a number"),
    ],
)
def test_a_numeric_key_of_a_deployment_that_is_not_a_number_is_one_line_naming_it(
    tmp_path: Path, entry: str, where: str, what: str
) -> None:
    """litellm would take the file, then fail every call (or list_models) without naming the key."""
    params = "" if entry.startswith("litellm_params") else "    litellm_params: {model: openai/gpt-4o-mini}\n"
    path = write(tmp_path, f"model_list:\n  - model_name: a\n{params}    {entry}\n")
    text = error_of(path)
    assert text.startswith(f"{path}: line {4 if params else 3}: model_list[0].{where}: "), text
    assert what in text, text


@pytest.mark.parametrize(
    ("value", "where", "what"),
    [
        ("api_version: 2024-10-21", "litellm_params.api_version", "a date (2024-10-21): quote it"),
        ("api_version: 2024", "litellm_params.api_version", "a number (2024): quote it"),
        ("api_base: true", "litellm_params.api_base", "must be a string, not True"),
        ("region_name: [eu]", "litellm_params.region_name", "must be a string, not a list"),
        ("tags: free", "litellm_params.tags", "must be a list, not 'free'"),
        ("tags: [free, 1]", "litellm_params.tags[1]", "must be a string, not a number (1): quote it"),
    ],
)
def test_a_string_or_list_key_of_a_deployment_of_the_wrong_type_is_one_line_naming_it(
    tmp_path: Path, value: str, where: str, what: str
) -> None:
    """litellm's `LiteLLM_Params` would refuse the value on every call to the group ("Input should be a valid
    string", no file, no line): refused at start-up instead, the deployment beside it not hiding it."""
    path = write(tmp_path, f"""\
        model_list:
          - model_name: fast
            litellm_params: {{model: openai/gpt-4o-mini}}
          - model_name: gpt-4o
            litellm_params:
              model: azure/my-gpt4o
              {value}
        """)
    text = error_of(path)
    assert text.startswith(f"{path}: line 7: model_list[1].{where}: "), text
    assert what in text, text


def test_string_and_list_keys_that_are_right_load_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        model_list:
          - model_name: a
            litellm_params: {model: azure/x, api_version: "2024-10-21", tags: [free, eu], api_base: os.environ/BASE}
        """)
    [entry] = load_config(path, {"BASE": "http://127.0.0.1:9/v1"}).model_list
    assert (entry["litellm_params"]["api_version"], entry["litellm_params"]["tags"]) == ("2024-10-21", ["free", "eu"])


def test_typed_parameters_read_from_source_match_the_imported_model() -> None:
    """What `typed_parameters` reads with `ast` is what `LiteLLM_Params` declares: str alone (or None), a list."""
    import types
    import typing
    from typing import get_args, get_origin

    from litellm.types.router import LiteLLM_Params

    def kind(annotation: Any) -> str | None:
        found = set(get_args(annotation)) if get_origin(annotation) in (typing.Union, types.UnionType) else {annotation}
        found.discard(type(None))
        if found == {str}:
            return "str"
        if found and all(a is list or get_origin(a) is list for a in found):
            return "list[str]" if all(get_args(a) == (str,) for a in found) else "list"
        return None

    declared = {k: kind(f.annotation) for k, f in LiteLLM_Params.model_fields.items()}
    typed = {k: v for k, v in declared.items() if v is not None}
    # A field declared through a module-level type alias is not read (`ast` sees the alias's name): left unchecked.
    assert set(typed) - set(typed_parameters()) == {"configurable_clientside_auth_params"}
    assert typed_parameters().items() <= typed.items()
    assert {"api_version": "str", "api_base": "str", "tags": "list[str]"}.items() <= typed_parameters().items()


def test_numbers_written_as_strings_are_taken_as_litellm_takes_them(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        model_list:
          - model_name: a
            litellm_params: {model: openai/gpt-4o-mini, rpm: os.environ/A_RPM, timeout: "30.5", max_retries: "2"}
            model_info: {max_input_tokens: "1000", input_cost_per_token: "1e-6"}
        """)
    [entry] = load_config(path, {"A_RPM": "60"}).model_list
    params, info = entry["litellm_params"], entry["model_info"]
    assert (params["rpm"], params["timeout"], params["max_retries"]) == (60, 30.5, 2)
    assert (info["max_input_tokens"], info["input_cost_per_token"]) == (1000, 1e-6)


def test_numeric_parameters_read_from_source_match_the_imported_models() -> None:
    """What `numeric_parameters` reads with `ast` is what litellm's own models declare (for the keys both know)."""
    import types
    import typing
    from typing import get_args, get_origin, get_type_hints

    import typing_extensions
    from litellm.types.router import LiteLLM_Params, ModelInfo
    from litellm.types.utils import ModelInfoBase

    wrappers = {typing.Union, types.UnionType, typing.Annotated, typing_extensions.ReadOnly, typing.Required,
                typing.NotRequired, typing_extensions.Required, typing_extensions.NotRequired}

    def leaves(annotation: Any) -> set[Any]:
        if get_origin(annotation) in wrappers:
            args = get_args(annotation)
            return set().union(*(leaves(a) for a in (args[:1] if get_origin(annotation) is typing.Annotated else args)))
        return {annotation}

    def kind(annotation: Any) -> str | None:
        found = leaves(annotation)
        if bool in found or not found & {int, float}:
            return None
        return "float" if float in found else "int"

    model_info, litellm_params = numeric_parameters()
    for declared, read in (
        ({**{k: kind(v) for k, v in get_type_hints(ModelInfoBase).items()},
          **{k: kind(f.annotation) for k, f in ModelInfo.model_fields.items()}}, model_info),
        ({k: kind(f.annotation) for k, f in LiteLLM_Params.model_fields.items()}, litellm_params),
    ):
        numeric = {k: v for k, v in declared.items() if v is not None}
        assert numeric == read
    assert {"max_input_tokens", "input_cost_per_token"} <= model_info.keys()
    assert {"rpm", "tpm", "timeout", "stream_timeout", "max_retries"} <= litellm_params.keys()


def test_no_model_list_and_no_file_are_errors(tmp_path: Path) -> None:
    assert "model_list: missing" in error_of(write(tmp_path, "router_settings: {}\n"))
    assert "no such file" in error_of(tmp_path / "absent.yaml")


def test_what_only_the_proxy_understands_is_ignored_with_one_warning_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        model_list:
          - model_name: a
            litellm_params: {model: openai/x}
        general_settings: {master_key: sk-1234, database_url: postgres://x}
        guardrails: []
        router_settings: {no_such_router_arg: 1, retry_policy: {}}
        litellm_settings: {success_callback: [langfuse], drop_params: false, max_budget: 5, num_retries: 2}
        """)
    config = load_config(path, {})
    assert config.warnings[0] == f"{path}: ignored (only the LiteLLM proxy uses them): general_settings, guardrails"
    assert any("no_such_router_arg" in w for w in config.warnings)
    assert any(w.startswith("router_settings.retry_policy: ignored") for w in config.warnings)
    assert any(w == "litellm_settings: not applied by hive-mcp: success_callback" for w in config.warnings)
    assert config.litellm_settings == {"drop_params": False}
    assert config.budget == {"max_budget": 5}  # hive-mcp's budgets, not litellm's per-process cap
    assert config.num_retries == 2
    assert "no_such_router_arg" not in config.router_settings and "retry_policy" not in config.router_settings


def test_include_merges_files_and_errors_point_into_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "more").mkdir()
    write(tmp_path, "model_list:\n  - model_name: b\n    litellm_params: {model: openai/b}\ninclude: [../c.yaml]\n",
          "more/b.yaml")
    write(tmp_path, "model_list:\n  - model_name: c\n    litellm_params: {model: openai/c}\ninclude: [main.yaml]\n",
          "c.yaml")
    main = write(tmp_path, "include: [more/b.yaml]\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\n"
                 "router_settings:\n  fallbacks: [{a: [b, c]}]\n", "main.yaml")
    config = load_config(main, {})  # the include cycle back to main.yaml is read once
    assert config.groups == ["a", "b", "c"]

    broken = tmp_path / "more" / "b.yaml"
    broken.write_text("model_list:\n  - model_name: b\n    litellm_params: {api_base: x}\n")
    text = error_of(main)
    assert text.startswith(f"{broken.resolve()}: line 3: model_list[1].litellm_params.model: ")

    main.write_text("include: [nowhere.yaml]\nmodel_list:\n  - model_name: a\n    litellm_params: {model: x}\n")
    assert "include: nowhere.yaml: no such file" in error_of(main)


def test_router_names_read_from_source_match_the_imported_router() -> None:
    from typing import get_args

    import litellm.router
    from litellm.types.litellm_params import RoutingStrategyName

    declared = {n for n in inspect.signature(litellm.router._router_init).parameters if n != "self"}
    assert router_parameters() == {n for n in declared if not n.startswith("_")}
    assert routing_strategies() == get_args(RoutingStrategyName)

"""A models config over three scripted upstreams (the `ups` fixture), each deployment with its own key, and a
provider routed by a config's text, for the tests of routing through litellm's real HTTP path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hive_mcp.dumps import DumpStore
from hive_mcp.llms import load_config
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.routing import ModelRouter
from tests.conftest import FAST_RETRY
from harness.upstream import Upstream

KEY_A = "sk-deployment-a-0123456789SECRET"
KEY_B = "sk-deployment-b-0123456789SECRET"
KEY_C = "sk-deployment-c-0123456789SECRET"


def config_text(ups: list[Upstream], router: str = "", more: str = "") -> str:
    """Group `fast`: deployments a and b; group `big`: deployment c; alias `quick` -> fast."""
    a, b, c = ups
    return f"""
model_list:
  - model_name: fast
    litellm_params: {{model: openai/model-a, api_base: "{a.base_url}", api_key: {KEY_A}}}
  - model_name: fast
    litellm_params: {{model: openai/model-b, api_base: "{b.base_url}", api_key: {KEY_B}}}
  - model_name: big
    litellm_params: {{model: openai/model-c, api_base: "{c.base_url}", api_key: {KEY_C}}}
{more}
router_settings:
  model_group_alias: {{quick: fast}}
{router}
"""


def make_provider(tmp_path: Path, text: str, **kw: Any) -> tuple[LiteLLMProvider, DumpStore]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    config = load_config(path, {})
    store = DumpStore(tmp_path / "dumps")
    provider = LiteLLMProvider(
        model=config.groups[0], router=ModelRouter(config), retry=kw.pop("retry", FAST_RETRY), dump_store=store, **kw
    )
    return provider, store

"""The dashboard's Models section: the data from a catalogue and the dump store, the `dashboard` tool
(the SDK's real Client against build_server), `/dashboard/data?view=models` through the HTTP app, and
what serve.py hands the HTTP side. The catalogue is a plain class implementing the `Catalogue` protocol.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from mcp import Client

from hive_mcp.dashboard import Sources
from hive_mcp.dashboard.models import ModelsSection, day_start, failure_names, models_section, models_source
from hive_mcp.dashboard.web import dashboard_app
from hive_mcp.dumps import DumpStore
from hive_mcp.http.app import build_app
from hive_mcp.limits import Limits
from hive_mcp.mcp.model_list import ModelsView
from hive_mcp.llms.catalogue import DeploymentInfo, ModelGroup
from hive_mcp.provider import DeferredProvider
from hive_mcp.settings import load_settings
from tests.catalogues import FakeCatalogue
from tests.dashboard_dumps import failure
from tests.catalogues import COOL_UNTIL, two_groups
from tests.dashboard_models import listing, write_days
from tests.clients import mcp_server

BASE = "http://127.0.0.1:8000"


def rows(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in section["groups"]}


# ---------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------


def test_each_group_counts_its_failures_since_midnight_utc(store: DumpStore) -> None:
    now = datetime.now(UTC)
    expected = write_days(store, now)
    section = models_section(store, listing(), now=now).model_dump(mode="json")
    groups = rows(section)
    assert list(groups) == ["fast", "smart"]
    fast, smart = groups["fast"], groups["smart"]
    assert fast["failures_today"] == expected["fast"] and fast["failures_by_category"] == {"rate_limit": 3, "timeout": 1}
    assert smart["failures_today"] == expected["smart"] and smart["failures_by_category"] == {}
    assert section["other_failures_today"] == expected["other"]
    assert section["day_start"] == day_start(now).isoformat().replace("+00:00", "Z")
    assert fast["calls_today"] is None and smart["calls_today"] is None and section["calls_recorded"] is False
    assert section["truncated"] is False


def test_the_groups_shape_comes_from_the_listing(store: DumpStore) -> None:
    section = models_section(store, listing())
    assert section.default_model == "fast" and section.any_model is False and section.note == listing().note
    fast, smart = section.groups
    assert fast.aliases == ["quick"] and smart.aliases == []
    assert [(d.name, d.health, d.cooldown_until) for d in fast.deployments] == [
        ("openai/gpt-4o-mini", "healthy", None),
        ("azure/gpt-4o-mini-eu", "cooling_down", COOL_UNTIL),
    ]
    assert (fast.input_cost_per_mtok, fast.output_cost_per_mtok) == (0.15, 0.6)
    assert (fast.max_input_tokens, fast.max_output_tokens) == (128_000, 16_384)
    assert smart.input_cost_per_mtok is None and smart.max_input_tokens is None
    assert all(g.failures_today == 0 for g in section.groups)


def test_what_a_dump_is_matched_on() -> None:
    fast = two_groups().groups()[0]
    assert failure_names(fast) == ["fast", "quick", "openai/gpt-4o-mini", "azure/gpt-4o-mini-eu"]
    bare = ModelGroup(name="gpt-4o-mini", deployments=[DeploymentInfo(provider="", model="gpt-4o-mini")])
    assert failure_names(bare) == ["gpt-4o-mini"]  # named once, counted once


def test_a_deployment_down_without_a_known_end_is_unhealthy(store: DumpStore) -> None:
    down = FakeCatalogue([ModelGroup(name="x", deployments=[DeploymentInfo(provider="p", model="m", healthy=False)])])
    section = models_section(store, ModelsView(down, "x", Limits()).listing())
    assert [(d.health, d.cooldown_until) for d in section.groups[0].deployments] == [("unhealthy", None)]


# ---------------------------------------------------------------------------
# The tool
# ---------------------------------------------------------------------------


async def test_the_dashboard_tool_shows_the_servers_catalogue(store: DumpStore) -> None:
    expected = write_days(store, datetime.now(UTC))
    server = mcp_server(DeferredProvider(lambda: None, model="fast"), store, default_model="fast", catalogue=two_groups())
    async with Client(server, raise_exceptions=True) as client:
        models = await client.call_tool("dashboard", {"view": "models"})
        first = await client.call_tool("dashboard", {})
    assert not models.is_error and models.structured_content is not None
    section = models.structured_content["models"]
    assert models.structured_content["failures"] is None
    ModelsSection.model_validate(section)
    groups = rows(section)
    assert {name: g["failures_today"] for name, g in groups.items()} == {"fast": expected["fast"], "smart": 0}
    assert [d["health"] for d in groups["fast"]["deployments"]] == ["healthy", "cooling_down"]
    assert getattr(models.content[0], "text") == f"models: 2 group(s); failures today (UTC): fast {expected['fast']}, smart 0"
    assert first.structured_content is not None and rows(first.structured_content["models"]) == groups
    assert first.structured_content["spend"] is None  # the spend issue has not landed


# ---------------------------------------------------------------------------
# Over HTTP: the app serve.py runs
# ---------------------------------------------------------------------------


def settings_in(tmp_path: Path, **flags: Any) -> Any:
    return load_settings({"dump_dir": str(tmp_path / "dumps"), **flags}, environ={}, cwd=str(tmp_path), export=False)


async def test_the_data_endpoint_serves_the_models_view_through_build_app(store: DumpStore, tmp_path: Path) -> None:
    expected = write_days(store, datetime.now(UTC))
    server = mcp_server(DeferredProvider(lambda: None, model="fast"), store, default_model="fast", catalogue=two_groups())
    sources = Sources(models=models_source(store, listing))
    app, _ = build_app(server, settings_in(tmp_path, transport="http"), (), store=store, sources=sources)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        r = await client.get("/dashboard/data", params={"view": "models"})
        bare, _ = build_app(server, settings_in(tmp_path, transport="http"), (), store=store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url=BASE) as without:
            unset = await without.get("/dashboard/data", params={"view": "models"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["view"] == "models" and data["failures"] is None
    assert {n: g["failures_today"] for n, g in rows(data["models"]).items()} == {"fast": expected["fast"], "smart": 0}
    assert unset.status_code == 200 and unset.json()["models"] is None


async def test_the_models_view_needs_the_token_like_the_rest(store: DumpStore) -> None:
    app = dashboard_app(store, verify_token=lambda t: "ops" if t == "tok" else None, sources=Sources(models=models_source(store, listing)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        refused = await client.get("/dashboard/data", params={"view": "models"})
        allowed = await client.get("/dashboard/data", params={"view": "models"}, headers={"authorization": "Bearer tok"})
    assert refused.status_code == 401 and "models" not in refused.json()
    assert allowed.status_code == 200 and [g["name"] for g in allowed.json()["models"]["groups"]] == ["fast", "smart"]


def test_serve_builds_the_models_source_from_the_servers_catalogue(tmp_path: Path) -> None:
    from hive_mcp.build import build

    settings = settings_in(tmp_path, model="openai/gpt-4o-mini")
    built = build(settings)
    assert built.store.write(failure(datetime.now(UTC), "rate_limit", "openai/gpt-4o-mini"))
    sources = built.sources(None)
    assert sources.models is not None
    section = sources.models()
    assert isinstance(section, ModelsSection)
    [group] = section.groups
    assert group.name == "openai/gpt-4o-mini" and section.any_model is True
    assert [d.name for d in group.deployments] == ["openai/gpt-4o-mini"] and group.failures_today == 1


async def test_a_deployment_without_its_credentials_shows_as_no_credentials_naming_the_variable(
    tmp_path: Path,
) -> None:
    from hive_mcp.build import build
    from hive_mcp.serve import load_models

    secret = "sk-dash-0123456789abcdefSECRET"
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: fast\n"
        "    litellm_params: {model: azure/gpt-4o-mini, api_key: os.environ/AZURE_FAST_KEY, api_base: https://eu.example}\n"
        "  - model_name: fast\n"
        "    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_FAST_KEY}\n"
    )
    settings, config = load_models(settings_in(tmp_path, config=str(path)), {"OPENAI_FAST_KEY": secret})
    built = build(settings, config)
    app, _ = build_app(built.server, settings_in(tmp_path, transport="http"), (), store=built.store, sources=built.sources)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        r = await client.get("/dashboard/data", params={"view": "models"})
    assert r.status_code == 200, r.text
    deployments = rows(r.json()["models"])["fast"]["deployments"]
    assert [(d["name"], d["health"], d["missing_variables"]) for d in deployments] == [
        ("azure/gpt-4o-mini", "no_credentials", ["AZURE_FAST_KEY"]),
        ("openai/gpt-4o-mini", "healthy", []),
    ]
    assert secret not in r.text

"""The dashboard while a store does not answer: through the `dashboard` tool (the SDK's real client in process)
and the page's data endpoint, with a real valkey-server stopped under the spend ledger or the dump store. A
section whose store is down says so in one line; the rest still answers; nothing looks whole that is not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from mcp import Client

from hive_mcp.dashboard import Sources
from hive_mcp.dashboard.web import dashboard_app
from hive_mcp.dumps import DumpStore
from hive_mcp.dumps.redis_store import RedisDumpStore
from hive_mcp.mcp.usage_view import usage_source
from hive_mcp.provider import DeferredProvider
from hive_mcp.spend import Budgets, Spend
from hive_mcp.spend.redis_backend import RedisBackend
from harness.valkey import ValkeyProcess
from tests.clients import mcp_server
from tests.conftest_valkey import valkey_binary
from tests.dashboard_dumps import BASE, DASHBOARD_TOOL, failure

async def test_a_section_whose_store_is_down_is_marked_unavailable_and_the_rest_still_answers(
    store: DumpStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Valkey stopped under the spend ledger: the tool and the page both answer, the spend section marked
    unavailable with one line naming its store, the failures still counted; no traceback anywhere."""
    store.write(failure(datetime.now(UTC), "auth", "m"))
    with ValkeyProcess(valkey_binary()) as valkey:
        spend = Spend(RedisBackend(valkey.url, prefix="dash:"), Budgets.from_settings(day=1.0, month=None, section=None), None)  # type: ignore[arg-type] - no price is asked
        server = mcp_server(DeferredProvider(lambda: None, model="m"), store, default_model="m", spend=spend)
        app = dashboard_app(store, verify_token=None, sources=lambda who: Sources(spend=usage_source(spend, who)))
        valkey.stop()
        async with Client(server, raise_exceptions=True) as client:
            answers = {v: await client.call_tool(DASHBOARD_TOOL, {"view": v}) for v in ("spend", "failures")}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web_client:
            pages = {v: await web_client.get("/dashboard/data", params={"view": v}) for v in ("spend", "failures")}
        spend.release_all()
    for view, result in answers.items():
        assert not result.is_error, getattr(result.content[0], "text")
        assert result.structured_content is not None and result.structured_content["spend"] is None
        [(name, note)] = result.structured_content["unavailable"].items()
        assert name == "spend" and note.startswith(f"OSError: {valkey.url}: ") and "\n" not in note, note
        assert pages[view].status_code == 200, pages[view].text
        [(name, note)] = pages[view].json()["unavailable"].items()
        assert name == "spend" and note == f"OSError: {valkey.url}: the state store is unavailable", note
    assert getattr(answers["spend"].content[0], "text").startswith("spend: unavailable (")
    assert answers["failures"].structured_content["failures"]["total"] == 1  # type: ignore[index]
    assert "spend unavailable" in getattr(answers["failures"].content[0], "text")
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_while_the_shared_dump_store_is_down_a_listing_says_it_shows_only_the_local_dumps(
    tmp_path: Path,
) -> None:
    """Dumps in Valkey, then Valkey stopped and one more dump written (to the local directory): the listing
    shows the one it can read, and the tool, the page's data and `list_failed_requests` say in one line that
    the shared ones are left out, rather than a count that looks whole."""
    with ValkeyProcess(valkey_binary()) as valkey:
        shared = RedisDumpStore(valkey.url, tmp_path / "dumps", prefix="down:")
        for category in ("auth", "rate_limit"):
            shared.write(failure(datetime.now(UTC), category, "m"))
        whole = shared.list(limit=10)
        valkey.stop()
        shared.write(failure(datetime.now(UTC), "timeout", "m"))  # the write finds Redis gone: kept locally
        server = mcp_server(DeferredProvider(lambda: None, model="m"), shared, default_model="m")
        app = dashboard_app(shared, verify_token=None)
        async with Client(server, raise_exceptions=True) as client:
            tool = await client.call_tool(DASHBOARD_TOOL, {"view": "failures"})
            listed = await client.call_tool("list_failed_requests", {})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web_client:
            page = (await web_client.get("/dashboard/data")).json()
    assert whole.unavailable is None and len(whole.items) == 2
    why = f"{valkey.url} is unavailable: only the dumps written here since are listed"
    assert page["failures"]["total"] == 1 and page["unavailable"] == {"failures": why}
    assert tool.structured_content is not None and tool.structured_content["unavailable"] == {"failures": why}
    assert f"failures unavailable ({why})" in getattr(tool.content[0], "text")
    assert listed.structured_content is not None and len(listed.structured_content["items"]) == 1
    assert listed.structured_content["unavailable"] == why

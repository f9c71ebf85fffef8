"""A big answer through `python -m hive_mcp --transport http` as a subprocess, with named callers: the whole is
its caller's (another caller reads it as not found, through the resource and through `read_result`, and does
not see it listed; an admin reads it), and, with HIVE_MCP_STATE_URL on a real valkey-server, any instance
serves it: paged on one instance, read back exactly through another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from harness.upstream import Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.clients import text_of
from tests.conftest_valkey import valkey_binary
from tests.servers import HttpServer, authed_target, instances_on, server_env
from tests.paged_answers import long_answer

ALICE = "tok-alice-0123456789abcdef"
BOB = "tok-bob-0123456789abcdef"
ROOT = "tok-root-0123456789abcdef"  # an admin

Served = tuple[HttpServer, HttpServer, Upstream]
"""Where the call goes, where it is read back, the upstream."""


@pytest.fixture(params=[1, 2], ids=["sqlite", "valkey-two-instances"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(Upstream())
        env = server_env(upstream, tmp_path / "dumps", api_key=True) | {
            "HIVE_MCP_AUTH_TOKEN": f"alice:{ALICE},bob:{BOB},root:{ROOT}",
            "HIVE_MCP_ADMINS": "root",
            "HIVE_MCP_RESULT_INLINE_TOKENS": "100",
        }  # fmt: skip
        if request.param == 1:
            server = HttpServer("http", env, tmp_path, "results")
            server.wait_loaded()  # the calls are bounded as calls, not as litellm's import too
            yield server, server, upstream
            assert server.terminate() == 0 and "Traceback" not in server.stderr(), server.stderr()
            return
        state_url = stack.enter_context(ValkeyProcess(valkey_binary())).url
        settings = {k: v for k, v in env.items() if k.startswith("HIVE_MCP_") and k != "HIVE_MCP_DUMP_DIR"}
        first, second = stack.enter_context(instances_on(state_url, tmp_path, ["a", "b"], **settings))
        yield first, second, upstream


def results_listed(listing: types.ListResourcesResult) -> set[str]:
    return {r.uri for r in listing.resources if r.uri.startswith("hive://results/")}


async def test_a_big_answer_is_its_callers_and_any_instance_serves_it(served: Served) -> None:
    calling, reading, upstream = served
    answer = long_answer()
    upstream.script(Reply.text(answer))
    async with Client(authed_target(calling, ALICE)(), mode="legacy") as alice:
        r = await alice.call_tool("complete", {"prompt": "a long one", "max_tokens": 8000})
    s = r.structured_content
    assert not r.is_error and s is not None and s["truncated"] is True, text_of(r)
    uri, count = s["result_uri"], s["parts"]
    rid = uri.rsplit("/", 1)[1]
    async with (
        Client(authed_target(reading, ALICE)(), mode="auto") as alice,
        Client(authed_target(reading, BOB)(), mode="auto") as bob,
        Client(authed_target(reading, ROOT)(), mode="legacy") as root,
    ):
        whole = (await alice.read_resource(uri)).contents[0]
        parts = [(await alice.read_resource(f"{uri}?part={n}")).contents[0] for n in range(1, count + 1)]
        assert uri in results_listed(await alice.list_resources())
        # Another caller: not found, as an unknown id reads; nothing listed.
        with pytest.raises(MCPError, match="not found") as refused:
            await bob.read_resource(uri)
        with pytest.raises(MCPError, match="not found") as unknown:
            await bob.read_resource("hive://results/" + "0" * 32)
        assert str(refused.value).replace(rid, "ID") == str(unknown.value).replace("0" * 32, "ID")
        by_tool = await bob.call_tool("read_result", {"id": rid, "part": 2})
        assert results_listed(await bob.list_resources()) == set()
        # An admin reads any caller's.
        assert (await root.read_resource(f"{uri}?part=2")).contents[0].text == parts[1].text
    assert isinstance(whole, types.TextResourceContents) and whole.text == answer
    assert "".join(p.text for p in parts if isinstance(p, types.TextResourceContents)) == answer
    assert by_tool.is_error and "not found" in text_of(by_tool)

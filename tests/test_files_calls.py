"""`files` on the completion tools, through the SDK's client and litellm's real HTTP path to the scripted upstream:
what the upstream receives, what the result lists, a server with no root, the budget counting the files, and a
conversation that keeps the files' text so its continuation does not read them again."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from harness.upstream import Reply, Upstream
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from hive_mcp.files import FileAccess, FileRoots, Root
from hive_mcp.limits import Limits
from hive_mcp.llms.catalogue import ModelGroup
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from tests.catalogues import FakeCatalogue
from tests.clients import MODEL, connect, mcp_server, text_of

SOURCE = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "calc.py").write_text(SOURCE)
    (root / ".env").write_text("OPENAI_API_KEY=sk-never-sent-0000000000000000\n")
    return root


def access(root: Path) -> FileAccess:
    return FileAccess(FileRoots((Root(root.resolve()),)))


def file_text(message: dict) -> str:
    return "".join(part.get("text", "") for part in message["content"] if isinstance(part, dict))


async def test_the_files_go_first_as_one_user_message_and_the_result_lists_them(
    provider, store: DumpStore, upstream: Upstream, tree: Path, mode: str
) -> None:
    upstream.script(Reply.text("It adds."))
    async with connect(mcp_server(provider, store, files=access(tree)), mode) as c:
        r = await c.call_tool("complete", {"prompt": "What does it do?", "files": ["src/*.py", ".env"]})
    assert not r.is_error, text_of(r)
    (request,) = upstream.chat_requests()
    files, asked = request.messages[-2:]
    assert asked == {"role": "user", "content": "What does it do?"}
    assert files["role"] == "user" and SOURCE in file_text(files) and "src/calc.py" in file_text(files)
    assert "sk-never-sent" not in str(request.body)
    (sent,) = r.structured_content["files"]
    assert sent["path"] == "src/calc.py" and sent["bytes"] == len(SOURCE) and sent["tokens"] > 0
    assert [s["path"] for s in r.structured_content["skipped_files"]] == [".env"]


async def test_a_server_with_no_root_refuses_files_before_any_request(
    provider, store: DumpStore, upstream: Upstream, tree: Path
) -> None:
    async with connect(mcp_server(provider, store), "legacy") as c:
        r = await c.call_tool("stream_complete", {"prompt": "hi", "files": [str(tree / "src" / "calc.py")]})
    assert r.is_error and text_of(r).startswith("files: files are off") and "\n" not in text_of(r)
    assert upstream.chat_requests() == []


async def test_the_budget_reservation_counts_the_files(
    provider, store: DumpStore, upstream: Upstream, tree: Path, tmp_path: Path
) -> None:
    big = tree / "src" / "big.py"
    big.write_text("x = 1\n" * 20_000)
    max_tokens = 50
    prompt = provider.count_tokens([{"role": "user", "content": "hi"}], MODEL) or 0
    room = micro(prompt * 0.15e-6 + max_tokens * 0.6e-6) * 2  # the prompt twice over, not the file
    budgets = Budgets.from_settings(day=room / 1e6, month=None, section={},
                                    names={"caller": ["local"], "model": [MODEL]})  # fmt: skip
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    upstream.script(Reply.text("ok"))
    server = mcp_server(provider, store, files=access(tree), spend=spend, limits=Limits(max_tokens=max_tokens))
    async with connect(server, "legacy") as c:
        refused = await c.call_tool("complete", {"prompt": "hi", "files": ["src/big.py"], "max_tokens": max_tokens})
        served = await c.call_tool("complete", {"prompt": "hi", "max_tokens": max_tokens})
    assert refused.is_error and "budget" in text_of(refused), text_of(refused)
    assert not served.is_error and len(upstream.chat_requests()) == 1


async def test_a_conversation_keeps_the_files_text_for_its_continuation(
    provider, store: DumpStore, upstream: Upstream, tree: Path, tmp_path: Path
) -> None:
    upstream.script(Reply.text("It adds."), Reply.text("Two numbers."))
    conversations = SQLiteStore(tmp_path / "conversations.sqlite3")
    async with connect(mcp_server(provider, store, files=access(tree), conversations=conversations), "legacy") as c:
        first = await c.call_tool("complete", {"prompt": "What does it do?", "files": ["src/calc.py"]})
        (tree / "src" / "calc.py").write_text("changed\n")  # a continuation sends what was read, not the file now
        then = await c.call_tool(
            "complete", {"prompt": "Of what?", "conversation_id": first.structured_content["conversation_id"]}
        )
    assert not then.is_error
    continued = upstream.chat_requests()[1].messages
    assert any(SOURCE in file_text(m) for m in continued if isinstance(m.get("content"), list))
    assert "changed" not in str(continued)


async def test_never_read_names_in_any_case_do_not_reach_the_upstream(
    provider, store: DumpStore, upstream: Upstream, tree: Path, mode: str
) -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfV\n-----END RSA PRIVATE KEY-----\n"
    names = ["server.PEM", "ID_RSA", "deploy.Key", "Credentials", "prod.TFSTATE"]
    for name in names:
        (tree / name).write_text(key)
    upstream.script(Reply.text("ok"))
    async with connect(mcp_server(provider, store, files=access(tree)), mode) as c:
        r = await c.call_tool("complete", {"prompt": "Review.", "files": [*names, "src/calc.py"]})
    assert not r.is_error, text_of(r)
    assert "PRIVATE KEY" not in str(upstream.chat_requests()[0].body)
    assert [f["path"] for f in r.structured_content["files"]] == ["src/calc.py"]
    skipped = {s["path"]: s["reason"] for s in r.structured_content["skipped_files"]}
    assert list(skipped) == names and all(reason.startswith("never read") for reason in skipped.values())


async def test_an_image_holding_a_key_does_not_reach_a_vision_model_and_a_clean_one_does(
    provider, store: DumpStore, upstream: Upstream, tree: Path, mode: str
) -> None:
    key = "sk-proj-" + "Q7m2Xk9LpR4tV8wZ1cB6nH3jD5fG0aYe"
    clean = bytes.fromhex("47494638396101000100800000ffffff0000002c00000000010001000002024401003b")  # 1x1 GIF
    (tree / "keyed.gif").write_bytes(b"GIF89a\nOPENAI_API_KEY=" + key.encode() + b"\n")
    (tree / "clean.gif").write_bytes(clean)
    upstream.script(Reply.text("ok"))
    vision = FakeCatalogue([ModelGroup(name=MODEL, supports_vision=True)])  # the model takes images
    async with connect(mcp_server(provider, store, files=access(tree), catalogue=vision), mode) as c:
        r = await c.call_tool("complete", {"prompt": "Describe.", "files": ["keyed.gif", "clean.gif"]})
    assert not r.is_error, text_of(r)
    body = str(upstream.chat_requests()[0].body)
    assert "data:image/gif;base64," + base64.b64encode(clean).decode() in body
    assert key not in body and base64.b64encode(b"GIF89a\nOPENAI_API_KEY").decode()[:24] not in body
    assert [f["path"] for f in r.structured_content["files"]] == ["clean.gif"]
    assert [s["path"] for s in r.structured_content["skipped_files"]] == ["keyed.gif"]

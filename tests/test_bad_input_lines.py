"""Bad input that once reached litellm or the file system and came back as a failure with a dump (or a
traceback): each is now refused before the upstream, with its exact one line naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.files import FileAccess, FileRoots, FilesRefused, Root
from hive_mcp.files.select import select
from tests.bad_calls import INF, NAN, checked, limited_server, prompt_and, tool_with
from tests.clients import connect, text_of
from harness.upstream import Reply, Upstream

LONG = "y" * 300
NAN_SCHEMA = {"type": "object", "properties": {"a": {"minimum": NAN}}}


def exactly(arguments: dict[str, Any], line: str, *, id: str) -> Any:
    return pytest.param(arguments, line, id=id)


NON_FINITE = [  # numbers no JSON body can carry upstream
    exactly(prompt_and(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": NAN_SCHEMA}}),
            "invalid arguments: response_format.json_schema.schema.properties.a.minimum: not a finite number",
            id="response-format-nan"),
    exactly(tool_with({"type": "object", "properties": {"a": {"maximum": INF}}}),
            "invalid arguments: tools[0].parameters.properties.a.maximum: not a finite number", id="parameters-inf"),
    exactly(prompt_and(response_format={"type": "json_object", "weight": "<-Infinity>"}),
            "invalid arguments: response_format.weight: not a finite number", id="response-format-minus-inf"),
    exactly({"messages": [{"role": "user", "content": "x", "weight": NAN}]},
            "invalid arguments: messages[0].weight: not a finite number", id="message-key-nan"),
    exactly(prompt_and(temperature=NAN), "invalid arguments: temperature: not a finite number", id="temperature-nan"),
]
USER_PARTS = "text, image_url, input_audio, audio_url, document, guarded_text, grounding_source, query, video_url, file"
IMAGE_URL = "must be a URL string or an object with a string 'url'"


def parts(*content: Any, role: str = "user") -> dict[str, Any]:
    return {"messages": [{"role": role, "content": list(content)}]}


PARTS = [  # content parts litellm refuses (or trips over) while building the request
    exactly(parts({"type": "bogus"}),
            f"invalid arguments: messages[0].content[0].type: unknown part type 'bogus' for a user message (one of "
            f"{USER_PARTS})", id="part-type-unknown"),
    exactly(parts({"type": "no-such-part", "text": "hi"}),
            f"invalid arguments: messages[0].content[0].type: unknown part type 'no-such-part' for a user message "
            f"(one of {USER_PARTS})", id="part-type-unknown-with-text"),
    exactly(parts({"type": "thinking", "thinking": "hm"}),
            f"invalid arguments: messages[0].content[0].type: unknown part type 'thinking' for a user message (one of "
            f"{USER_PARTS})", id="part-type-not-a-user-one"),
    exactly(parts({"type": "image_url"}), f"invalid arguments: messages[0].content[0].image_url: {IMAGE_URL}",
            id="image-part-without-image-url"),
    exactly(parts({"type": "image_url", "image_url": {"url": 5}}, role="assistant"),
            f"invalid arguments: messages[0].content[0].image_url: {IMAGE_URL}", id="image-part-url-number"),
    exactly(parts({"type": "text", "text": "x"}, {"type": "input_audio", "input_audio": {"data": "AAAA"}}),
            "invalid arguments: messages[0].content[1].input_audio: must be an object with string 'data' and 'format'",
            id="audio-part-without-format"),
    exactly(parts({"type": "file", "file": "x"}),
            "invalid arguments: messages[0].content[0].file: must be an object (file_id, file_data, filename)",
            id="file-part-string"),
    # the checks there were, now naming the part's field
    exactly(parts({"type": "text"}), "invalid arguments: messages[0].content[0].text: must be a string",
            id="text-part-without-text"),
    exactly(parts(5),
            "invalid arguments: messages[0].content[0]: must be an object like {'type': 'text', 'text': '...'}",
            id="part-number"),
    exactly(parts({"text": "x"}), "invalid arguments: messages[0].content[0].type: must be a non-empty string",
            id="part-without-type"),
]
NOT_A_NAME = "is not a model name (a space at either end, or a control character)"
MODEL_NAMES = [  # blank, a space at either end, or a control character
    exactly(prompt_and(model=" "), "invalid arguments: model: must not be empty", id="model-blank"),
    exactly(prompt_and(model="a\nb"), f"invalid arguments: model: 'a\\nb' {NOT_A_NAME}", id="model-newline"),
    exactly(prompt_and(model="openai/gpt-4o "), f"invalid arguments: model: 'openai/gpt-4o ' {NOT_A_NAME}",
            id="model-trailing-space"),
    exactly(prompt_and(models=["openai/a", "openai/\x00b"]),
            f"invalid arguments: models[1]: 'openai/\\x00b' {NOT_A_NAME}", id="models-control"),
    exactly(prompt_and(models=["openai/a", "\t"]), "invalid arguments: models[1]: must not be empty",
            id="models-blank"),
    exactly(prompt_and(models=["openai/a", "openai/b"], judge="  "), "invalid arguments: judge: must not be empty",
            id="judge-blank"),
    exactly(prompt_and(models=["openai/a", "openai/b"], judge="openai/\u2028a"),
            f"invalid arguments: judge: 'openai/\\u2028a' {NOT_A_NAME}", id="judge-line-separator"),
]
NOTHING_SAID = "invalid arguments: messages: no message has content or tool calls"
NOTHING_TO_SAY = [  # every message empty (the provider would drop them and send none), or a blank judge_prompt
    exactly({"messages": [{"role": "assistant"}]}, NOTHING_SAID, id="only-a-ghost"),
    exactly({"messages": [{"role": "assistant", "content": "  "}, {"role": "user", "content": ""}]}, NOTHING_SAID,
            id="only-blank-messages"),
    exactly({"messages": [{"role": "assistant", "content": []}]}, NOTHING_SAID, id="only-an-empty-list"),
    exactly(prompt_and(models=["openai/a", "openai/b"], judge="openai/a", judge_prompt="   "),
            "invalid arguments: judge_prompt: must not be empty", id="judge-prompt-blank"),
]
EXACT = [*NON_FINITE, *PARTS, *MODEL_NAMES, *NOTHING_TO_SAY]


@pytest.fixture
def server(provider: Any, store: DumpStore) -> MCPServer:
    return limited_server(provider, store)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize(("arguments", "line"), EXACT)
async def test_bad_arguments_get_their_exact_line(
    server: MCPServer, upstream: Upstream, store: DumpStore, mode: str, tool: str, arguments: dict[str, Any], line: str
) -> None:
    async with checked(server, upstream, store, mode, wire=True) as c:
        r = await c.call_tool(tool, arguments)
        assert r.is_error
        assert text_of(r) == line


@pytest.fixture
def files_server(provider: Any, store: DumpStore, tmp_path: Path) -> MCPServer:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.py").write_text("x = 1\n")
    return limited_server(provider, store, files=FileAccess(FileRoots((Root(root.resolve()),))))


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize(
    ("files", "line"),
    [
        (["a.py\x00x"], "invalid arguments: files[0]: must not contain a NUL byte"),
        ([LONG], f"files: {'y' * 57}...: not a valid path (file name too long)"),
        (["sub/" + LONG + "/a.py"], f"files: sub/{'y' * 53}...: not a valid path (file name too long)"),
        ([LONG + "/*.py"], f"files: {'y' * 57}...: not a valid path (file name too long)"),
    ],
    ids=["nul", "long-name", "long-directory", "long-glob-start"],
)
async def test_unusable_file_paths_get_one_line(
    files_server: MCPServer, upstream: Upstream, store: DumpStore, mode: str, tool: str, files: list[str], line: str
) -> None:
    async with checked(files_server, upstream, store, mode) as c:
        r = await c.call_tool(tool, prompt_and(files=files))
        assert r.is_error
        assert text_of(r) == line


def test_a_nul_byte_is_refused_by_the_file_selection_too(tmp_path: Path) -> None:
    # The tools refuse it with the arguments; a direct caller gets the refusal rather than a ValueError.
    with pytest.raises(FilesRefused) as info:
        select(["a\x00b"], (Root(tmp_path.resolve()),))
    assert str(info.value) == "files: a\x00b: not a valid path (embedded null byte)"


def test_the_part_types_are_litellms() -> None:
    """The part types a message may carry are those litellm lets through for chat (a user message's, narrower),
    and the tool-result block it carries through; a litellm that adds or drops one fails here."""
    from litellm.types.llms.openai import ValidChatCompletionMessageContentTypes, ValidUserMessageContentTypes

    from hive_mcp.mcp.args import PART_TYPES, USER_PART_TYPES

    assert USER_PART_TYPES == tuple(ValidUserMessageContentTypes) and ", ".join(USER_PART_TYPES) == USER_PARTS
    assert set(PART_TYPES) == {*ValidChatCompletionMessageContentTypes, "tool_reference"}


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": "https://example.com/a.png"}]},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]},
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]},
    ],
    ids=["assistant-thinking", "image-url-string", "input-audio", "file-id"],
)
async def test_good_content_parts_reach_the_upstream(
    server: MCPServer, upstream: Upstream, message: dict[str, Any]
) -> None:
    upstream.script(Reply.text("fine"))
    messages = [message] if message["role"] == "user" else [{"role": "user", "content": "hi"}, message]
    async with connect(server, "legacy") as c:
        r = await c.call_tool("complete", {"messages": messages})
    assert not r.is_error, text_of(r)
    (request,) = upstream.chat_requests()
    assert request.messages[-1]["content"][0]["type"] == message["content"][0]["type"]


def test_a_model_name_with_a_space_inside_is_a_name() -> None:
    """A config's model_name may hold a space ("team model"): only a space at either end is refused."""
    from hive_mcp.mcp.args import CompleteArgs

    args = CompleteArgs.model_validate({"prompt": "x", "models": ["team model", "openai/b"], "judge": "team model"})
    assert args.models == ["team model", "openai/b"] and args.judge == "team model"

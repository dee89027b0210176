"""The MCP tools against bad input: every text argument passes check_text and every task id
check_id, so a call answers with a result or a one-line tool error, never a crash of the tool, a
dead server or no answer at all; and answers holding text that cannot be encoded still go out.

In-process (the SDK's ``Client`` on the server object) for the tools; the real ``taskorch mcp``
over stdio, fed raw JSON-RPC lines, for what only the wire can carry (the escape ``\\ud800``, a
message over MAX_BODY_BYTES).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp_types import CallToolResult, TextContent

from mcp import Client
from taskorch.domain.limits import MAX_BODY_BYTES, MAX_ID, MAX_TEXT_CHARS
from taskorch.mcp import TOOL_NAMES, build_server
from taskorch.mcp.guard import REFUSED
from taskorch.mcp.stdio import PipeLines, screened
from taskorch.settings import load_settings

CALL_S = 60.0
STDIO_EXAMPLES = 150

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    # (tool, arguments, what the one-line error says); marked: a crash or taken before
    ("get_workflow_status", {"workflow_id": "\ud800"}, "workflow_id contains the control"),
    (
        "cancel_workflow",
        {"workflow_id": "wf-1\x00"},
        "workflow_id contains the control character U+0000",
    ),  # taken
    (
        "parse_requirements",
        {"requirement": "r" * (MAX_TEXT_CHARS + 1)},
        "requirement is 100,001 characters",
    ),  # taken
    (
        "parse_requirements",
        {"requirement": "x", "context": "\x1b[2J"},
        "context contains the control character U+001B",
    ),  # taken
    ("process_task_orchestration", {"requirement": "add \ud800"}, "requirement contains"),  # crash
    (
        "process_task_orchestration",
        {"task_id": MAX_ID + 1},
        "task_id must be a whole number",
    ),  # crash
    (
        "process_task_orchestration",
        {"task_id": "task-99999999999999999999"},
        "must be a whole number from 1 to",
    ),  # crash
    ("process_task_orchestration", {"requirement": "x", "repo": "/srv/\x00"}, "repo contains"),
    ("process_task_orchestration", {"requirement": "x", "agent": "sim\n"}, "agent contains"),
    ("process_task_orchestration", {"requirement": "x", "timeout_s": float("inf")}, "timeout_s"),
    (
        "process_batch_orchestration",
        {"requirements": ["ok", "\udfff"]},
        "requirements[1] contains",
    ),  # crash
    (
        "process_batch_orchestration",
        {"task_ids": [1, 2**64]},
        "task_ids[1] must be a whole number",
    ),  # crash
    ("get_orchestration_status", {"limit": float("nan")}, "limit"),
    ("get_workflow_status", {REFUSED: "a reason\nin two lines"}, "a reason in two lines"),
]


@asynccontextmanager
async def in_memory(home: Path) -> AsyncIterator[Client]:
    settings = load_settings(
        database_url=f"sqlite:///{home}/taskorch.db", taskorch_home=home, nlp_provider="heuristic"
    )
    async with Client(build_server(settings)) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def assert_answer(result: CallToolResult) -> None:
    """A result or a tool error of one printable line (not the SDK's word for a crash), and
    something the SDK can write on the wire."""
    result.model_dump_json(by_alias=True, exclude_unset=True)
    if result.is_error:
        message = text_of(result)
        assert "\n" not in message, message
        assert "Traceback" not in message, message
        assert "server's log has the details" not in message, message  # a crash
        assert len(message) <= 2100
    else:
        assert result.structured_content is not None


@pytest.mark.parametrize(("tool", "arguments", "said"), BAD_CALLS)
async def test_bad_arguments_are_one_line_tool_errors(
    tmp_path: Path, tool: str, arguments: dict[str, Any], said: str
) -> None:
    async with in_memory(tmp_path / ".taskorch") as client:
        with anyio.fail_after(CALL_S):
            result = await client.call_tool(tool, arguments)
        assert result.is_error
        assert_answer(result)
        assert said in text_of(result)
        overview = await client.call_tool("get_orchestration_status", {})
        assert overview.structured_content is not None
        assert overview.structured_content["recent_workflows"] == []  # nothing stored or started


async def test_an_answer_with_a_path_that_is_not_utf8_goes_out(tmp_path: Path) -> None:
    """A data folder whose name has a byte that is not UTF-8: init_orchestration and the health
    check crashed with PydanticSerializationError; now the byte is shown as an escape."""
    async with in_memory(tmp_path / os.fsdecode(b"home\xff")) as client:
        init = await client.call_tool("init_orchestration", {})
        health = await client.call_tool("orchestration_health_check", {})
    for result in (init, health):
        assert not result.is_error, text_of(result)
        assert_answer(result)
    assert init.structured_content is not None
    assert init.structured_content["data_folder"].endswith("home\\udcff")
    assert health.structured_content is not None
    database = health.structured_content["components"]["database"]
    assert "home\\udcff" in database["info"]["location"]


def test_lines_the_sdk_cannot_read_become_tool_errors() -> None:
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    lone = json.dumps(call | {"params": {"name": "get_workflow_status", "arguments": {}}})
    lone = lone.replace('"arguments": {}', '"arguments": {"workflow_id": "\\ud800x"}')
    refused = json.loads(screened(lone.encode()))
    assert refused["id"] == 7
    assert refused["params"] == {
        "name": "get_workflow_status",
        "arguments": {
            REFUSED: "workflow_id contains the control character U+D800; remove it and try again"
        },
    }
    pair = lone.replace("\\ud800x", "\\ud83d\\ude00").encode()  # an emoji: left alone
    assert screened(pair) == pair
    big = json.dumps(call | {"params": {"name": "parse_requirements", "arguments": {}}})
    big = big.replace("{}}", '{"requirement": "%s"}}' % ("a" * MAX_BODY_BYTES))
    assert REFUSED in json.loads(screened(big.encode()))["params"]["arguments"]
    deep = lone.replace('"\\ud800x"', "[" * 5000 + "]" * 5000).encode()  # the SDK's limit
    reason = json.loads(screened(deep))["params"]["arguments"][REFUSED]
    assert reason.startswith("the message is not JSON-RPC this server can read: ")
    assert "recursion" in reason
    notification = b'{"jsonrpc": "2.0", "method": "x", "params": {"v": "\\ud800"}}'
    assert screened(notification) == notification  # no id: nothing to answer, as before


async def test_a_line_over_the_limit_is_not_kept(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.set_blocking(write, False)
    head = b'{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "x", '
    lines: list[str] = []

    async def feed() -> None:
        body = head + b'"arguments": {"a": "' + b"a" * (3 * MAX_BODY_BYTES) + b'"}}}\n{"next": 1}\n'
        view = memoryview(body)
        while view:
            await anyio.wait_writable(write)
            try:
                view = view[os.write(write, view[:65536]) :]
            except BlockingIOError:
                continue
        os.close(write)

    async with anyio.create_task_group() as group:
        group.start_soon(feed)
        with anyio.fail_after(CALL_S):
            async for line in PipeLines(read):
                lines.append(line)
    os.close(read)
    assert len(lines) == 2
    assert json.loads(lines[0])["params"]["arguments"][REFUSED].startswith("the message is over")
    assert lines[1] == '{"next": 1}\n'


@contextmanager
def raw_stdio(home: Path) -> Iterator[Any]:
    """``taskorch mcp`` fed raw lines; ``call(id, line)`` answers the reply to that id."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_"))
    }
    env["TASKORCH_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "taskorch", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=home.parent,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def call(number: int, line: bytes) -> dict[str, Any]:
        stdin.write(line + b"\n")
        stdin.flush()
        while True:
            ready, _, _ = select.select([stdout], [], [], CALL_S)
            assert ready, f"no answer to request {number}"
            reply: dict[str, Any] = json.loads(stdout.readline())
            if reply.get("id") == number:
                return reply

    try:
        hello = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        }
        call(
            0,
            json.dumps(
                {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}
            ).encode(),
        )
        stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        yield call
    finally:
        process.kill()
        process.wait(30)
        stdin.close()
        stdout.close()


def test_over_stdio_every_call_is_answered(tmp_path: Path) -> None:
    """A lone surrogate escape was dropped by the SDK's reader without an answer: the client
    waited forever. Now it, and a message over the limit, come back as tool errors."""
    home = tmp_path / ".taskorch"
    template = (
        b'{"jsonrpc": "2.0", "id": %d, "method": "tools/call", '
        b'"params": {"name": "%s", "arguments": %s}}'
    )
    with raw_stdio(home) as call:
        lone = call(1, template % (1, b"get_workflow_status", b'{"workflow_id": "\\ud800"}'))
        assert lone["result"]["isError"]
        assert (
            "workflow_id contains the control character U+D800"
            in lone["result"]["content"][0]["text"]
        )
        big = b'{"requirement": "%s"}' % (b"b" * (MAX_BODY_BYTES + 10))
        large = call(2, template % (2, b"parse_requirements", big))
        assert large["result"]["isError"]
        assert "over 1,048,576 bytes" in large["result"]["content"][0]["text"]
        health = call(3, template % (3, b"orchestration_health_check", b"{}"))
        assert not health["result"].get("isError")


WIRE_LEAVES = ['"\\ud800"', '"a\\udfffb"', '"\\u0000"', '"\\ud83d\\ude00"', "NaN", "-Infinity"]
WIRE_LEAVES += ["1e999", str(MAX_ID + 1), "9" * 400, '"task-1"', "true", "null", '"x"', "{}"]
WIRE_VALUES = st.recursive(
    st.one_of(
        st.sampled_from(WIRE_LEAVES),
        st.text(max_size=10).map(json.dumps),
        st.sampled_from([10, 300, 5_000]).map(lambda n: "[" * n + "]" * n),
    ),
    lambda inner: st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
    max_leaves=4,
)
WIRE_ARGUMENTS = st.one_of(
    st.dictionaries(
        st.sampled_from(["task_id", "task_ids", "requirement", "requirements", "workflow_id"])
        | st.sampled_from(["context", "repo", "agent", "limit", "timeout_s", "wait", "zz"]),
        WIRE_VALUES,
        max_size=4,
    ).map(lambda d: "{" + ",".join(f'"{k}":{v}' for k, v in d.items()) + "}"),
    WIRE_VALUES,
)


def test_fuzz_over_stdio_every_call_is_answered(tmp_path: Path) -> None:
    """Raw tool calls, their arguments written as JSON text with what a client's encoder may
    put there (lone surrogate escapes, NaN, 1e999, 400-digit numbers, nesting 5,000 deep), to
    the real server: each gets an answer (a result, a tool error or a JSON-RPC error)."""
    figures: Counter[str] = Counter()
    with raw_stdio(tmp_path / ".taskorch") as call:

        @settings(max_examples=STDIO_EXAMPLES, deadline=None, database=None)
        @given(tool=st.sampled_from(TOOL_NAMES), arguments=WIRE_ARGUMENTS)
        def send(tool: str, arguments: str) -> None:
            figures["calls"] += 1
            number = figures["calls"] + 10
            params = f'{{"name": "{tool}", "arguments": {arguments}}}'
            line = (
                f'{{"jsonrpc": "2.0", "id": {number}, "method": "tools/call", "params": {params}}}'
            )
            reply = call(number, line.encode())  # fails the test after CALL_S without one
            if "error" in reply:
                figures["JSON-RPC errors"] += 1
                return
            result = reply["result"]
            figures["tool errors" if result.get("isError") else "results"] += 1
            if result.get("isError"):
                assert "server's log has the details" not in result["content"][0]["text"]
                assert "\n" not in result["content"][0]["text"]

        send()
    print(f"\nMCP stdio fuzz: {dict(figures)}")

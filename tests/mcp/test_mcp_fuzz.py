"""Every MCP tool fuzzed through a real session (the SDK's in-process ``Client``) with arguments
drawn from its published input schema, mixed with hostile values (lone surrogates, NUL and other
controls, huge and non-finite numbers, huge text, wrong types, unknown keys): every call answers
with a result or a one-line tool error, never a crash of the tool, an exception in the client or
no answer; and every answer can be written on the wire.

hypothesis-jsonschema (0.23) fails on this hypothesis (6.170), hence the small schema walker.
The process tools run with ``wait`` false, so a call that starts a workflow answers at once.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp_types import CallToolResult, TextContent

from mcp import Client
from taskorch.domain.limits import MAX_ID, MAX_TEXT_CHARS
from taskorch.mcp import TOOL_NAMES, build_server
from taskorch.settings import load_settings

EXAMPLES_PER_TOOL = int(os.environ.get("TASKORCH_FUZZ_EXAMPLES", "30"))
"""More for a longer run: ``TASKORCH_FUZZ_EXAMPLES=500 pytest -s tests/mcp/test_mcp_fuzz.py``."""
CALL_S = 60.0
CRASH = "server's log has the details"
FIGURES: Counter[str] = Counter(dict.fromkeys(["crashes", "hangs", "client errors"], 0))

NASTY = ["\ud800", "\udfff", "\x00", "\x1b", "\x85", "\u202e", "\n", " ", "a", "é", "😀"]
HOSTILE_TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(NASTY), min_size=1, max_size=20),
    st.text(max_size=40),
    st.sampled_from(["1e999", "task-99999999999999999999", "NaN", ""]),
    st.builds(lambda n: "r" * n, st.sampled_from([MAX_TEXT_CHARS, MAX_TEXT_CHARS + 1, 600])),
)
HOSTILE_NUMBER = st.one_of(
    st.sampled_from([0, -1, MAX_ID, MAX_ID + 1, 2**64, 10**30, math.inf, -math.inf, math.nan]),
    st.integers(),
    st.floats(),
)
HOSTILE = st.one_of(
    HOSTILE_TEXT,
    HOSTILE_NUMBER,
    st.booleans(),
    st.none(),
    st.lists(st.one_of(HOSTILE_TEXT, HOSTILE_NUMBER), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a JSON schema (as the SDK publishes a tool's parameters) accepts, roughly."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(branch) for branch in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=60)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        return st.floats(low, schema.get("maximum"), exclude_min="exclusiveMinimum" in schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=3)
    if kind == "null":
        return st.none()
    return HOSTILE


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The tool's arguments: the required ones fitting its schema with one more, fitting or
    hostile; or any of them fitting with some (or unknown ones) hostile. ``wait`` is false."""
    properties: dict[str, Any] = schema.get("properties", {})
    fitting = {name: from_schema(prop) for name, prop in properties.items() if name != "wait"}
    required = set(schema.get("required", []))
    needed = st.fixed_dictionaries({k: v for k, v in fitting.items() if k in required})
    anything = st.fixed_dictionaries(
        {k: v for k, v in fitting.items() if k in required},
        optional={k: v for k, v in fitting.items() if k not in required},
    )
    names = sorted(fitting) or ["extra"]
    one = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), st.one_of(HOSTILE, fitting.get(name, HOSTILE)))
    )
    spoiled = st.dictionaries(
        st.one_of(st.sampled_from(names), st.text(max_size=8)), HOSTILE, max_size=len(names)
    )
    drawn = st.one_of(
        st.builds(lambda a, pair: a | {pair[0]: pair[1]}, needed, one),
        st.builds(lambda a, b: a | b, anything, spoiled),
    )
    return drawn.map(lambda a: a | {"wait": False} if "wait" in properties else a)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, Client]]:
    home: Path = tmp_path_factory.mktemp("mcp-fuzz") / ".taskorch"
    settings_ = load_settings(
        database_url=f"sqlite:///{home}/taskorch.db", taskorch_home=home, nlp_provider="heuristic"
    )
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(build_server(settings_))) as client,
    ):
        yield portal, client
    print(f"\nMCP fuzz: {dict(FIGURES)}")


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_every_call_answers(tool: str, session: tuple[BlockingPortal, Client]) -> None:
    portal, client = session
    schemas = {t.name: t.input_schema for t in portal.call(client.list_tools).tools}

    @settings(
        max_examples=EXAMPLES_PER_TOOL,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(arguments=arguments_for(schemas[tool]))
    def call(arguments: dict[str, Any]) -> None:
        async def bounded() -> CallToolResult:
            with anyio.fail_after(CALL_S):  # no hang
                return await client.call_tool(tool, arguments)

        FIGURES["calls"] += 1
        try:
            result = portal.call(bounded)
        except TimeoutError:
            FIGURES["hangs"] += 1
            raise
        except Exception:
            FIGURES["client errors"] += 1
            raise
        result.model_dump_json(by_alias=True, exclude_unset=True)  # can be written on the wire
        message = "".join(c.text for c in result.content if isinstance(c, TextContent))
        if not result.is_error:
            FIGURES["results"] += 1
            assert result.structured_content is not None
            return
        FIGURES["tool errors"] += 1
        # The SDK's word for a crash of the tool ("Error executing tool X", and nothing to say
        # what to do), or ours.
        crashed = message.startswith(f"Error executing tool {tool}") and ":" not in message
        if crashed or CRASH in message:
            FIGURES["crashes"] += 1
        assert not crashed, (arguments, message)
        assert CRASH not in message, (arguments, message)
        assert "\n" not in message, message
        assert "Traceback" not in message, message

    call()

"""A fake Anthropic Messages API for driving the real Claude Code CLI offline, in tests.

It speaks the wire protocol the real ``claude`` binary uses (``ANTHROPIC_BASE_URL`` points it
here): ``POST /v1/messages`` answered with server-sent events (``message_start``,
``content_block_start``, ``ping``, ``content_block_delta`` with ``text_delta`` or
``input_json_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``) in HTTP/1.1
chunked encoding, or with one JSON message when the request does not ask to stream;
``POST /v1/messages/count_tokens`` gets a rough count; any other call gets a 404 error document in
the API's shape. Every request is logged in :attr:`FakeAnthropic.calls`, so a test can show what
the CLI asked for. (Claude Code 2.1.332 in ``-p`` mode only calls ``POST /v1/messages?beta=true``,
streaming, with ``x-api-key``; its system prompt says "Primary working directory: ...".)

The model is a function from the request body to a :class:`Reply`. :func:`tool_then_text` is the
usual one: when the request offers the tool and its conversation has no ``tool_result`` yet, it
calls the tool with the input its ``make_input`` builds from the request (e.g. a ``Write`` into the
working directory that Claude's system prompt names, see :func:`working_directory`); once a
``tool_result`` arrives it replies with a final text. Side requests (titles, summaries, quota
checks: no such tool offered) get a plain text answer. A model raises :class:`ApiError` for the
API's error answer (:func:`failing`) or :class:`DropConnection` to close the connection unanswered
(:func:`dropping`); :attr:`Reply.input_tokens` sets the usage it reports. A model playing a longer
conversation reads it from the request: :func:`tool_uses` (its calls so far), :func:`tool_results`
(Claude's answers), :func:`tool_definition` (a tool's schema as Claude offers it) and
:func:`deferred_tools` (tools, such as an MCP server's, that Claude names but loads only through
its ``ToolSearch`` tool).

The server runs in its own threads (``with FakeAnthropic(model) as api: ... api.base_url``), binds
127.0.0.1 on a free port, and joins every connection's thread when it stops, so no socket is left
for the garbage collector.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any, Self

import pytest

API_KEY = "sk-ant-fake-key-for-tests"
FINAL_TEXT = "Done: I added the tests."
SIDE_TEXT = "Billing tests"


def claude_bin() -> str:
    """The real Claude Code CLI (``CLAUDE_BIN``), or a skip that says where it comes from."""
    path = os.environ.get("CLAUDE_BIN", "")
    if not path:
        pytest.skip("CLAUDE_BIN not set: .ci/run installs @anthropic-ai/claude-code")
    if not os.access(path, os.X_OK):
        pytest.skip(f"CLAUDE_BIN={path} is not an executable: .ci/run installs it")
    return path


def offline_claude_env(home: Path) -> dict[str, str]:
    """Claude's settings for a test: the fake key, quiet and offline, few retries, and its HOME
    (``~/.claude.json``, ``~/.claude/``) in the test's folder."""
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }


_WORKDIR = re.compile(r"[Ww]orking directory: (\S[^\n]*)")
_ids = itertools.count(1)


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_fake{next(_ids):06d}")


@dataclass(frozen=True)
class Reply:
    """One assistant message: text, then tool calls (``stop_reason`` follows from them)."""

    text: str = ""
    tools: tuple[ToolCall, ...] = ()
    input_tokens: int | None = None
    """The usage to report (default: a rough count of the request)."""

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tools else "end_turn"


Model = Callable[[dict[str, Any]], Reply]


class ApiError(Exception):
    """Raised by a model: the API's error answer (``{"type": "error", "error": {...}}``)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{status} {kind}: {message}")
        self.status, self.kind, self.message = status, kind, message


class DropConnection(Exception):
    """Raised by a model: the connection closes without an answer."""


def failing(status: int, kind: str, message: str) -> Model:
    def model(body: dict[str, Any]) -> Reply:
        raise ApiError(status, kind, message)

    return model


def dropping(body: dict[str, Any]) -> Reply:
    raise DropConnection


@dataclass(frozen=True)
class Usage:
    """The tokens one reply reported, as Claude adds them up in its own report."""

    model: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    """Names in lower case."""

    @property
    def offered_tools(self) -> list[str]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [str(t.get("name")) for t in tools or [] if isinstance(t, dict)]


def text_of(value: Any) -> str:
    """All text in a system prompt or message content (a string or a list of blocks)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(text_of(item) for item in value)
    if isinstance(value, dict):
        return "\n".join(text_of(value[k]) for k in ("text", "content") if k in value)
    return ""


def working_directory(body: dict[str, Any]) -> Path:
    """The working directory Claude's system prompt (or, failing that, the prompt) names."""
    for source in (body.get("system"), body.get("messages")):
        match = _WORKDIR.search(text_of(source))
        if match:
            return Path(match.group(1).strip())
    raise AssertionError("the request names no working directory")


def offers(body: dict[str, Any], tool: str) -> bool:
    return any(isinstance(t, dict) and t.get("name") == tool for t in body.get("tools") or [])


def has_tool_result(body: dict[str, Any]) -> bool:
    return any(
        isinstance(block, dict) and block.get("type") == "tool_result"
        for message in body.get("messages") or []
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for block in message["content"]
    )


def tool_uses(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_use`` blocks of the conversation's assistant turns, in order."""
    return [
        block
        for message in body.get("messages") or []
        if isinstance(message, dict)
        and message.get("role") == "assistant"
        and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]


def tool_results(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The conversation's ``tool_result`` blocks by the ``tool_use_id`` they answer."""
    return {
        str(block.get("tool_use_id")): block
        for message in body.get("messages") or []
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    }


def tool_definition(body: dict[str, Any], tool: str) -> dict[str, Any] | None:
    """The definition (``name``, ``description``, ``input_schema``) the request offers ``tool``
    with, if it offers it."""
    for definition in body.get("tools") or []:
        if isinstance(definition, dict) and definition.get("name") == tool:
            return definition
    return None


_DEFERRED = re.compile(r"deferred tools are now available via ToolSearch[^\n]*\n((?:[^\n]+\n?)*)")


def deferred_tools(body: dict[str, Any]) -> list[str]:
    """Tools Claude names in its prompt without sending their schemas: Claude Code (2.1.332)
    defers MCP tools behind its ``ToolSearch`` tool; ``ToolSearch`` with the query
    ``select:NAME,...`` loads them (their definitions come in the next request's ``tools``)."""
    for source in (body.get("system"), body.get("messages")):
        match = _DEFERRED.search(text_of(source))
        if match:
            return [line.strip() for line in match.group(1).splitlines() if line.strip()]
    return []


def tool_then_text(
    tool: str,
    make_input: Callable[[dict[str, Any]], dict[str, Any]],
    final_text: str = FINAL_TEXT,
) -> Model:
    def model(body: dict[str, Any]) -> Reply:
        if not offers(body, tool):
            return Reply(SIDE_TEXT)
        if has_tool_result(body):
            return Reply(final_text)
        return Reply("", (ToolCall(tool, make_input(body)),))

    return model


def estimate_tokens(body: Any) -> int:
    return max(1, len(json.dumps(body)) // 4)


def sse_events(reply: Reply, model: str, input_tokens: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The event stream of one reply, as the real API sends it."""
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": f"msg_fake{next(_ids):06d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
    )
    yield "ping", {"type": "ping"}
    index = 0
    if reply.text:
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        # two deltas, so the client really joins a streamed text
        half = len(reply.text) // 2
        for piece in (reply.text[:half], reply.text[half:]):
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        index = 1
    for offset, call in enumerate(reply.tools, start=index):
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": offset,
                "content_block": {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": {},
                },
            },
        )
        encoded = json.dumps(call.input)
        third = max(1, len(encoded) // 3)
        for start in range(0, len(encoded), third):
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": offset,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": encoded[start : start + third],
                    },
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": offset}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens(reply)},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def output_tokens(reply: Reply) -> int:
    return max(1, (len(reply.text) + sum(len(json.dumps(t.input)) for t in reply.tools)) // 4)


def message_json(reply: Reply, model: str, input_tokens: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    content += [
        {"type": "tool_use", "id": t.id, "name": t.name, "input": t.input} for t in reply.tools
    ]
    return {
        "id": f"msg_fake{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens(reply),
        },
    }


class _Server(ThreadingMixIn, HTTPServer):
    # joined in server_close: a connection's socket is closed by its own thread, never by the GC
    daemon_threads = False
    block_on_close = True
    fake: FakeAnthropic


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # an idle keep-alive connection ends, so stopping never waits on a client

    def log_message(self, format: str, *args: Any) -> None:
        pass  # calls are in FakeAnthropic.calls

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = self.path.split("?", 1)[0]
        fake = self.server.fake
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake.record(Call(self.command, self.path, body, headers))
        if (
            self.headers.get("x-api-key") != fake.api_key
            and self.headers.get("Authorization") != f"Bearer {fake.api_key}"
        ):
            self._error(401, "authentication_error", "invalid x-api-key")
            return
        if self.command == "POST" and path == "/v1/messages" and isinstance(body, dict):
            self._messages(body)
        elif (
            self.command == "POST"
            and path == "/v1/messages/count_tokens"
            and isinstance(body, dict)
        ):
            self._json(200, {"input_tokens": estimate_tokens(body)})
        else:
            self._error(404, "not_found_error", f"{self.command} {path} is not served here")

    def _messages(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        try:
            with fake.model_lock:  # one request at a time: models may keep state
                reply = fake.model(body)
        except ApiError as exc:
            self._error(exc.status, exc.kind, exc.message)
            return
        except DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may have gone already
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception as exc:  # the test sees it in FakeAnthropic.errors, the CLI an API error
            fake.record_error(exc)
            self._error(500, "api_error", f"the fake model failed: {exc!r}")
            return
        model = str(body.get("model") or "claude-fake")
        tokens = reply.input_tokens or estimate_tokens(body)
        fake.record_usage(Usage(model, tokens, output_tokens(reply)))
        if not body.get("stream"):
            self._json(200, message_json(reply, model, tokens))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", f"req_fake{next(_ids):06d}")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for name, data in sse_events(reply, model, tokens):
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, document: dict[str, Any]) -> None:
        encoded = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("request-id", f"req_fake{next(_ids):06d}")
        self.end_headers()
        self.wfile.write(encoded)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})


class FakeAnthropic:
    def __init__(self, model: Model, *, api_key: str = API_KEY) -> None:
        self.model = model
        self.api_key = api_key
        self.calls: list[Call] = []
        self.errors: list[Exception] = []
        self.usage: list[Usage] = []
        self._lock = threading.Lock()
        self.model_lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def record_error(self, error: Exception) -> None:
        with self._lock:
            self.errors.append(error)

    def record_usage(self, usage: Usage) -> None:
        with self._lock:
            self.usage.append(usage)

    def message_calls(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.split("?")[0] == "/v1/messages"]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

"""A local HTTP server that speaks the LLM wire formats taskorch's providers use, for tests.

One :class:`FakeLLMServer` answers both:

- Anthropic Messages: ``POST /v1/messages`` (point ``anthropic.AsyncAnthropic`` at :attr:`base_url`)
- OpenAI Chat Completions: ``POST /v1/chat/completions`` (point ``openai.AsyncOpenAI``, or any
  OpenAI-compatible client, at :attr:`openai_base_url`)

Tests script the replies in order (:meth:`FakeLLMServer.reply`): a model answer, an HTTP error
with optional ``Retry-After``, or anything else. Every request is recorded with its path, headers
and JSON body, so a test can check what the real SDK sent over the socket. The server runs in a
thread on 127.0.0.1 with an ephemeral port and is shut down and closed by ``stop`` / ``with``.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    """One scripted reply: a model ``answer`` (status 200) or an error ``status``."""

    answer: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    """Sent as is instead of the wire-format body (for malformed responses)."""

    @classmethod
    def plan(cls, plan: dict[str, Any]) -> Reply:
        return cls(answer=json.dumps(plan))

    @classmethod
    def error(cls, status: int, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return cls(status=status, headers=headers)


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages


class FakeLLMServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # Handler threads are joined on close: each serves one HTTP/1.0 request and ends.
        self._server.daemon_threads = False
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def reply(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def start(self) -> None:
        # A short poll interval keeps shutdown (and so every test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def next_reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self.replies:
                return self.replies.popleft()
        return Reply(status=500, body=b'{"error": {"message": "no scripted reply left"}}')


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server.next_reply(Recorded(path, headers, body))
            if path not in (ANTHROPIC_PATH, OPENAI_PATH):
                self._send(404, _error_body(path, 404, "not found"), {})
                return
            if reply.body is not None:
                self._send(reply.status, reply.body, reply.headers)
            elif reply.status != 200:
                self._send(reply.status, _error_body(path, reply.status, "scripted"), reply.headers)
            else:
                self._send(200, _answer_body(path, body, reply.answer), reply.headers)

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``server.requests`` instead of a log on stderr."""

    return Handler


def _answer_body(path: str, request: dict[str, Any], answer: str) -> bytes:
    model = str(request.get("model", "fake-model"))
    if path == ANTHROPIC_PATH:
        return json.dumps(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 200},
            }
        ).encode()
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 200, "total_tokens": 300},
        }
    ).encode()


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(path: str, status: int, message: str) -> bytes:
    if path == ANTHROPIC_PATH:
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    return json.dumps(
        {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    ).encode()


def draft(
    *subtasks: dict[str, Any], complexity: str = "high", title: str = "Planned task"
) -> dict[str, Any]:
    """A model answer in the draft format the planner asks for."""
    return {"task_title": title, "complexity": complexity, "subtasks": list(subtasks)}


def draft_subtask(
    subtask_id: str,
    *dependencies: str,
    worker_type: str = "implementation",
    assigned_to: str = "development",
    files: list[str] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    return {
        "subtask_id": subtask_id,
        "title": title or f"Do {subtask_id}",
        "description": f"The work of {subtask_id}.",
        "assigned_to": assigned_to,
        "worker_type": worker_type,
        "dependencies": list(dependencies),
        "estimated_duration_minutes": 20,
        "estimated_tokens": 8000,
        "files_affected": files or [],
        "success_criteria": f"{subtask_id} is done and its tests pass",
    }


def login_plan() -> dict[str, Any]:
    """A valid complex draft: design, then login and registration in parallel, then tests."""
    return draft(
        draft_subtask("api-001-design", worker_type="planner", files=["docs/api.md"]),
        draft_subtask("api-002-login", "api-001-design", title="Implement login"),
        draft_subtask("api-003-registration", "api-001-design", title="Implement registration"),
        draft_subtask("api-004-tests", "api-002-login", "api-003-registration", worker_type="test"),
        title="User API",
    )

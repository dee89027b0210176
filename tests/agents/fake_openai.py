"""A fake OpenAI-compatible chat-completions server that speaks the real wire protocol, for tests.

Real coding-agent CLIs (Aider through litellm and the ``openai`` client) talk to it as to any
OpenAI-compatible endpoint: HTTP/1.1 with keep-alive on 127.0.0.1, a free port.

- ``POST /v1/chat/completions``: with ``"stream": true`` a ``text/event-stream`` answer, sent
  chunked: ``data: {chunk}`` frames (a role delta, the content in pieces, a ``finish_reason``
  chunk, a usage chunk when ``stream_options.include_usage`` asks for it) and ``data: [DONE]``;
  otherwise one ``chat.completion`` JSON object. Both carry ``usage`` (prompt and completion
  tokens) so the client reports real counts.
- ``GET /v1/models`` and ``GET /v1/models/{id}``: the one model.
- A wrong ``Authorization: Bearer`` (when ``api_key`` is set) gets 401, an unknown path 404, a body
  that is not JSON 400, all as OpenAI error objects (``{"error": {"message", "type", ...}}``).

What the model says: a request whose system prompt asks for a commit message gets
``commit_message``; any other gets ``reply`` (a string, or a function of the request's messages).
Every request is logged in :attr:`FakeOpenAI.calls` (method, path, headers, JSON body).

``with FakeOpenAI(...) as server: ... server.base_url`` (ends in ``/v1``). Leaving the block stops
the server and closes every socket: idle keep-alive connections time out after ``idle_s``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

Messages = list[dict[str, Any]]
Reply = str | Callable[[Messages], str]
COMMIT_MARKER = "commit message"
"""In Aider's commit-message system prompt ("...concise, one-line Git commit messages")."""


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None

    @property
    def messages(self) -> Messages:
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return list(self.body["messages"])
        return []

    @property
    def streamed(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def is_commit_message(self) -> bool:
        return is_commit_request(self.messages)


def text_of(message: dict[str, Any]) -> str:
    """A message's text: a string content, or the text parts of a list content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def is_commit_request(messages: Messages) -> bool:
    return any(m.get("role") == "system" and COMMIT_MARKER in text_of(m).lower() for m in messages)


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: about four characters a token, at least one."""
    return max(1, len(text) // 4)


class FakeOpenAI:
    def __init__(
        self,
        *,
        reply: Reply = "I have nothing to change.",
        commit_message: str = "Add tests",
        model: str = "fake-coder",
        api_key: str | None = None,
        chunk_chars: int = 40,
        idle_s: float = 2.0,
    ) -> None:
        self.reply = reply
        self.commit_message = commit_message
        self.model = model
        self.api_key = api_key
        self.chunk_chars = chunk_chars
        self.idle_s = idle_s
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not running"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_calls(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path == "/v1/chat/completions"]

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self, "timeout": self.idle_s})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # joined on close, so no handler thread (and no socket) outlives the server
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

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

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def answer(self, messages: Messages) -> str:
        if is_commit_request(messages):
            return self.commit_message
        return self.reply(messages) if callable(self.reply) else self.reply

    def next_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake{next(self._ids)}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAI
    server_version = "fake-openai/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the calls are recorded instead

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake.record(Call(method, path, headers, body))
        if self.fake.api_key is not None and headers.get("authorization") != (
            f"Bearer {self.fake.api_key}"
        ):
            self._error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        elif method == "POST" and path == "/v1/chat/completions":
            if bad_json or not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                self._error(400, "We could not parse the JSON body of your request.")
            else:
                self._completion(body)
        elif method == "GET" and path == "/v1/models":
            self._json(200, {"object": "list", "data": [self._model()]})
        elif method == "GET" and path == f"/v1/models/{self.fake.model}":
            self._json(200, self._model())
        else:
            self._error(404, f"Unknown request URL: {method} {path}.", code="unknown_url")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _model(self) -> dict[str, Any]:
        return {"id": self.fake.model, "object": "model", "created": 0, "owned_by": "taskorch"}

    def _completion(self, body: dict[str, Any]) -> None:
        messages: Messages = body["messages"]
        content = self.fake.answer(messages)
        usage = {
            "prompt_tokens": sum(count_tokens(text_of(m)) for m in messages),
            "completion_tokens": count_tokens(content),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        ident, created = self.fake.next_id(), int(time.time())
        model = str(body.get("model") or self.fake.model)
        if body.get("stream") is not True:
            self._json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
        for chunk in self._chunks(content, with_usage, usage):
            self._send_chunk(f"data: {json.dumps({**base, **chunk})}\n\n")
        self._send_chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunks(
        self, content: str, with_usage: bool, usage: dict[str, int]
    ) -> Iterator[dict[str, Any]]:
        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        tail = {"usage": None} if with_usage else {}
        yield {"choices": [choice({"role": "assistant", "content": ""})], **tail}
        size = self.fake.chunk_chars
        for start in range(0, len(content), size):
            yield {"choices": [choice({"content": content[start : start + size]})], **tail}
        yield {"choices": [choice({}, "stop")], **tail}
        if with_usage:
            yield {"choices": [], "usage": usage}

    def _send_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        self._json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
        )

"""A fake coder/agentapi server that speaks the real wire protocol, for tests.

It follows ``/work/shared/contracts/README.md`` (agentapi 0.12.1): raw HTTP/1.1 over a real socket
(keep-alive, chunked server-sent events), so the real httpx client code runs against it.

- Host check: a Host outside ``allowed_hosts`` (port ignored, case-insensitive) gets
  **400 text/plain** ``Invalid host header. Allowed hosts: ...``. With ``api_key`` set, a missing or
  wrong ``Authorization: Bearer`` gets 401 text/plain.
- ``GET /status``, ``GET /messages`` (message 0 is the greeting; ids 0, 1, 2, ...; agent content is
  padded with spaces to the terminal width) and every body carries ``$schema`` plus a ``Link``
  header.
- ``POST /message``: ``user`` while running gives the 500 problem document whose
  ``errors[0].message`` says "message can only be sent when the agent is waiting for user input";
  otherwise the message is logged, the agent starts, and the call blocks ``start_delay_s`` before
  answering ``{"ok": true}``. ``raw`` content is recorded in :attr:`FakeAgentApi.raw`; ESC or
  Ctrl-C interrupts a running agent. Validation errors: 415, 400, 422 as the real server.
- ``GET /events``: ``event: <name>\\ndata: <json>\\n\\n`` frames; on connect one ``message_update``
  per message, a ``status_change`` and stored ``agent_error`` events; then changes only.

The agent: a turn runs ``duration_s`` (updating its message every ``update_s``), then calls the
``hook`` with a :class:`FakeTurn` (in a thread: the hook may edit files, e.g. in
:attr:`FakeTurn.workdir`, parsed from a ``Working directory: ...`` line of the message, else the
server's ``workdir``) and replies with what it returns (or :attr:`FakeAgentApi.reply`); status
returns to ``stable`` after ``stable_delay_s``. ``hang=True`` never finishes (until interrupted).

Failure modes: ``busy=True`` (the agent is running someone else's turn), ``busy_posts=N`` (the next
N user POSTs get the busy 500 even though status said stable), ``rate_limited_posts=N`` with
``retry_after`` (the next N user POSTs get 429, as a rate-limiting proxy in front answers),
``drop_post="before" | "after"`` with ``drop_posts=N`` (close the socket without answering,
before or after accepting the message),
``drop_events_after=K`` with ``drop_streams=N`` (end the first N event streams after K events),
``events_status=500|404`` (no event stream at all), and :meth:`FakeAgentApi.kill` (the server dies:
listening socket and every connection closed at once).

The server runs on its own event loop in a thread, so sync and async tests (and a CLI run in the
test's thread) can use it: ``with FakeAgentApi(...) as server: ... server.base_url``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

BUSY_MESSAGE = (
    "failed to send message: message can only be sent when the agent is waiting for user input"
)
TERMINAL_WIDTH = 80
ESC = "\x1b"
CTRL_C = "\x03"
_WORKDIR_LINE = re.compile(r"^Working directory: (.+)$", re.MULTILINE)


@dataclass
class FakeMessage:
    id: int
    role: Literal["user", "agent"]
    content: str
    time: str


@dataclass
class FakeTurn:
    """What the agent hook gets: the user's message and where to work."""

    content: str
    workdir: Path | None
    update: Callable[[str], None]
    """Replace the agent's in-progress message (thread-safe)."""


Hook = Callable[[FakeTurn], str | None]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass(eq=False)
class _Conn:
    writer: asyncio.StreamWriter
    streaming: bool = False


@dataclass(eq=False)
class _Stream:
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(default_factory=asyncio.Queue)


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def pad(text: str) -> str:
    """Terminal text: every line padded with spaces to the terminal width."""
    return "\n".join(line.ljust(TERMINAL_WIDTH) for line in text.split("\n"))


class FakeAgentApi:
    def __init__(
        self,
        *,
        hook: Hook | None = None,
        reply: str = "Done: the change is made.",
        greeting: str = "Welcome to the fake agent.",
        agent_type: str = "claude",
        duration_s: float = 0.0,
        update_s: float = 0.05,
        start_delay_s: float = 0.05,
        stable_delay_s: float = 0.05,
        hang: bool = False,
        busy: bool = False,
        busy_posts: int = 0,
        rate_limited_posts: int = 0,
        retry_after: str | None = None,
        drop_post: Literal["before", "after"] | None = None,
        drop_posts: int = 1,
        drop_events_after: int | None = None,
        drop_streams: int = 1,
        events_status: int | None = None,
        allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]"),
        api_key: str | None = None,
        workdir: Path | None = None,
        port: int = 0,
    ) -> None:
        self.hook = hook
        self.workdir = workdir
        """Where the agent works when the message names no ``Working directory``."""
        self.reply = reply
        self.agent_type = agent_type
        self.duration_s = duration_s
        self.update_s = update_s
        self.start_delay_s = start_delay_s
        self.stable_delay_s = stable_delay_s
        self.hang = hang
        self.busy_posts = busy_posts
        self.rate_limited_posts = rate_limited_posts
        self.retry_after = retry_after
        self.drop_post = drop_post
        self.drop_posts = drop_posts
        self.drop_events_after = drop_events_after
        self.drop_streams = drop_streams
        self.events_status = events_status
        self.allowed_hosts = allowed_hosts
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.raw: list[str] = []
        self.interrupted = 0
        self.streams_opened = 0
        self.messages = [FakeMessage(0, "agent", pad(greeting), rfc3339_now())]
        self.status: Literal["running", "stable"] = "running" if busy else "stable"
        self.errors: list[dict[str, Any]] = []
        self._streams: set[_Stream] = set()
        self._conns: set[_Conn] = set()
        self._turn: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = port
        """0: any free port; a fixed one lets a test bring a killed server back at its address."""

    # --- what tests look at -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def user_messages(self) -> list[str]:
        """Contents of the user messages the agent accepted (logged in /messages)."""
        return [m.content for m in self.messages if m.role == "user"]

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path == path)

    def posts(self, kind: str = "user") -> list[str]:
        """Every POST /message of ``kind`` the server received, accepted or not."""
        return [
            str(r.body.get("content"))
            for r in self.requests
            if r.method == "POST" and isinstance(r.body, dict) and r.body.get("type") == kind
        ]

    def finish_busy_turn(self, reply: str = "someone else's turn is done") -> None:
        """End the foreign turn of ``busy=True``."""
        self._call(self._finish_foreign, reply)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-agentapi", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake agentapi did not start")

    def stop(self) -> None:
        """Shut down: close the listener, end streams and connections, cancel the agent."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def kill(self) -> None:
        """The server dies at once: further connections are refused, open ones are reset."""
        self.stop()

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

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        self._server.close()
        if self._turn is not None:
            self._turn.cancel()
        await self._close_connections()
        await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_connections(self) -> None:
        # A connection task cancelled before it first runs never closes its socket (Python
        # 3.11's start_server callback raises on a cancelled task), so let every accepted
        # connection start and end by itself: abort the known ones until no task is left.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while loop.time() < deadline:
            for stream in list(self._streams):
                stream.queue.put_nowait(None)
            for conn in list(self._conns):
                conn.writer.transport.abort()
            others = asyncio.all_tasks() - {asyncio.current_task()}
            if not others:
                return
            await asyncio.wait(others, timeout=0.01)

    # --- HTTP -----------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            while await self._one_request(conn, reader):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._conns.discard(conn)
            writer.transport.abort()

    async def _one_request(self, conn: _Conn, reader: asyncio.StreamReader) -> bool:
        line = await reader.readline()
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        data = await reader.readexactly(length) if length else b""
        path = target.split("?", 1)[0]
        body: Any = None
        if data:
            try:
                body = json.loads(data)
            except ValueError:
                body = data.decode("utf-8", "replace")
        self.requests.append(Recorded(method, path, headers, body))
        keep = headers.get("connection", "").lower() != "close"
        handled = await self._route(conn, method, path, headers, data, body)
        return keep and handled

    async def _route(
        self,
        conn: _Conn,
        method: str,
        path: str,
        headers: dict[str, str],
        data: bytes,
        body: Any,
    ) -> bool:
        host = _host_name(headers.get("host", ""))
        if host not in {h.lower() for h in self.allowed_hosts}:
            allowed = ", ".join(self.allowed_hosts)
            await self._text(conn, 400, f"Invalid host header. Allowed hosts: {allowed}")
            return True
        if self.api_key is not None:
            auth = headers.get("authorization", "")
            if auth != f"Bearer {self.api_key}":
                await self._text(conn, 401, "Invalid API key")
                return True
        if (method, path) == ("GET", "/status"):
            await self._json(conn, 200, "StatusResponseBody", self._status_body(), headers)
        elif (method, path) == ("GET", "/messages"):
            messages = [
                {"id": m.id, "content": m.content, "role": m.role, "time": m.time}
                for m in self.messages
            ]
            await self._json(conn, 200, "MessagesResponseBody", {"messages": messages}, headers)
        elif (method, path) == ("POST", "/message"):
            return await self._post_message(conn, headers, data, body)
        elif (method, path) == ("GET", "/events"):
            await self._events(conn, headers)
            return False
        else:
            await self._problem(conn, 404, "Not Found", "no such path", headers)
        return True

    def _status_body(self) -> dict[str, Any]:
        return {"status": self.status, "agent_type": self.agent_type, "transport": "pty"}

    async def _post_message(
        self, conn: _Conn, headers: dict[str, str], data: bytes, body: Any
    ) -> bool:
        if not data:
            await self._problem(conn, 400, "Bad Request", "request body is required", headers)
            return True
        if "json" not in headers.get("content-type", ""):
            await self._problem(conn, 415, "Unsupported Media Type", "unsupported", headers)
            return True
        if not isinstance(body, dict):
            await self._problem(conn, 400, "Bad Request", "unable to parse body", headers)
            return True
        kind, content = body.get("type"), body.get("content")
        if kind not in ("user", "raw") or not isinstance(content, str):
            errors = [{"location": "body.type", "message": "expected value to be one of user, raw"}]
            await self._problem(
                conn, 422, "Unprocessable Entity", "validation failed", headers, errors
            )
            return True
        if kind == "raw":
            self.raw.append(content)
            if (ESC in content or CTRL_C in content) and self._turn is not None:
                self.interrupted += 1
                self._turn.cancel()
            await self._json(conn, 200, "MessageResponseBody", {"ok": True}, headers)
            return True
        if self.drop_post == "before" and self.drop_posts > 0:
            self.drop_posts -= 1
            return False  # the socket is closed without an answer; nothing was accepted
        if self.rate_limited_posts > 0:
            self.rate_limited_posts -= 1
            extra = f"Retry-After: {self.retry_after}\r\n" if self.retry_after else ""
            problem = {"title": "Too Many Requests", "status": 429, "detail": "rate limited"}
            await self._send(
                conn, 429, "application/problem+json", json.dumps(problem).encode(), extra
            )
            return True
        if self.status == "running" or self.busy_posts > 0:
            self.busy_posts = max(self.busy_posts - 1, 0)
            errors = [{"message": BUSY_MESSAGE}]
            await self._problem(
                conn, 500, "Internal Server Error", "unexpected error occurred", headers, errors
            )
            return True
        if not content.strip():
            errors = [{"message": "failed to send message: message must not be empty"}]
            await self._problem(
                conn, 500, "Internal Server Error", "unexpected error occurred", headers, errors
            )
            return True
        self._start_turn(content.strip())
        await asyncio.sleep(self.start_delay_s)  # blocks until the agent has started
        if self.drop_post == "after" and self.drop_posts > 0:
            self.drop_posts -= 1
            return False  # accepted, but the answer is lost
        await self._json(conn, 200, "MessageResponseBody", {"ok": True}, headers)
        return True

    async def _events(self, conn: _Conn, headers: dict[str, str]) -> None:
        if self.events_status is not None:
            await self._problem(conn, self.events_status, "Error", "no events here", headers)
            return
        self.streams_opened += 1
        drop_after = self.drop_events_after if self.drop_streams > 0 else None
        if drop_after is not None:
            self.drop_streams -= 1
        conn.streaming = True
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        writer = conn.writer
        writer.write(head.encode())
        stream = _Stream()
        for m in self.messages:
            stream.queue.put_nowait(("message_update", _update_body(m)))
        stream.queue.put_nowait(("status_change", self._status_change_body()))
        for error in self.errors:
            stream.queue.put_nowait(("agent_error", error))
        self._streams.add(stream)
        sent = 0
        try:
            while True:
                if drop_after is not None and sent >= drop_after:
                    return  # the caller aborts the connection mid-stream
                item = await stream.queue.get()
                if item is None:
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return
                name, data = item
                frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                writer.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
                await writer.drain()
                sent += 1
        finally:
            self._streams.discard(stream)

    def _status_change_body(self) -> dict[str, Any]:
        return {"status": self.status, "agent_type": self.agent_type}

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        for stream in self._streams:
            stream.queue.put_nowait((name, data))

    # --- the agent ------------------------------------------------------------------------------

    def _set_status(self, status: Literal["running", "stable"]) -> None:
        if status != self.status:
            self.status = status
            self._emit("status_change", self._status_change_body())

    def _add(self, role: Literal["user", "agent"], content: str) -> FakeMessage:
        message = FakeMessage(len(self.messages), role, content, rfc3339_now())
        self.messages.append(message)
        self._emit("message_update", _update_body(message))
        return message

    def _update(self, message: FakeMessage, content: str) -> None:
        message.content = pad(content)
        message.time = rfc3339_now()
        self._emit("message_update", _update_body(message))

    def _finish_foreign(self, reply: str) -> None:
        self._add("agent", pad(reply))
        self._set_status("stable")

    def _start_turn(self, content: str) -> None:
        self._add("user", content)
        answer = self._add("agent", "")
        self._set_status("running")
        self._turn = asyncio.get_running_loop().create_task(self._work(content, answer))

    async def _work(self, content: str, answer: FakeMessage) -> None:
        loop = asyncio.get_running_loop()
        found = _WORKDIR_LINE.search(content)

        def update(text: str) -> None:
            loop.call_soon_threadsafe(self._update, answer, text)

        turn = FakeTurn(content, Path(found.group(1).strip()) if found else self.workdir, update)
        try:
            started = time.monotonic()
            while self.hang or time.monotonic() - started < self.duration_s:
                self._update(answer, f"Working... {time.monotonic() - started:.1f}s")
                await asyncio.sleep(self.update_s)
            reply = self.reply
            if self.hook is not None:
                try:
                    answer_text = await asyncio.to_thread(self.hook, turn)
                    reply = answer_text or reply
                except Exception as exc:
                    error = {
                        "message": f"hook failed: {exc}",
                        "level": "error",
                        "time": rfc3339_now(),
                    }
                    self.errors.append(error)
                    self._emit("agent_error", error)
                    reply = f"Error: {exc}"
            self._update(answer, reply)
            await asyncio.sleep(self.stable_delay_s)
        except asyncio.CancelledError:
            self._update(answer, "Interrupted by user")
            raise
        finally:
            self._set_status("stable")
            self._turn = None

    # --- responses ------------------------------------------------------------------------------

    async def _send(
        self, conn: _Conn, status: int, content_type: str, payload: bytes, extra: str = ""
    ) -> None:
        reason = _REASONS.get(status, "Status")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n{extra}\r\n"
        )
        conn.writer.write(head.encode() + payload)
        await conn.writer.drain()

    async def _text(self, conn: _Conn, status: int, text: str) -> None:
        await self._send(conn, status, "text/plain; charset=utf-8", (text + "\n").encode())

    async def _json(
        self, conn: _Conn, status: int, schema: str, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        url = f"http://{headers.get('host', 'localhost')}/schemas/{schema}.json"
        payload = json.dumps({"$schema": url, **body}).encode()
        link = f'Link: <{url}>; rel="describedBy"\r\n'
        await self._send(conn, status, "application/json", payload, link)

    async def _problem(
        self,
        conn: _Conn,
        status: int,
        title: str,
        detail: str,
        headers: dict[str, str],
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        url = f"http://{headers.get('host', 'localhost')}/schemas/ErrorModel.json"
        body: dict[str, Any] = {"$schema": url, "title": title, "status": status, "detail": detail}
        if errors is not None:
            body["errors"] = errors
        link = f'Link: <{url}>; rel="describedBy"\r\n'
        await self._send(conn, status, "application/problem+json", json.dumps(body).encode(), link)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _update_body(message: FakeMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "message": message.content,
        "time": message.time,
    }


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host

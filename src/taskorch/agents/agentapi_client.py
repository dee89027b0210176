"""The agentapi wire protocol: requests, lenient parsing, and errors classified at the boundary.

:class:`AgentApiClient` wraps one ``httpx.AsyncClient`` (``Authorization: Bearer`` when a key is
given). Bodies are parsed leniently: ``$schema``, ``Link`` headers and unknown fields are ignored,
malformed messages skipped. Every failure comes out as an :class:`AgentError` with its class:

- 400 text/plain "Invalid host header": non-retryable ``dependency`` (start agentapi with
  ``--allowed-hosts``); 401/403: non-retryable ``auth``;
- the 500 problem document whose ``errors[0].message`` says the message "can only be sent when the
  agent is waiting for user input": the agent is busy, retryable ``busy`` with a Retry-After (the
  worker does not count it as the agent's try and sends the subtask to another capable agent);
- 500 "timeout waiting for condition" (the agent never reacted): ``agent``; 429: ``rate_limit``;
  other 5xx: ``service_unavailable``; other 4xx: non-retryable ``validation``;
- connection errors: ``network`` (``timeout`` for timeouts).

A POST whose connection drops after the request went out raises :class:`MessageMaybeSent`
instead: the caller must look at the history before sending again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from taskorch.domain.errors import AgentError
from taskorch.domain.retry import ErrorClass

BUSY_TEXT = "message can only be sent when the agent is waiting for user input"
NO_EVENTS = frozenset({404, 405, 501})


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Status:
    status: str
    """``running`` or ``stable`` (anything else is passed through)."""
    agent_type: str


class MessageMaybeSent(Exception):
    """The connection dropped after a POST went out: the message may have been accepted."""

    def __init__(self, cause: httpx.TransportError) -> None:
        self.cause = cause
        super().__init__(describe(cause))


class EventsUnavailable(Exception):
    """``GET /events`` did not open a stream."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"GET /events answered {status}")

    @property
    def permanent(self) -> bool:
        return self.status in NO_EVENTS


class AgentApiClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        request_timeout_s: float = 10.0,
        busy_retry_after_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_timeout_s = request_timeout_s
        self.busy_retry_after_s = busy_retry_after_s
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(request_timeout_s),
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def status(self) -> Status:
        body = await self._get_json("/status")
        status = body.get("status")
        if not isinstance(status, str):
            raise AgentError(
                f"agentapi at {self.base_url} answered GET /status without a status",
                error_class=ErrorClass.SERVICE_UNAVAILABLE.value,
            )
        return Status(status, str(body.get("agent_type") or ""))

    async def messages(self) -> list[Message]:
        body = await self._get_json("/messages")
        raw = body.get("messages")
        messages: list[Message] = []
        for item in raw if isinstance(raw, list) else []:
            if not isinstance(item, dict):
                continue
            ident, role, content = item.get("id"), item.get("role"), item.get("content")
            if isinstance(ident, int) and isinstance(role, str) and isinstance(content, str):
                messages.append(Message(ident, role, content))
        return sorted(messages, key=lambda m: m.id)

    async def send(self, content: str, *, read_timeout_s: float) -> None:
        """``POST /message`` of type ``user``; blocks until the agent has started on it."""
        timeout = httpx.Timeout(self.request_timeout_s, read=read_timeout_s)
        body = {"content": content, "type": "user"}
        try:
            response = await self._http.post("/message", json=body, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._network(exc) from exc  # nothing went out
        except httpx.TransportError as exc:
            raise MessageMaybeSent(exc) from exc
        self._check(response)

    async def raw(self, content: str) -> None:
        """Keystrokes to the agent's terminal (ESC interrupts it); no status check."""
        try:
            response = await self._http.post("/message", json={"content": content, "type": "raw"})
        except httpx.TransportError as exc:
            raise self._network(exc) from exc
        self._check(response)

    async def events(self) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """(event, data) from ``GET /events`` until the stream ends; use with ``aclosing``."""
        async with self._http.stream(
            "GET",
            "/events",
            headers={"Accept": "text/event-stream"},
            timeout=httpx.Timeout(self.request_timeout_s, read=None),
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise EventsUnavailable(response.status_code)
            async with contextlib.aclosing(parse_sse(response.aiter_lines())) as events:
                async for item in events:
                    yield item

    def busy(self, why: str) -> AgentError:
        return AgentError(
            f"agent behind {self.base_url} is busy: {why}",
            error_class=ErrorClass.BUSY.value,
            retry_after_s=self.busy_retry_after_s,
        )

    async def _get_json(self, path: str) -> dict[str, Any]:
        try:
            response = await self._http.get(path)
        except httpx.TransportError as exc:
            raise self._network(exc) from exc
        self._check(response)
        body = json_object(response.text)
        if body is None:
            raise AgentError(
                f"agentapi at {self.base_url} answered GET {path} with something not JSON",
                error_class=ErrorClass.SERVICE_UNAVAILABLE.value,
            )
        return body

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        where = f"agentapi at {self.base_url} ({response.request.method} {response.url.path})"
        text = problem_message(response)
        if status == 400 and "invalid host header" in response.text.lower():
            raise AgentError(
                f"{where} refused our Host header {response.request.headers.get('host')!r}: "
                f"{response.text.strip()}; start agentapi with --allowed-hosts (or "
                "AGENTAPI_ALLOWED_HOSTS) including that host, or use a URL with an allowed host",
                error_class=ErrorClass.DEPENDENCY.value,
                retryable=False,
            )
        if status in (401, 403):
            raise AgentError(
                f"{where} refused our credentials ({status}): {text}; check AGENTAPI_KEY",
                error_class=ErrorClass.AUTH.value,
                retryable=False,
            )
        if BUSY_TEXT in text:
            raise self.busy(text)
        retry_after = _retry_after(response)
        if status == 429:
            raise AgentError(
                f"{where} is rate limiting: {text}",
                error_class=ErrorClass.RATE_LIMIT.value,
                retry_after_s=retry_after,
            )
        if status >= 500:
            kind = ErrorClass.SERVICE_UNAVAILABLE
            if "timeout waiting for condition" in text:
                kind = ErrorClass.AGENT  # the agent never reacted to the message
            raise AgentError(
                f"{where} failed ({status}): {text}",
                error_class=kind.value,
                retry_after_s=retry_after,
            )
        raise AgentError(
            f"{where} rejected the request ({status}): {text}",
            error_class=ErrorClass.VALIDATION.value,
            retryable=False,
        )

    def _network(self, exc: httpx.TransportError) -> AgentError:
        kind = ErrorClass.TIMEOUT if isinstance(exc, httpx.TimeoutException) else ErrorClass.NETWORK
        return AgentError(
            f"cannot reach agentapi at {self.base_url}: {describe(exc)}", error_class=kind.value
        )


async def parse_sse(
    lines: AsyncIterator[str],
) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
    """(event, JSON object data) pairs from server-sent event lines; ``id:``, ``retry:`` and
    comments are ignored, as are events whose data is not a JSON object."""
    event, data = "message", list[str]()
    async for line in lines:
        if not line:
            body = json_object("\n".join(data)) if data else None
            if body is not None:
                yield event, body
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def json_object(text: str) -> dict[str, Any] | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def problem_message(response: httpx.Response) -> str:
    """The reason in an RFC 9457 problem document (``errors[0].message`` first), else the text."""
    body = json_object(response.text)
    if body is None:
        return response.text.strip()[:500]
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = errors[0].get("message")
        if message:
            return str(message)
    return str(body.get("detail") or body.get("title") or response.text.strip()[:500])


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

"""Adapter for coder/agentapi: one HTTP server in front of one coding-agent session.

One turn, following the contract in ``shared/contracts/README.md``:

1. ``GET /status``: ``running`` means the agent is busy with another turn (retryable
   ``busy`` error with a short Retry-After); ``GET /messages`` records where history ends.
2. ``POST /message {"content", "type": "user"}`` with a generous read timeout (it blocks until the
   agent has started). A 500 problem document whose ``errors[0].message`` says the message "can
   only be sent when the agent is waiting for user input" is the same busy error. If the connection
   drops after the request went out, the message may or may not have been accepted: the adapter
   reads ``/messages`` and ``/status`` until it appears or the agent has stayed idle for
   ``settle_s``, and only then sends again (once), so a message is never sent twice.
3. While the agent works: ``GET /status`` every ``poll_s`` is the liveness check (the event stream
   has no heartbeats) and ``heartbeat()`` is called whenever the server answers that the agent is
   running; ``GET /events`` (server-sent events) ends the wait as soon as the status returns to
   ``stable``. A dropped stream is reconnected (its replay re-reads the state); when it keeps
   failing the adapter carries on with polling alone. ``max_missed_polls`` failed status checks in a
   row end the attempt with a ``network`` (or ``service_unavailable``) error.
4. The turn is over when the status is ``stable`` after our message was accepted; the result is the
   agent message that follows our user message in ``/messages`` (lines right-stripped, trimmed).

Errors are classified by :mod:`taskorch.agents.agentapi_client` (a refused Host header is a
non-retryable ``dependency`` error that says to start agentapi with ``--allowed-hosts``; connection
errors are ``network``; ...). Cancellation (timeout, workflow cancel) after the message may have
gone out sends ESC as a ``raw`` message to interrupt the agent, best effort, then re-raises.

With ``announce_workdir`` (the default) and a task working directory, the message starts with
``Working directory: <path>``: the agent behind agentapi runs wherever its server was started, so
it is told where the subtask's worktree is.

"Waiting for human input": a reply that ends by asking the user something (see
:mod:`taskorch.agents.outcome`) with no change in the task's git worktree raises
:class:`~taskorch.agents.outcome.NeedsInputError`. Without a git worktree to look at, the adapter
cannot tell: it returns success with ``data["question"]`` set, for validation to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from taskorch.agents.agentapi_client import (
    AgentApiClient,
    EventsUnavailable,
    Message,
    MessageMaybeSent,
)
from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.agents.changes import changes_since, snapshot
from taskorch.agents.outcome import NeedsInputError, clean_text, waiting_question
from taskorch.domain.errors import AgentError, ConfigError
from taskorch.domain.retry import ErrorClass

DEFAULT_URL = "http://localhost:3284"
ESC = "\u001b"


class AgentApiAdapter:
    """Runs a subtask as one turn of the agent behind an agentapi server."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        name: str = "agentapi",
        poll_s: float = 1.0,
        request_timeout_s: float = 10.0,
        send_timeout_s: float = 120.0,
        settle_s: float = 20.0,
        busy_retry_after_s: float = 10.0,
        max_missed_polls: int = 3,
        use_events: bool = True,
        announce_workdir: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"agentapi URL must start with http:// or https://, got {base_url!r}")
        if min(poll_s, request_timeout_s, send_timeout_s) <= 0 or settle_s < 0:
            raise ConfigError("agentapi poll interval and timeouts must be positive")
        if max_missed_polls < 1:
            raise ConfigError(f"max_missed_polls must be >= 1, got {max_missed_polls}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._name = name
        self.poll_s = poll_s
        self.request_timeout_s = request_timeout_s
        self.send_timeout_s = send_timeout_s
        self.settle_s = settle_s
        self.busy_retry_after_s = busy_retry_after_s
        self.max_missed_polls = max_missed_polls
        self.use_events = use_events
        self.announce_workdir = announce_workdir
        self._transport = transport

    @property
    def name(self) -> str:
        return self._name

    def client(self) -> AgentApiClient:
        return AgentApiClient(
            self.base_url,
            self.api_key,
            request_timeout_s=self.request_timeout_s,
            busy_retry_after_s=self.busy_retry_after_s,
            transport=self._transport,
        )

    def message_for(self, task: AgentTask) -> str:
        text = task.instructions.strip()
        if self.announce_workdir and task.workdir is not None:
            text = f"Working directory: {task.workdir}\n\n{text}"
        return text

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        if not task.instructions.strip():
            raise AgentError(
                f"subtask {task.subtask.key} has no instructions to send to {self.name}",
                error_class=ErrorClass.VALIDATION.value,
                retryable=False,
            )
        before = await snapshot(task.workdir, heartbeat)
        async with self.client() as client:
            turn = _Turn(self, client, heartbeat)
            try:
                reply = await turn.run(self.message_for(task))
            except asyncio.CancelledError:
                if turn.sent:
                    await turn.interrupt()
                raise
        data: dict[str, Any] = {"agent": self.name, "url": self.base_url}
        if turn.agent_type:
            data["agent_type"] = turn.agent_type
        if turn.agent_errors:
            data["agent_errors"] = turn.agent_errors
        if before is not None:
            changes = await changes_since(before, heartbeat)
            data["changed_files"] = changes.changed_files
            data["commits"] = changes.commits
            question = waiting_question(reply)
            if question is not None and not changes.any:
                raise NeedsInputError(self.name, question)
        elif (question := waiting_question(reply)) is not None:
            data["question"] = question
        return AgentResult(True, reply, data)


class _Turn:
    """One message sent and its reply awaited."""

    def __init__(
        self, adapter: AgentApiAdapter, client: AgentApiClient, heartbeat: Heartbeat
    ) -> None:
        self.a = adapter
        self.client = client
        self.heartbeat = heartbeat
        self.sent = False
        self.sending = False
        self.base_id = -1
        self.content = ""
        self.status: str | None = None
        self.status_at = 0.0
        """When the request that observed ``status`` was issued (monotonic)."""
        self.accepted_at: float | None = None
        self.failure: AgentError | None = None
        self.changed = asyncio.Event()
        self.agent_type = ""
        self.agent_errors: list[str] = []

    async def run(self, content: str) -> str:
        self.content = content
        if await self.get_status() == "running":
            raise self.client.busy("the agent is running another turn")
        self.base_id = max((m.id for m in await self.client.messages()), default=-1)
        tasks = [asyncio.create_task(self.poll(), name="agentapi-poll")]
        try:
            await self.send()
            self.accepted_at = time.monotonic()
            if self.a.use_events:
                tasks.append(asyncio.create_task(self.follow_events(), name="agentapi-events"))
            return await self.wait_for_reply()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- sending ------------------------------------------------------------------------------

    async def send(self) -> None:
        """Send once; after a dropped connection, again only if the first was not accepted."""
        for attempt in (1, 2):
            self.sent = self.sending = True
            try:
                await self.client.send(self.content, read_timeout_s=self.a.send_timeout_s)
                return
            except MessageMaybeSent as dropped:
                if await self.accepted_after_drop(dropped):
                    return
                if attempt == 2:
                    raise AgentError(
                        f"the connection to agentapi at {self.a.base_url} dropped twice while "
                        f"sending the message and it was not accepted: {dropped}",
                        error_class=ErrorClass.NETWORK.value,
                    ) from dropped.cause
            finally:
                self.sending = False

    async def accepted_after_drop(self, dropped: MessageMaybeSent) -> bool:
        """Was the message accepted after all? Waits up to ``settle_s`` of idle agent to know."""
        deadline = time.monotonic() + self.a.settle_s
        while True:
            try:
                messages = await self.client.messages()
                status = await self.get_status()
            except AgentError as error:
                if not error.retryable:
                    raise
                raise AgentError(
                    f"the connection to agentapi at {self.a.base_url} dropped while sending the "
                    f"message ({dropped}) and the server no longer answers: {error.message}",
                    error_class=ErrorClass.NETWORK.value,
                ) from dropped.cause
            if self.user_message(messages) is not None:
                return True
            if time.monotonic() >= deadline:
                if status == "stable":
                    return False
                raise AgentError(
                    f"the connection to agentapi at {self.a.base_url} dropped while sending the "
                    "message; the agent is running but our message is not in its history",
                    error_class=ErrorClass.NETWORK.value,
                    retry_after_s=self.a.busy_retry_after_s,
                ) from dropped.cause
            self.heartbeat()
            await asyncio.sleep(self.a.poll_s)

    async def interrupt(self) -> None:
        """Best effort: ESC as keystrokes stops a running agent."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.a.request_timeout_s):
                await self.client.raw(ESC)

    # --- following the turn -------------------------------------------------------------------

    async def wait_for_reply(self) -> str:
        assert self.accepted_at is not None
        quiet_checks = 0
        while True:
            self.changed.clear()
            if self.failure is not None:
                raise self.failure
            if self.status == "stable" and self.status_at >= self.accepted_at:
                reply = await self.reply()
                if reply is not None:
                    return reply
                quiet_checks += 1
                if quiet_checks >= 3:
                    raise AgentError(
                        f"agent behind {self.a.base_url} is idle again but never replied",
                        error_class=ErrorClass.AGENT.value,
                    )
                self.status = None  # wait for a fresh observation
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.a.poll_s):
                    await self.changed.wait()

    async def reply(self) -> str | None:
        try:
            messages = await self.client.messages()
        except AgentError as error:
            if not error.retryable:
                raise
            return None  # the liveness poll decides whether the server is gone
        ours = self.user_message(messages)
        if ours is None:
            return None
        after = [m for m in messages if m.id > ours.id and m.role == "agent"]
        return clean_text(after[0].content) if after else None

    def user_message(self, messages: list[Message]) -> Message | None:
        mine = [m for m in messages if m.id > self.base_id and m.role == "user"]
        wanted = self.content.strip()
        exact = [m for m in mine if m.content.strip() == wanted]
        if exact:
            return exact[0]
        return mine[0] if mine else None

    def observe(self, status: str, issued_at: float) -> None:
        if issued_at >= self.status_at:
            self.status = status
            self.status_at = issued_at
            self.changed.set()

    async def get_status(self) -> str:
        status = await self.client.status()
        self.agent_type = status.agent_type or self.agent_type
        return status.status

    async def poll(self) -> None:
        """Liveness: the status every ``poll_s``; heartbeats while the server says running."""
        missed = 0
        while True:
            issued = time.monotonic()
            try:
                status = await self.get_status()
            except AgentError as error:
                missed += 1
                if not error.retryable or missed >= self.a.max_missed_polls:
                    self.failure = AgentError(
                        f"agentapi at {self.a.base_url} stopped answering "
                        f"({missed} status checks failed): {error.message}",
                        error_class=error.error_class,
                        retryable=error.retryable,
                    )
                    self.changed.set()
                    return
            else:
                missed = 0
                if self.sending or status == "running":
                    self.heartbeat()
                self.observe(status, issued)
            await asyncio.sleep(self.a.poll_s)

    async def follow_events(self) -> None:
        """Server-sent events end the wait promptly; after repeated failures, polling alone."""
        failures = 0
        while failures < 3:
            received = 0
            try:
                async with contextlib.aclosing(self.client.events()) as events:
                    async for event, data in events:
                        received += 1
                        self.on_event(event, data)
            except EventsUnavailable as unavailable:
                if unavailable.permanent:
                    return  # no event stream on this server: poll only
            except httpx.HTTPError:
                pass
            failures = 1 if received else failures + 1
            self.changed.set()  # re-read the state after a reconnect
            await asyncio.sleep(self.a.poll_s)

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        if event == "status_change":
            self.agent_type = str(data.get("agent_type") or self.agent_type)
            status = data.get("status")
            if isinstance(status, str):
                if status == "running":
                    self.heartbeat()
                self.observe(status, time.monotonic())
        elif event == "message_update":
            if data.get("role") == "agent" and self.status == "running":
                self.heartbeat()
        elif event == "agent_error":
            message = str(data.get("message") or "")
            if message and message not in self.agent_errors:
                self.agent_errors.append(message)

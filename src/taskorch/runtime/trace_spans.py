"""The spans of :mod:`taskorch.runtime.tracing`: the ids derived from a workflow id, and the
pipeline-state and attempt spans made from the event stream. Used only when tracing is on (the
OpenTelemetry SDK is imported here only then)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskorch.store.outcomes import QueueEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

TERMINAL_STATES = frozenset({"merged", "failed", "cancelled"})
ATTEMPT_ENDS = {
    "task:complete": "succeeded",
    "task:retry": "retry",
    "task:failed": "failed",
    "task:zombie": "zombie",
    "task:released": "released",
    "task:cancelled": "cancelled",
}
MAX_OPEN_SPANS = 10_000
"""Spans whose end this process may never see (an attempt recovered elsewhere) are dropped
beyond this many, oldest first."""
MAX_ERROR_CHARS = 500


forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("taskorch_forced_ids", default=None)
"""Ids the next span must have (trace, span): set around the creation of a derived span."""


# --- ids ---------------------------------------------------------------------------------------


def trace_id_of(workflow_id: str) -> int:
    """The workflow's trace id: the first 128 bits of sha256(workflow id)."""
    return int.from_bytes(hashlib.sha256(workflow_id.encode()).digest()[:16], "big") or 1


def root_span_id_of(workflow_id: str) -> int:
    """The span id of the workflow's root span: the next 64 bits of sha256(workflow id)."""
    return int.from_bytes(hashlib.sha256(workflow_id.encode()).digest()[16:24], "big") or 1


def attempt_span_id_of(workflow_id: str, subtask_id: int, attempt: int) -> int:
    """One attempt's span id, the same in the process that claims it and the one that runs it."""
    seed = f"{workflow_id}/attempt/{subtask_id}/{attempt}".encode()
    return int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") or 1


# --- the spans ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenState:
    state: str
    span: Span


class Tracing:
    """The SDK objects and the spans this process has open."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("taskorch")
        self.states: dict[str, _OpenState] = {}
        self.attempts: dict[tuple[str, int, int], Span] = {}
        self.created: dict[str, int] = {}

    def _context(self, workflow_id: str, span_id: int | None = None) -> Any:
        from opentelemetry import trace

        parent = trace.SpanContext(
            trace_id_of(workflow_id),
            span_id or root_span_id_of(workflow_id),
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    def _start(
        self,
        name: str,
        workflow_id: str,
        at_ns: int,
        attributes: dict[str, Any],
        *,
        parent: Any = None,
        span_id: int | None = None,
        root: bool = False,
    ) -> Span:
        """A span in the workflow's trace; ``span_id`` gives it a derived id."""
        attributes = {"taskorch.workflow_id": workflow_id, **attributes}
        if root:
            from opentelemetry.context import Context

            context = Context()  # no parent: the trace's own root
        else:
            context = parent or self._context(workflow_id)
        forced = (trace_id_of(workflow_id), span_id) if span_id else None
        token = forced_ids.set(forced)
        try:
            return self.tracer.start_span(
                name, context=context, attributes=attributes, start_time=at_ns
            )
        finally:
            forced_ids.reset(token)

    def open_child(
        self, name: str, where: tuple[str, int | None, int | None], attributes: dict[str, Any]
    ) -> Span:
        workflow_id, subtask_id, attempt = where
        parent = None
        if subtask_id is not None and attempt is not None:
            span_id = attempt_span_id_of(workflow_id, subtask_id, attempt)
            parent = self._context(workflow_id, span_id)
            attributes = {"taskorch.subtask_id": subtask_id, **attributes}
        elif (state := self.states.get(workflow_id)) is not None:
            from opentelemetry import trace

            parent = trace.set_span_in_context(state.span)
        return self._start(name, workflow_id, time.time_ns(), attributes, parent=parent)

    def failed(self, span: Span, exc: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, str(exc)[:MAX_ERROR_CHARS]))

    def on_events(self, events: Sequence[QueueEvent], now_ns: int) -> None:
        for event in events:
            if event.workflow_id is None:
                continue
            if event.kind == "workflow:transition":
                self._transition(event.workflow_id, event.payload, now_ns)
            elif event.kind == "task:started" and event.subtask_id is not None:
                self._attempt_started(event, now_ns)
            elif event.kind in ATTEMPT_ENDS and event.subtask_id is not None:
                self._attempt_ended(event, now_ns)

    # pipeline states: from the transition into a state to the transition out of it

    def _transition(self, workflow_id: str, payload: dict[str, Any], now_ns: int) -> None:
        source, target = payload.get("from"), str(payload.get("to"))
        if source is None:
            self.created[workflow_id] = now_ns
        elif source != target:
            self._end_state(workflow_id, str(source), target, now_ns)
        if source == target:
            return
        if target in TERMINAL_STATES:
            self._start_state(workflow_id, target, now_ns).end(now_ns)
            self._end_workflow(workflow_id, target, payload, now_ns)
        else:
            opened = self._start_state(workflow_id, target, now_ns)
            self.states[workflow_id] = _OpenState(target, opened)
            _bound(self.states)

    def _start_state(self, workflow_id: str, state: str, at_ns: int) -> Span:
        return self._start(f"state {state}", workflow_id, at_ns, {"taskorch.state": state})

    def _end_state(self, workflow_id: str, state: str, target: str, now_ns: int) -> None:
        opened = self.states.pop(workflow_id, None)
        if opened is not None and opened.state != state:  # it moved on elsewhere meanwhile
            opened.span.set_attribute("taskorch.exit_seen", False)
            opened.span.end(now_ns)
            opened = None
        if opened is None:
            # Entered in another process (or before a restart): a mark of when it ended.
            span = self._start_state(workflow_id, state, now_ns)
            span.set_attribute("taskorch.entry_seen", False)
        else:
            span = opened.span
        span.set_attribute("taskorch.next_state", target)
        span.end(now_ns)

    def _end_workflow(
        self, workflow_id: str, status: str, payload: dict[str, Any], now_ns: int
    ) -> None:
        started = _ns(payload.get("started_at")) or self.created.pop(workflow_id, None) or now_ns
        root = self._start(
            f"workflow {workflow_id}",
            workflow_id,
            min(started, now_ns),
            {"taskorch.status": status},
            span_id=root_span_id_of(workflow_id),
            root=True,
        )
        if status != "merged":
            from opentelemetry.trace import Status, StatusCode

            root.set_status(Status(StatusCode.ERROR, status))
        root.end(now_ns)
        self.created.pop(workflow_id, None)

    def close_open_states(self) -> None:
        """End the states this process is leaving (a workflow waiting for approval when ``run``
        ends): exported, marked, rather than lost."""
        now_ns = time.time_ns()
        for opened in self.states.values():
            opened.span.set_attribute("taskorch.exit_seen", False)
            opened.span.end(now_ns)
        self.states.clear()

    # attempts: from task:started to the event that says how it ended

    def _attempt_started(self, event: QueueEvent, now_ns: int) -> None:
        key = _attempt_key(event)
        if key is None:
            return
        self.attempts[key] = self._open_attempt(event, key, now_ns)
        _bound(self.attempts)

    def _open_attempt(self, event: QueueEvent, key: tuple[str, int, int], at_ns: int) -> Span:
        workflow_id, subtask_id, attempt = key
        attributes = {
            "taskorch.subtask_id": subtask_id,
            "taskorch.subtask": str(event.payload.get("key", "")),
            "taskorch.attempt": attempt,
        }
        if worker := event.payload.get("worker"):
            attributes["taskorch.worker"] = str(worker)
        return self._start(
            f"attempt {event.payload.get('key', subtask_id)}",
            workflow_id,
            at_ns,
            attributes,
            span_id=attempt_span_id_of(workflow_id, subtask_id, attempt),
        )

    def _attempt_ended(self, event: QueueEvent, now_ns: int) -> None:
        key = _attempt_key(event)
        if key is None:
            return
        opened = self.attempts.pop(key, None)
        if opened is None:  # started in a process that is gone (a zombie, a restart)
            opened = self._open_attempt(event, key, now_ns)
            opened.set_attribute("taskorch.start_seen", False)
        outcome = ATTEMPT_ENDS[event.kind]
        opened.set_attribute("taskorch.outcome", outcome)
        for name in ("agent", "error_class", "tokens_in", "tokens_out", "cost_usd"):
            value = event.payload.get(name)
            if isinstance(value, str | int | float):
                opened.set_attribute(f"taskorch.{name}", value)
        if outcome != "succeeded":
            from opentelemetry.trace import Status, StatusCode

            error = str(event.payload.get("error") or outcome)[:MAX_ERROR_CHARS]
            opened.set_status(Status(StatusCode.ERROR, error))
        opened.end(now_ns)


def _attempt_key(event: QueueEvent) -> tuple[str, int, int] | None:
    attempt = event.payload.get("attempt")
    if event.workflow_id is None or event.subtask_id is None or not isinstance(attempt, int):
        return None
    return event.workflow_id, event.subtask_id, attempt


def _ns(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1e9)
    except ValueError:
        return None


def _bound(spans: dict[Any, Any]) -> None:
    while len(spans) > MAX_OPEN_SPANS:
        del spans[next(iter(spans))]

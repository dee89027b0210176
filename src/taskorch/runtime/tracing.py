"""OpenTelemetry traces (the optional ``otel`` extra): one trace per workflow, across processes.

Off unless ``OTEL_TRACES_EXPORTER`` names ``otlp`` and/or ``console``; then, and only then,
``opentelemetry`` is imported (with the extra missing, one warning and no traces). Everything else
comes from the standard ``OTEL_*`` variables (endpoint, headers, service name, sampler, batch
sizes), read by the SDK itself.

The trace id and the root span id are derived from the workflow id (sha256), so every process
and host that touches a workflow (the driver, any ``taskorch worker``) puts its spans in the same
trace without asking anyone; the pipeline also stores them in the workflow's metadata
(``trace``, W3C ``traceparent``) for whoever wants to find the trace. The root span
``workflow <id>`` is exported by the process that ends the workflow.

Spans come from the event stream (:func:`trace_events`, called by the event bus): one per pipeline
state (entry to exit) and one per attempt (``task:started`` to its outcome); and from code run
for a workflow (:func:`span`: git commands, planner calls), whose workflow is named by
:func:`for_workflow` / :func:`enter_workflow`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskorch.store.outcomes import QueueEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("taskorch.tracing")

EXPORTERS = frozenset({"otlp", "console"})
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

_where: ContextVar[tuple[str, int | None, int | None] | None] = ContextVar(
    "taskorch_trace_where", default=None
)
"""The workflow (and subtask, attempt) the code running now works for."""


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


def trace_metadata(workflow_id: str) -> dict[str, Any] | None:
    """What the pipeline stores in a new workflow's metadata when tracing is on, else None."""
    if not enabled():
        return None
    trace_id = f"{trace_id_of(workflow_id):032x}"
    span_id = f"{root_span_id_of(workflow_id):016x}"
    return {
        "trace": {
            "trace_id": trace_id,
            "span_id": span_id,
            "traceparent": f"00-{trace_id}-{span_id}-01",
        }
    }


# --- switching on and off ----------------------------------------------------------------------

_tracing: _Tracing | None = None
_checked = False


def enabled() -> bool:
    """Is tracing on (``OTEL_TRACES_EXPORTER`` read once, the SDK set up the first time)?"""
    global _checked, _tracing
    if not _checked:
        _checked = True
        _tracing = _from_env()
    return _tracing is not None


def install(processor: SpanProcessor) -> None:
    """Trace into ``processor`` from now on, whatever the environment says (tests)."""
    global _checked, _tracing
    shutdown()
    _checked = True
    _tracing = _Tracing(_provider([processor]))


def shutdown() -> None:
    """Export what is pending and stop (the CLI calls this as it exits)."""
    global _checked, _tracing
    current, _tracing, _checked = _tracing, None, False
    if current is not None:
        current.provider.shutdown()


def flush() -> None:
    if _tracing is not None:
        _tracing.provider.force_flush()


def _requested() -> list[str]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").lower()
    return [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]


def _from_env() -> _Tracing | None:
    names = _requested()
    if not names:
        return None
    unknown = sorted(set(names) - EXPORTERS)
    if unknown:
        log.warning(
            "OTEL_TRACES_EXPORTER names %s, which taskorch does not support: use otlp or console",
            ", ".join(unknown),
        )
    try:
        processors = _processors([n for n in names if n in EXPORTERS])
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER is set but OpenTelemetry is not installed: "
            "pip install 'taskorch[otel]' to export traces; carrying on without them"
        )
        return None
    return _Tracing(_provider(processors)) if processors else None


def _processors(names: list[str]) -> list[SpanProcessor]:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    processors: list[SpanProcessor] = []
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in names:
        # stderr: stdout carries the commands' own output (--json)
        processors.append(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    return processors


def _provider(processors: list[SpanProcessor]) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class DerivedIds(IdGenerator):
        """Random ids, except for the spans whose ids are derived from the workflow."""

        random = RandomIdGenerator()

        def generate_span_id(self) -> int:
            forced = _forced.get()
            return forced[1] if forced else self.random.generate_span_id()

        def generate_trace_id(self) -> int:
            forced = _forced.get()
            return forced[0] if forced else self.random.generate_trace_id()

    resource = Resource.create({"process.pid": os.getpid()})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "taskorch"}))
    provider = TracerProvider(resource=resource, id_generator=DerivedIds())
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


_forced: ContextVar[tuple[int, int] | None] = ContextVar("taskorch_forced_ids", default=None)


# --- where the running code works --------------------------------------------------------------


@contextlib.contextmanager
def for_workflow(
    workflow_id: str, subtask_id: int | None = None, attempt: int | None = None
) -> Iterator[None]:
    """Spans opened inside belong to ``workflow_id``'s trace (under the attempt, if named)."""
    token = _where.set((workflow_id, subtask_id, attempt))
    try:
        yield
    finally:
        _where.reset(token)


def enter_workflow(workflow_id: str, subtask_id: int | None, attempt: int | None) -> None:
    """As :func:`for_workflow`, for the rest of the current asyncio task (its own context)."""
    _where.set((workflow_id, subtask_id, attempt))


class SpanNotes:
    """Attributes added to an open span; does nothing when tracing is off."""

    def __init__(self, span: Span | None = None) -> None:
        self._span = span

    def set(self, key: str, value: str | int | float | bool | None) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)


_NO_NOTES = SpanNotes()


@contextlib.contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[SpanNotes]:
    """A span around the block, in the trace of the workflow the code works for; outside any
    workflow, or with tracing off, nothing."""
    where = _where.get()
    if where is None or not enabled() or _tracing is None:
        yield _NO_NOTES
        return
    opened = _tracing.open_child(name, where, attributes)
    try:
        yield SpanNotes(opened)
    except BaseException as exc:
        _tracing.failed(opened, exc)
        raise
    finally:
        opened.end()


def trace_events(events: Sequence[QueueEvent]) -> None:
    """Spans from published events (the event bus calls this for every batch)."""
    if _checked and _tracing is None:
        return
    if enabled() and _tracing is not None:
        _tracing.on_events(events, time.time_ns())


# --- the spans ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenState:
    state: str
    span: Span


class _Tracing:
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
        token = _forced.set(forced)
        try:
            return self.tracer.start_span(
                name, context=context, attributes=attributes, start_time=at_ns
            )
        finally:
            _forced.reset(token)

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
        if opened is None or opened.state != state:
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

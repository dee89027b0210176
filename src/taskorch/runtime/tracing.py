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
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from taskorch.runtime.trace_spans import Tracing, forced_ids
from taskorch.runtime.trace_spans import attempt_span_id_of as attempt_span_id_of
from taskorch.runtime.trace_spans import root_span_id_of as root_span_id_of
from taskorch.runtime.trace_spans import trace_id_of as trace_id_of
from taskorch.store.outcomes import QueueEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span

log = logging.getLogger("taskorch.tracing")

EXPORTERS = frozenset({"otlp", "console"})

_where: ContextVar[tuple[str, int | None, int | None] | None] = ContextVar(
    "taskorch_trace_where", default=None
)
"""The workflow (and subtask, attempt) the code running now works for."""


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

_tracing: Tracing | None = None
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
    _tracing = Tracing(_provider([processor]))


def shutdown() -> None:
    """Export what is pending and stop (the CLI calls this as it exits)."""
    global _checked, _tracing
    current, _tracing, _checked = _tracing, None, False
    if current is not None:
        current.close_open_states()
        current.provider.shutdown()


def _requested() -> list[str]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").lower()
    return [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]


def _from_env() -> Tracing | None:
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
    return Tracing(_provider(processors)) if processors else None


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
            forced = forced_ids.get()
            return forced[1] if forced else self.random.generate_span_id()

        def generate_trace_id(self) -> int:
            forced = forced_ids.get()
            return forced[0] if forced else self.random.generate_trace_id()

    resource = Resource.create({"process.pid": os.getpid()})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "taskorch"}))
    provider = TracerProvider(resource=resource, id_generator=DerivedIds())
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


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

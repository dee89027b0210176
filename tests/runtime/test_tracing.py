"""OpenTelemetry traces, in process: a workflow run with the SDK's in-memory exporter installed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from taskorch.domain.models import NewTask, Subtask
from taskorch.domain.plan import Domain, WorkerType
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.runtime import tracing
from taskorch.settings import load_settings
from taskorch.store.outcomes import Outcome, QueueEvent, outcome_event

EVERY_STATE = {
    "pending",
    "nlp_parsing",
    "task_decomposition",
    "dependency_resolution",
    "agent_assignment",
    "processing",
    "pr_created",
    "validation_running",
    "validation_passed",
    "merged",
}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(spans))
    yield spans
    tracing.shutdown()


def names(spans: list[ReadableSpan], prefix: str) -> list[str]:
    return [s.name.removeprefix(prefix) for s in spans if s.name.startswith(prefix)]


async def test_a_workflow_is_one_trace_with_states_attempts_git_and_planner(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    settings = load_settings(taskorch_home=tmp_path / ".taskorch")
    async with open_engine(settings) as engine:
        task = await engine.add_task(
            NewTask.create("Add authentication system with security audit and documentation")
        )
        pool = await agents_for_run(engine, "sim")
        status = await engine.process_task(task.id, agents=pool)
        workflow = status.workflow
    assert status.state == "merged"
    spans = list(exporter.get_finished_spans())
    trace_id = tracing.trace_id_of(workflow.id)
    assert {s.context.trace_id for s in spans if s.context} == {trace_id}

    [root] = [s for s in spans if s.name == f"workflow {workflow.id}"]
    assert root.parent is None
    assert root.context is not None
    assert root.context.span_id == tracing.root_span_id_of(workflow.id)
    assert workflow.start_time is not None
    assert root.start_time is not None
    # the root span starts when the workflow did (a microsecond's rounding aside)
    assert abs(root.start_time - int(workflow.start_time.timestamp() * 1e9)) < 1_000_000
    stored = workflow.metadata["trace"]
    assert stored["trace_id"] == f"{trace_id:032x}"
    assert stored["traceparent"] == f"00-{trace_id:032x}-{stored['span_id']}-01"

    assert set(names(spans, "state ")) == EVERY_STATE
    assert all(
        s.parent is not None and s.parent.span_id == root.context.span_id
        for s in spans
        if s.name.startswith("state ")
    )

    attempts = [s for s in spans if s.name.startswith("attempt ")]
    assert sorted(names(spans, "attempt ")) == sorted(s.key for s in status.subtasks)
    for attempt in attempts:
        attributes = attempt.attributes or {}
        assert attributes["taskorch.outcome"] == "succeeded"
        assert attributes["taskorch.attempt"] == 1

    git = [s for s in spans if s.name.startswith("git ")]
    # A merge lands by merge-tree (or merge, or a tree taskorch merged) and reaches the origin
    # by push or, on this disk, by copying objects in (as loose files, or a pack).
    seen = {s.name for s in git}
    merges = {"git merge", "git merge-tree", "tree merged"}
    assert merges & {s.name for s in spans}, sorted(seen)
    assert {"git push", "objects copied"} & {s.name for s in spans}, sorted(seen)
    under_attempts = {a.context.span_id for a in attempts if a.context}
    assert any(s.parent is not None and s.parent.span_id in under_attempts for s in git)
    [planner] = [s for s in spans if s.name == "planner plan"]
    assert (planner.attributes or {})["taskorch.subtasks"] == len(status.subtasks)


async def test_outside_a_workflow_git_makes_no_span(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    from taskorch.runtime.git import git

    await git(tmp_path, "init", "-q")
    with tracing.for_workflow("wf-x"):
        await git(tmp_path, "status")
    assert [s.name for s in exporter.get_finished_spans()] == ["git status"]


CHECK_NO_IMPORT = """
import sys
from taskorch.cli.main import main
sys.argv = ["taskorch", "run", "Fix typo in README", "--json"]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
# fastapi and mcp import the OpenTelemetry API themselves: the SDK and exporters are ours
ours = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto")
loaded = sorted(m for m in sys.modules if m.startswith(ours))
print("LOADED", loaded)
"""


def test_with_tracing_off_the_opentelemetry_sdk_is_never_imported(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABASE_URL"))}
    env["TASKORCH_HOME"] = str(tmp_path / ".taskorch")
    result = subprocess.run(
        [sys.executable, "-c", CHECK_NO_IMPORT],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"merged"' in result.stdout
    assert "LOADED []" in result.stdout


@pytest.mark.parametrize("value", ["", "none", "None"])
def test_none_or_no_exporter_is_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    tracing.shutdown()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    try:
        assert not tracing.enabled()
        assert tracing.trace_metadata("wf-1") is None
    finally:
        tracing.shutdown()


WITHOUT_THE_EXTRA = """
import sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
from taskorch.runtime import tracing
print("ON", tracing.enabled(), tracing.enabled(), tracing.trace_metadata("wf-1"))
"""


def test_tracing_asked_for_without_the_extra_warns_once_and_carries_on(tmp_path: Path) -> None:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_EXTRA],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ON False False None" in result.stdout
    assert result.stderr.count("OpenTelemetry is not installed") == 1, result.stderr


def test_attempt_spans_carry_outcome_error_class_and_usage(exporter: InMemorySpanExporter) -> None:
    now = datetime.now(UTC)
    subtask = Subtask(
        id=7,
        workflow_id="wf-1",
        key="api-001",
        title="API",
        attempts=2,
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        created_at=now,
        updated_at=now,
    )
    retry = Outcome(
        subtask,
        "retry",
        now,
        now,
        agent_id="claude",
        error_class="rate_limit",
        error_message="429 from the API",
        tokens_in=1200,
        tokens_out=340,
        cost_usd=0.0123,
    )
    tracing.trace_events(
        [
            QueueEvent("task:started", "wf-1", 7, {"key": "api-001", "attempt": 2, "worker": "w"}),
            outcome_event("task:retry", retry),
            QueueEvent("task:zombie", "wf-1", 8, {"key": "ui-002", "attempt": 1, "error": "gone"}),
        ]
    )
    first, zombie = exporter.get_finished_spans()
    assert first.context is not None
    assert first.context.span_id == tracing.attempt_span_id_of("wf-1", 7, 2)
    assert dict(first.attributes or {}) | {"taskorch.worker": "w"} == {
        "taskorch.workflow_id": "wf-1",
        "taskorch.subtask_id": 7,
        "taskorch.subtask": "api-001",
        "taskorch.attempt": 2,
        "taskorch.worker": "w",
        "taskorch.outcome": "retry",
        "taskorch.agent": "claude",
        "taskorch.error_class": "rate_limit",
        "taskorch.tokens_in": 1200,
        "taskorch.tokens_out": 340,
        "taskorch.cost_usd": 0.0123,
    }
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "429 from the API"
    assert (zombie.attributes or {})["taskorch.start_seen"] is False
    assert (zombie.attributes or {})["taskorch.outcome"] == "zombie"


def test_a_state_entered_elsewhere_is_marked(exporter: InMemorySpanExporter) -> None:
    tracing.trace_events(
        [
            QueueEvent("workflow:transition", "wf-2", None, {"from": source, "to": target})
            for source, target in (("processing", "pr_created"), ("pr_created", "failed"))
        ]
    )
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert (spans["state processing"].attributes or {})["taskorch.entry_seen"] is False
    assert "taskorch.entry_seen" not in (spans["state pr_created"].attributes or {})
    assert spans["workflow wf-2"].status.status_code is StatusCode.ERROR
    assert set(spans) == {"state processing", "state pr_created", "state failed", "workflow wf-2"}

"""OpenTelemetry traces as a collector receives them: ``taskorch run`` and a second ``taskorch
worker`` process export over OTLP/HTTP to a receiver in the test, which decodes the protobuf."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from taskorch.runtime import tracing

TASKORCH = (sys.executable, "-m", "taskorch")
REQUIREMENT = "Add authentication system with security audit and documentation"
SIM_DURATION_S = "2"
"""Long enough that, with the driver running one subtask at a time, the second worker claims the
other one of the parallel pair (backend and frontend)."""
STATES = {
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


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: int
    pid: int
    attributes: dict[str, object]


class Receiver(BaseHTTPRequestHandler):
    spans: list[ReceivedSpan]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value for a in resource_spans.resource.attributes}
            pid = resource["process.pid"].int_value
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    trace_id = int.from_bytes(span.trace_id, "big")
                    self.spans.append(ReceivedSpan(span.name, trace_id, pid, attributes))
        status = 200 if self.path == "/v1/traces" else 404
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[ReceivedSpan]]]:
    spans: list[ReceivedSpan] = []
    handler = type("Handler", (Receiver,), {"spans": spans})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()
    server.server_close()


def _env(home: Path, endpoint: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "DB_", "DATABASE_URL", "TASKORCH_"))
    }
    return env | {
        "TASKORCH_HOME": str(home),
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def _wait_ready(worker: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(line.startswith("worker ") for line in log.read_text().splitlines()):
            return
        assert worker.poll() is None, log.read_text()
        time.sleep(0.1)
    pytest.fail(f"the worker did not start: {log.read_text()}")


def test_one_trace_covers_every_state_and_every_attempt_of_both_processes(
    receiver: tuple[str, list[ReceivedSpan]], tmp_path: Path
) -> None:
    endpoint, spans = receiver
    home = tmp_path / ".taskorch"
    home.mkdir()
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*TASKORCH, "worker", "--agent", "sim", "--sim-duration", SIM_DURATION_S],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(home, endpoint),
            cwd=tmp_path,
        )
    try:
        _wait_ready(worker, log)
        run = subprocess.run(
            [*TASKORCH, "run", REQUIREMENT, "--json", "--sim-duration", SIM_DURATION_S],
            capture_output=True,
            text=True,
            env=_env(home, endpoint) | {"TASKORCH_WORKER_CONCURRENCY": "1"},
            cwd=tmp_path,
            timeout=240,
            check=False,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert run.returncode == 0, run.stderr
    assert worker.returncode == 0, log.read_text()
    final = json.loads(run.stdout)
    assert final["state"] == "merged"

    trace_id = tracing.trace_id_of(final["workflow_id"])
    [parsing] = [h for h in final["history"] if h["to"] == "nlp_parsing"]
    assert parsing["metadata"]["trace"]["trace_id"] == f"{trace_id:032x}"
    assert {s.trace_id for s in spans} == {trace_id}
    states = {s.name.removeprefix("state ") for s in spans if s.name.startswith("state ")}
    assert states == STATES
    assert [s.name for s in spans].count(f"workflow {final['workflow_id']}") == 1

    attempts = [s for s in spans if s.name.startswith("attempt ")]
    tried = sorted((s["key"], a) for s in final["subtasks"] for a in range(1, s["attempts"] + 1))
    traced = sorted(
        (s.attributes["taskorch.subtask"], s.attributes["taskorch.attempt"]) for s in attempts
    )
    assert traced == tried
    assert all(s.attributes["taskorch.outcome"] == "succeeded" for s in attempts)
    assert worker.pid in {s.pid for s in attempts}, "the second worker ran no attempt"
    drivers = {s.pid for s in spans if s.name.startswith(("state ", "workflow ", "planner "))}
    assert len(drivers) == 1
    assert worker.pid not in drivers
    assert any(s.name.startswith("git ") and s.pid == worker.pid for s in spans)

"""``taskorch serve`` as a process: pending tasks from the database are carried to merged code,
events stream live, and SIGTERM mid-run loses nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from fakes.cli import taskorch
from fakes.origins import bare_origin, git, tip, url
from web.served import Served, status_json, taskorch_cli, wait_for

AUTH_TEXT = "Add authentication system with security audit and documentation"


def test_serve_picks_up_pending_tasks_from_the_database(
    serve_factory: Any, tmp_path: Path, database_url: str
) -> None:
    home = tmp_path / "home"
    # Stored before the server starts, the way the original "requirements from a database" are;
    # the second waits for the first (a task dependency).
    bug = "Fix bug in dashboard/server/index.js line 42"
    taskorch_cli(home, "task", "add", bug, database_url=database_url)
    taskorch_cli(
        home, "task", "add", "List all repositories", "--depends-on", "1", database_url=database_url
    )
    served: Served = serve_factory(home, database_url=database_url)
    first = served.wait_state(served.workflow_of(1)["workflow_id"], "merged")
    second = served.wait_state(served.workflow_of(2)["workflow_id"], "merged")
    assert first["end_time"] <= second["start_time"]
    metrics = httpx.get(served.url + "/metrics", timeout=30).text
    assert 'taskorch_workflows{state="merged"} 2.0' in metrics
    assert (
        'taskorch_subtask_attempt_duration_seconds_count{agent="sim",outcome="succeeded"} 2.0'
        in metrics
    )
    code, out, err = served.stop()
    assert code == 0, err
    assert "stopped: 2 workflow(s) started, 2 finished, 0 left to resume" in out


def test_a_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "taskorch",
                "--home",
                str(tmp_path),
                "serve",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_events_stream_a_workflow_live(serve_factory: Any, tmp_path: Path) -> None:
    served: Served = serve_factory(tmp_path / "home")
    seen: list[dict[str, Any]] = []
    subscribed = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", served.url + "/api/v1/events", timeout=120) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in response.iter_lines():
                subscribed.set()
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    event = json.loads(line.removeprefix("data: "))
                    assert event["event"] == kind
                    seen.append(event)
                    if event.get("to") == "merged":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(60)
    task = served.post("/api/v1/tasks", {"title": "Scan repository for security vulnerabilities"})
    workflow_id = served.workflow_of(task["id"])["workflow_id"]
    listener.join(120)
    assert not listener.is_alive()
    transitions = [e["to"] for e in seen if e["event"] == "workflow:transition"]
    assert transitions[0] == "pending"
    assert transitions[-1] == "merged"
    assert {"task:enqueued", "task:started", "task:complete"} <= {e["event"] for e in seen}
    assert {e["workflow_id"] for e in seen} == {workflow_id}
    code, _, err = served.stop()
    assert code == 0, err


def test_sigterm_mid_run_loses_nothing_and_a_restart_merges(
    serve_factory: Any, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    served: Served = serve_factory(home, sim_duration_s=1.5)
    task = served.post("/api/v1/tasks", {"title": "Auth", "description": AUTH_TEXT})
    workflow_id = served.workflow_of(task["id"])["workflow_id"]

    def running() -> list[str] | None:
        detail = served.get(f"/api/v1/workflows/{workflow_id}")
        keys = [s["key"] for s in detail["subtasks"] if s["status"] == "running"]
        return keys or None

    caught = wait_for("a running subtask", running)
    code, out, err = served.stop()
    assert code == 0, err
    assert "1 left to resume" in out

    stopped = status_json(home, workflow_id)
    assert stopped["state"] == "processing"
    states = {s["key"]: s["status"] for s in stopped["subtasks"]}
    # The attempts that were running finished and were stored; nothing is left mid-air.
    assert all(states[key] == "completed" for key in caught)
    assert not {"running", "assigned", "failed", "blocked"} & set(states.values())
    assert "pending" in states.values()  # there is work left for the restart

    again: Served = serve_factory(home, sim_duration_s=0.1)
    final = again.wait_state(workflow_id, "merged")
    # Every subtask ran exactly once: none lost, none run again after the restart.
    assert {s["key"]: s["attempts"] for s in final["subtasks"]} == dict.fromkeys(states, 1)
    code, out, err = again.stop()
    assert code == 0, err
    assert "resuming 1 unfinished" in out


def test_serve_repo_and_merge_approve_then_approve_over_http(
    serve_factory: Any, tmp_path: Path
) -> None:
    origin = bare_origin(tmp_path / "remote")
    before = tip(origin)
    home = tmp_path / "home"
    served: Served = serve_factory(home, "--repo", url(origin), "--merge", "approve")
    task = served.post("/api/v1/tasks", {"title": "Fix bug in dashboard/server/index.js line 42"})
    workflow_id = served.workflow_of(task["id"])["workflow_id"]

    def waiting() -> dict[str, Any] | None:
        detail: dict[str, Any] = served.get(f"/api/v1/workflows/{workflow_id}")
        return detail if detail["waiting_for"] == "approval" else None

    detail = wait_for("the workflow to wait for approval", waiting)
    assert detail["state"] == "validation_passed"
    target = {"repo": url(origin), "base_branch": "main", "merge_policy": "approve"}
    assert detail["target"] == target
    time.sleep(1.5)  # the daemon polls it meanwhile: it still waits, nothing merged
    assert served.get(f"/api/v1/workflows/{workflow_id}")["state"] == "validation_passed"
    assert tip(origin) == before
    merged = served.post(f"/api/v1/workflows/{workflow_id}/approve")
    assert merged["state"] == "merged"
    assert tip(origin) == merged["result"]["base_commit"]
    assert "simulated: bug-001-fix" in git(origin, "log", "--format=%s", "main")
    code, out, err = served.stop()
    assert code == 0, err
    assert f"tasks that name no repository go to {url(origin)} (merge policy approve)" in out
    assert "0 finished, 0 left to resume, 1 left for approval" in out
    assert "retrying later" not in err  # the daemon did not race the approval's merge


def test_serve_refuses_a_bad_repository_in_one_line(tmp_path: Path) -> None:
    nothing = (tmp_path / "nothing.git").as_uri()
    result = taskorch("serve", "--port", "0", "--repo", nothing, home=tmp_path / "home")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: git ls-remote failed")
    assert len(result.stderr.strip().splitlines()) == 1
    merge = taskorch("serve", "--port", "0", "--merge", "never", home=tmp_path / "home")
    assert merge.returncode == 1
    assert merge.stderr.strip() == ("error: merge policy 'never' is not one of: auto, approve")

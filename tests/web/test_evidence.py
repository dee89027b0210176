"""Every attempt's evidence in the HTTP API and in ``status --json``: tokens and cost per
attempt, subtask, workflow, agent and model (a scripted agent that reports usage as Aider prints
it), the tail of the output, the diff the attempt merged, and the live output file."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from taskorch.agents.registry import AgentSpec
from taskorch.cli.main import invoke
from taskorch.domain.models import Attempt, AttemptOutcome, NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.engine import OrchestrationEngine
from taskorch.engine.evidence import output_log_path, read_output
from taskorch.engine.setup import agents_for_run
from taskorch.engine.usage import cost_summary
from taskorch.store import Store
from web.fake_aider import write_fake_aider

BUGFIX = "Fix bug in app/models.py line 7"


async def _run_with_fake_aider(engine: OrchestrationEngine, tmp_path: Path) -> str:
    script = write_fake_aider(tmp_path / "bin")
    await engine.add_agent(AgentSpec(name="fake-aider", type="aider", executable=str(script)))
    task = await engine.add_task(NewTask.create("Fix the model bug", BUGFIX))
    pool = await agents_for_run(engine, "fake-aider")
    status = await engine.process_task(task.id, agents=pool, options={"agent": "fake-aider"})
    assert status.state == "merged", status.end_reason
    return status.workflow.id


async def test_attempts_carry_usage_output_and_diff(
    client: httpx.AsyncClient,
    engine: OrchestrationEngine,
    tmp_path: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = await _run_with_fake_aider(engine, tmp_path)
    detail = (await client.get(f"/api/v1/workflows/{workflow_id}")).json()
    keys = [s["key"] for s in detail["subtasks"]]
    cost = detail["cost"]
    # every attempt printed "Cost: $0.03 session" and 2.5k + 300 tokens
    assert cost["attempts"] == len(keys)
    assert cost["cost_usd"] == round(0.03 * len(keys), 6)
    assert cost["tokens_in"] == 2500 * len(keys)
    assert cost["tokens_out"] == 300 * len(keys)
    assert set(cost["by_agent"]) == {"fake-aider"}
    assert cost["by_model"]["openai/gpt-fake"]["attempts"] == len(keys)
    assert cost["unreported_attempts"] == 0
    assert all(s["cost_usd"] == 0.03 for s in detail["subtasks"])
    assert cost["by_subtask"][keys[0]]["tokens_out"] == 300

    response = await client.get(f"/api/v1/workflows/{workflow_id}/subtasks/{keys[0]}/attempts")
    assert response.status_code == 200
    [attempt] = response.json()
    assert attempt["agent"] == "fake-aider"
    assert attempt["model"] == "openai/gpt-fake"
    assert attempt["outcome"] == "succeeded"
    assert attempt["running"] is False
    assert (attempt["tokens_in"], attempt["tokens_out"], attempt["cost_usd"]) == (2500, 300, 0.03)
    assert attempt["started_at"]
    assert attempt["ended_at"]
    assert attempt["output_source"] == "live"
    assert "working: step 3" in attempt["output_tail"]
    assert "Tokens: 2.5k sent" in attempt["output_tail"]
    assert attempt["commit"]
    assert "+written by the fake aider" in attempt["diff"]
    assert attempt["diff"].startswith("diff --git a/fake-aider/")
    assert attempt["diff_truncated"] is False

    output = await client.get(
        f"/api/v1/workflows/{workflow_id}/subtasks/{keys[0]}/output", params={"offset": 0}
    )
    body = output.json()
    assert body["available"] is True
    assert body["running"] is False
    assert body["text"].startswith("Main model: openai/gpt-fake")
    more = await client.get(
        f"/api/v1/workflows/{workflow_id}/subtasks/{keys[0]}/output",
        params={"offset": body["next_offset"]},
    )
    assert more.json()["text"] == ""

    # the list pages: the dashboard asks for 51 from an offset to know there is a next page
    paged = await client.get("/api/v1/workflows", params={"limit": 51, "offset": 0})
    assert [w["workflow_id"] for w in paged.json()] == [workflow_id]
    assert (await client.get("/api/v1/workflows", params={"offset": 1})).json() == []
    assert (await client.get("/api/v1/workflows", params={"offset": -1})).status_code == 422

    missing = await client.get(f"/api/v1/workflows/{workflow_id}/subtasks/nope/attempts")
    assert missing.status_code == 404
    assert "no subtask 'nope'" in missing.json()["detail"]
    bad = await client.get(f"/api/v1/workflows/{workflow_id}/subtasks/a%20b/attempts")
    assert bad.status_code == 422
    assert (await client.get("/api/v1/workflows/wf-nothere/subtasks/a/output")).status_code == 404

    # the same figures in the CLI (in a thread: the CLI runs its own event loop)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    home = str(engine.settings.home)
    shown = await asyncio.to_thread(_cli, "--home", home, "status", workflow_id, "--json")
    assert json.loads(shown)["cost"] == cost
    [first] = [a for a in json.loads(shown)["attempts"] if a["subtask"] == keys[0]]
    assert (first["agent"], first["model"]) == ("fake-aider", "openai/gpt-fake")
    assert first["cost_usd"] == 0.03
    text = await asyncio.to_thread(_cli, "--home", home, "status", workflow_id)
    flat = re.sub(r"[│├└─\s]+", " ", text)  # as one line, however the terminal wraps it
    assert f"cost: ${0.03 * len(keys):.4f} · 2,500 in / 300 out tokens · 1 attempt" in flat
    # (a tree line longer than the terminal is cut: its start fits in 80 columns)
    assert "├── attempt 1 fake-aider (openai/gpt-fake) succeeded" in text
    listed = await asyncio.to_thread(_cli, "--home", home, "status")
    assert "$0.0300" in listed
    metrics = await asyncio.to_thread(_cli, "--home", home, "metrics", "--json")
    assert json.loads(metrics)["cost"]["by_agent"]["fake-aider"]["cost_usd"] == 0.03
    assert json.loads(metrics)["cost"]["by_model"]["openai/gpt-fake"]["attempts"] == 1
    table = await asyncio.to_thread(_cli, "--home", home, "metrics")
    assert "fake-aider" in table
    assert "0.0300" in table


def _cli(*argv: str) -> str:
    """``taskorch ARGV`` in this process: its stdout (the exit code must be 0)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = invoke(list(argv))
    assert code == 0, err.getvalue()
    return out.getvalue()


def test_an_agent_that_reports_no_usage_is_counted_as_unreported_not_free() -> None:
    now = datetime.now(UTC)
    attempts = [
        ("a", Attempt(id=1, subtask_id=1, number=1, agent_id="sim", started_at=now)),
        ("a", Attempt(id=2, subtask_id=1, number=2, agent_id="x", started_at=now, cost_usd=0.5)),
        ("b", Attempt(id=3, subtask_id=2, number=1, agent_id="x", started_at=now, tokens_in=7)),
    ]
    summary = cost_summary(attempts, agent_models={"x": "big-model"}).to_dict()
    assert (summary["cost_usd"], summary["tokens_in"], summary["tokens_out"]) == (0.5, 7, None)
    assert (summary["attempts"], summary["unreported_attempts"]) == (3, 1)
    assert summary["by_agent"]["sim"]["cost_usd"] is None
    assert summary["by_model"]["big-model"]["attempts"] == 2
    assert summary["by_model"]["unknown"]["unreported_attempts"] == 1
    assert summary["by_subtask"]["a"]["cost_usd"] == 0.5


def test_live_output_is_read_from_an_offset_without_cutting_a_character(tmp_path: Path) -> None:
    path = output_log_path(tmp_path, "wf-1", "a-1", 2)
    assert path is not None
    assert output_log_path(tmp_path, "wf-1", "../x", 2) is None
    path.parent.mkdir(parents=True)
    path.write_bytes("héllo ".encode() + "wörld".encode()[:2])  # "w" and half of "ö"
    first = read_output(path, 0, running=True)
    assert first.text == "héllo w"
    path.write_bytes("héllo wörld".encode())
    rest = read_output(path, first.next_offset, running=False)
    assert rest.text == "örld"
    assert read_output(None, 5, running=True).available is False


async def test_the_usage_queries_on_both_backends(store: Store) -> None:
    task = await store.create_task(NewTask.create("Add login"))
    workflow = await store.create_workflow(task.id)
    [a, b] = await store.add_subtasks(workflow.id, [_planned("a"), _planned("b")], {"a": 1, "b": 1})
    first = await store.start_attempt(a.id, 1, agent_id="x", worker_id=None)
    await store.finish_attempt(first.id, AttemptOutcome.FAILED, tokens_in=10, cost_usd=0.25)
    second = await store.start_attempt(b.id, 1, agent_id="x", worker_id=None)
    await store.finish_attempt(second.id, AttemptOutcome.SUCCEEDED)
    await store.start_attempt(b.id, 2, agent_id="y", worker_id=None)  # still running
    listed = await store.workflow_attempts(workflow.id)
    assert [(key, x.number) for key, x in listed] == [("a", 1), ("b", 1), ("b", 2)]
    rows = {r["agent_id"]: r for r in await store.attempt_usage_by_agent()}
    assert set(rows) == {"x"}  # the running attempt has not ended
    assert rows["x"]["attempts"] == 2
    assert rows["x"]["unreported"] == 1
    assert rows["x"]["tokens_in"] == 10
    assert rows["x"]["tokens_out"] is None
    assert rows["x"]["cost_usd"] == pytest.approx(0.25)
    assert rows["x"]["model"] is None


def _planned(key: str) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=key,
        parent_task_id="task-1",
        title=f"Do {key}",
        description=key,
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
    )

"""The REST API in-process: tasks, workflows, parse, agents, health, metrics, errors."""

from __future__ import annotations

from pathlib import Path

import httpx

from fakes.origins import bare_origin, tip, url
from taskorch.engine import OrchestrationEngine
from taskorch.engine.setup import agent_adapters
from taskorch.http.prometheus import active_by_agent
from taskorch.runtime.metrics import AgentMetrics, RuntimeMetrics

AUTH_TEXT = "Add authentication system with security audit and documentation"


async def test_create_list_and_get_tasks(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/tasks", json={"title": "Add login", "description": AUTH_TEXT, "priority": "high"}
    )
    assert created.status_code == 201
    task = created.json()
    assert task["ref"] == f"task-{task['id']}"
    assert task["status"] == "pending"
    assert task["priority"] == "high"
    for ref in (str(task["id"]), task["ref"]):
        got = await client.get(f"/api/v1/tasks/{ref}")
        assert got.status_code == 200
        assert got.json()["title"] == "Add login"
    listed = (await client.get("/api/v1/tasks", params={"status": "pending"})).json()
    assert [t["id"] for t in listed] == [task["id"]]
    second = await client.post(
        "/api/v1/tasks", json={"title": "Add logout", "dependencies": [task["id"]]}
    )
    assert second.json()["dependencies"] == [task["id"]]


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    cases = [
        ({"title": "   "}, ["body", "title"]),
        ({"title": "x", "priority": "urgent"}, ["body", "priority"]),
        ({"title": "x", "dependencies": [999]}, ["body", "dependencies"]),
        ({"description": "no title"}, ["body", "title"]),
        ({"title": "x", "colour": "red"}, ["body", "colour"]),
        # JSON true is not task 1, nor "1" an integer (found by schemathesis)
        ({"title": "x", "dependencies": [True]}, ["body", "dependencies", 0]),
        ({"title": "x", "dependencies": ["1"]}, ["body", "dependencies", 0]),
    ]
    for body, field in cases:
        response = await client.post("/api/v1/tasks", json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"] == field, response.json()
    bad_limit = await client.get("/api/v1/workflows", params={"limit": 0})
    assert bad_limit.status_code == 422
    assert bad_limit.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/tasks/task-424242", "/api/v1/workflows/wf-nothere"):
        response = await client.get(path)
        assert response.status_code == 404
        assert "no " in response.json()["detail"]
    assert (await client.post("/api/v1/workflows/wf-nothere/cancel", json={})).status_code == 404


async def test_a_merged_workflow_in_detail(
    client: httpx.AsyncClient, engine: OrchestrationEngine
) -> None:
    task = await client.post("/api/v1/tasks", json={"title": "Auth", "description": AUTH_TEXT})
    status = await engine.process_task(
        task.json()["id"], agents=agent_adapters(engine, "sim"), options={"agent": "sim"}
    )
    assert status.state == "merged"
    listed = (await client.get("/api/v1/workflows")).json()
    assert listed[0]["workflow_id"] == status.workflow.id
    assert listed[0]["title"] == "Auth"
    assert listed[0]["progress_percent"] == 100.0
    detail = (await client.get(f"/api/v1/workflows/{status.workflow.id}")).json()
    assert detail["state"] == "merged"
    assert detail["stages"] == [
        ["auth-001-design"],
        ["auth-002-backend", "auth-003-frontend"],
        ["auth-004-tests"],
        ["auth-005-audit"],
        ["auth-006-docs"],
    ]
    backend = next(s for s in detail["subtasks"] if s["key"] == "auth-002-backend")
    assert backend["dependencies"] == ["auth-001-design"]
    assert backend["stage"] == 2
    assert backend["status"] == "completed"
    assert backend["agent"] == "sim"
    assert backend["attempts"] == 1
    assert [h["to"] for h in detail["history"]][-1] == "merged"
    assert detail["pull_request"]["commits_count"] >= 6
    # Past the pull request nothing can be cancelled: 409 naming both states.
    refused = await client.post(f"/api/v1/workflows/{status.workflow.id}/cancel", json={})
    assert refused.status_code == 409
    assert "merged -> cancelled" in refused.json()["detail"]
    only = (await client.get("/api/v1/workflows", params={"state": "merged", "limit": 1})).json()
    assert len(only) == 1
    metrics = (await client.get("/metrics")).text
    for line in (
        'taskorch_workflows{state="merged"} 1.0',
        'taskorch_subtasks{state="completed"} 6.0',
        'taskorch_subtask_attempts_total{agent="sim",error_class="",outcome="succeeded"} 6.0',
        'taskorch_subtask_successes_total{agent="sim"} 6.0',
        'taskorch_workflow_duration_seconds_count{state="merged"} 1.0',
    ):
        assert line in metrics, line
    summary = (await client.get("/api/v1/metrics")).json()
    assert summary["workflows_by_state"] == {"merged": 1}
    assert (summary["attempts"], summary["successes"], summary["success_rate"]) == (6, 6, 1.0)


async def test_cancel_a_workflow_before_it_runs(
    client: httpx.AsyncClient, engine: OrchestrationEngine
) -> None:
    task = await engine.get_task(
        (await client.post("/api/v1/tasks", json={"title": "Add login"})).json()["id"]
    )
    workflow = await engine.pipeline().start(task)
    response = await client.post(f"/api/v1/workflows/{workflow.id}/cancel", json={})
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert (await client.get(f"/api/v1/tasks/{task.id}")).json()["status"] == "cancelled"


async def test_parse_returns_a_plan_without_storing(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/parse", json={"text": AUTH_TEXT})
    assert response.status_code == 200
    body = response.json()
    assert body["planner"].startswith("heuristic")
    assert len(body["plan"]["subtasks"]) == 6
    assert "stage_1" in body["plan"]["execution_plan"]
    assert (await client.get("/api/v1/tasks")).json() == []
    assert (await client.post("/api/v1/parse", json={"text": ""})).status_code == 422


async def test_health_agents_and_metrics(client: httpx.AsyncClient) -> None:
    health = (await client.get("/api/v1/health")).json()
    assert health["status"] == "ok"
    assert health["components"]["database"]["status"] == "ok"
    assert health["components"]["planner"] == {
        "status": "ok",
        "detail": "heuristic (offline)",
        "info": {"provider": "heuristic"},
    }
    assert health["components"]["agents"]["status"] == "ok"
    # The specification's names for the same components, with the same values.
    assert health["components"]["nlp"] == health["components"]["planner"]
    assert health["components"]["agentCoordinator"] == health["components"]["agents"]
    agents = (await client.get("/api/v1/agents")).json()
    assert agents[-1]["simulated"] is True
    assert agents[-1]["max_concurrency"] == 5
    summary = (await client.get("/api/v1/metrics")).json()
    assert summary["attempts"] == 0
    assert summary["queue_depth"] == 0
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        'taskorch_workflows{state="merged"} 0.0',
        'taskorch_subtasks{state="queued"} 0.0',
        "taskorch_queue_depth 0.0",
        "taskorch_zombies_total 0.0",
        "# TYPE taskorch_workflow_duration_seconds histogram",
        "# TYPE taskorch_subtask_attempt_duration_seconds histogram",
        "# TYPE taskorch_subtask_attempts_total counter",
    ):
        assert name in metrics.text, name


async def test_registered_agents_are_listed(
    client: httpx.AsyncClient, engine: OrchestrationEngine
) -> None:
    from taskorch.agents.registry import AgentSpec

    await engine.add_agent(AgentSpec(name="claude", type="claude-code"))
    agents = (await client.get("/api/v1/agents")).json()
    assert [a["name"] for a in agents] == ["claude", "sim (simulated)"]
    assert agents[0]["simulated"] is False
    assert agents[0]["attempts"] == 0
    health = (await client.get("/api/v1/health")).json()
    assert "agent:claude" in health["components"]
    metrics = (await client.get("/metrics")).text
    assert 'taskorch_agent_utilisation{agent="claude"} 0.0' in metrics
    status = health["components"]["agent:claude"]["info"]["agent_status"]
    assert f'taskorch_agent_status{{agent="claude",status="{status}"}} 1.0' in metrics


async def test_openapi_document_and_dashboard(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = set(schema["paths"])
    assert {
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/workflows",
        "/api/v1/workflows/{workflow_id}",
        "/api/v1/workflows/{workflow_id}/cancel",
        "/api/v1/workflows/{workflow_id}/approve",
        "/api/v1/workflows/{workflow_id}/reject",
        "/api/v1/parse",
        "/api/v1/agents",
        "/api/v1/health",
        "/api/v1/metrics",
        "/api/v1/events",
    } <= paths
    page = await client.get("/")
    assert page.status_code == 200
    assert 'src="static/app.js"' in page.text
    # the form names the repository and merge policy; a waiting workflow has its buttons
    for element in ('id="repo"', 'id="merge"', 'id="wf-approve"', 'id="wf-reject"'):
        assert element in page.text
    assert "http://" not in page.text  # nothing from a CDN
    assert "https://" not in page.text
    assert (await client.get("/workflows/wf-anything")).status_code == 200
    for asset in ("app.js", "style.css", "favicon.svg"):
        assert (await client.get(f"/static/{asset}")).status_code == 200


def test_running_attempts_of_unassigned_subtasks_count_for_the_default_agent() -> None:
    metrics = RuntimeMetrics(
        subtasks_by_state={"running": 3, "assigned": 1, "queued": 4},
        attempts=0,
        successes=0,
        failures=0,
        zombies=0,
        mean_execution_s=0.0,
        throughput_per_s=0.0,
        errors_by_class={},
        agents={"claude": AgentMetrics(attempts=2, successes=2, mean_s=1.0, active=1)},
    )
    assert active_by_agent(metrics) == {"claude": 1, "sim": 3}


async def test_tasks_carry_their_repository_and_merge_policy(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    origin = bare_origin(tmp_path / "remote", "develop")
    body = {
        "title": "Add login",
        "repo": url(origin),
        "base_branch": "develop",
        "merge_policy": "approve",
    }
    created = await client.post("/api/v1/tasks", json=body)
    assert created.status_code == 201, created.text
    task = created.json()
    assert (task["repo"], task["base_branch"], task["merge_policy"]) == (
        url(origin),
        "develop",
        "approve",
    )
    assert (await client.get(f"/api/v1/tasks/{task['id']}")).json()["repo"] == url(origin)
    plain = (await client.post("/api/v1/tasks", json={"title": "Add logout"})).json()
    assert (plain["repo"], plain["base_branch"], plain["merge_policy"]) == (None, None, None)
    cases: list[tuple[dict[str, str], str]] = [
        ({"merge_policy": "later"}, "merge_policy"),
        ({"repo": str(tmp_path)}, "repo"),
        ({"repo": "https://me:secret@example.com/app.git"}, "repo"),
        ({"repo": "ftp://example.com/app.git"}, "repo"),
        ({"repo": "http://[::1"}, "repo"),
        ({"repo": url(tmp_path / "nothing.git")}, "repo"),
        ({"repo": url(origin), "base_branch": "release"}, "repo"),
        ({"base_branch": "a..b"}, "base_branch"),
        ({"repo": ""}, "repo"),
        ({"repo": "0" * 2000}, "repo"),  # a name too long for the file system
    ]
    for extra, field in cases:
        response = await client.post("/api/v1/tasks", json={"title": "x", **extra})
        assert response.status_code == 422, (extra, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", field], response.json()
        assert "secret" not in response.text
    assert len((await client.get("/api/v1/tasks")).json()) == 2


async def test_approve_and_reject_a_workflow_that_waits(
    client: httpx.AsyncClient, engine: OrchestrationEngine, tmp_path: Path
) -> None:
    origin = bare_origin(tmp_path / "remote")
    before = tip(origin)
    # GitDelivery.target runs `git ls-remote` in the data folder, which must exist by then.
    engine.settings.home.mkdir(parents=True, exist_ok=True)
    ids = []
    for title in ("Fix bug in dashboard/server/index.js line 42", "List all repositories"):
        body = {"title": title, "repo": url(origin), "merge_policy": "approve"}
        ids.append((await client.post("/api/v1/tasks", json=body)).json()["id"])
    statuses = await engine.process_batch(
        ids, agents=agent_adapters(engine, "sim"), options={"agent": "sim"}
    )
    assert [s.waiting_for for s in statuses] == ["approval", "approval"]
    first, second = (s.workflow.id for s in statuses)
    listed = (await client.get("/api/v1/workflows")).json()
    assert {w["workflow_id"]: w["waiting_for"] for w in listed} == {
        first: "approval",
        second: "approval",
    }
    detail = (await client.get(f"/api/v1/workflows/{first}")).json()
    assert (detail["state"], detail["waiting_for"]) == ("validation_passed", "approval")
    target = {"repo": url(origin), "base_branch": "main", "merge_policy": "approve"}
    assert detail["target"] == target
    assert tip(origin) == before

    approved = await client.post(f"/api/v1/workflows/{first}/approve", json={})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["waiting_for"]) == ("merged", None)
    assert tip(origin) == approved.json()["result"]["base_commit"]
    merged_tip = tip(origin)
    again = await client.post(f"/api/v1/workflows/{first}/approve", json={})
    assert again.status_code == 409
    assert "only a validated workflow" in again.json()["detail"]

    assert (await client.post(f"/api/v1/workflows/{second}/reject", json={})).status_code == 422
    blank = await client.post(f"/api/v1/workflows/{second}/reject", json={"reason": "  "})
    assert blank.status_code == 422
    rejected = await client.post(f"/api/v1/workflows/{second}/reject", json={"reason": "not now"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state"] == "failed"
    assert rejected.json()["result"]["reason"] == "rejected: not now"
    assert tip(origin) == merged_tip  # nothing of the rejected workflow reached main
    assert (await client.post(f"/api/v1/workflows/{second}/approve", json={})).status_code == 409
    unknown: list[tuple[str, dict[str, str]]] = [
        ("approve", {}),
        ("reject", {"reason": "x"}),
    ]
    for action, reason in unknown:
        response = await client.post(f"/api/v1/workflows/wf-nothere/{action}", json=reason)
        assert response.status_code == 404

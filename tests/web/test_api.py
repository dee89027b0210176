"""The REST API in-process: tasks, workflows, parse, agents, health, metrics, errors."""

from __future__ import annotations

import httpx

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
    assert (await client.post("/api/v1/workflows/wf-nothere/cancel")).status_code == 404


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
    refused = await client.post(f"/api/v1/workflows/{status.workflow.id}/cancel")
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
    response = await client.post(f"/api/v1/workflows/{workflow.id}/cancel")
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
        "/api/v1/parse",
        "/api/v1/agents",
        "/api/v1/health",
        "/api/v1/metrics",
        "/api/v1/events",
    } <= paths
    page = await client.get("/")
    assert page.status_code == 200
    assert "/static/app.js" in page.text
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

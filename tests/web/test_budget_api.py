"""``POST /api/v1/workflows/{id}/budget`` in-process: the caps are set and the answer carries
the ``budget`` figures; bad input is a 422 naming it."""

from __future__ import annotations

import httpx

from taskorch.engine import OrchestrationEngine


async def test_set_a_workflows_budget_over_http(
    client: httpx.AsyncClient, engine: OrchestrationEngine
) -> None:
    created = await client.post("/api/v1/tasks", json={"title": "Add login"})
    task = await engine.get_task(created.json()["id"])
    workflow = await engine.pipeline().start(task)
    url = f"/api/v1/workflows/{workflow.id}/budget"

    response = await client.post(url, json={"usd": 5, "tokens": 200_000})
    assert response.status_code == 200, response.text
    budget = response.json()["budget"]
    assert budget == {
        "cap_usd": 5.0,
        "spent_usd": 0.0,
        "predicted_usd": None,
        "waiting": False,
        "cap_tokens": 200_000,
        "spent_tokens": 0,
        "counted_by": "cost",
    }
    raised = await client.post(url, json={"usd": 7.5})  # the token cap stays
    assert raised.json()["budget"]["cap_usd"] == 7.5
    assert raised.json()["budget"]["cap_tokens"] == 200_000
    shown = await client.get(f"/api/v1/workflows/{workflow.id}")
    assert shown.json()["budget"]["cap_usd"] == 7.5

    assert (await client.post(url, json={"usd": -1})).status_code == 422
    assert (await client.post(url, json={"tokens": True})).status_code == 422  # not 1 token
    assert (await client.post(url, json={"usd": "5"})).status_code == 422
    shown_again = await client.post(url, json={})  # nothing to change: as it is
    assert shown_again.status_code == 200
    assert shown_again.json()["budget"]["cap_usd"] == 7.5
    assert (await client.post(url, json={"usd": 1, "what": 2})).status_code == 422
    missing = await client.post("/api/v1/workflows/wf-0000000000/budget", json={"usd": 1})
    assert missing.status_code == 404
    await engine.cancel_workflow(workflow.id)
    ended = await client.post(url, json={"usd": 1})
    assert ended.status_code == 409
    assert "has ended (cancelled)" in ended.json()["detail"]

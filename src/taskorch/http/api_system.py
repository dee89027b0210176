"""``/api/v1``: parse, agents, health, metrics summary and the live event stream."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from taskorch.domain.errors import InputError, PlanError
from taskorch.engine import OrchestrationEngine
from taskorch.http.api_work import CHANGES, engine_of
from taskorch.http.errors import StrictJSONRoute
from taskorch.http.events import event_stream
from taskorch.http.guard import same_site_json
from taskorch.http.prometheus import active_by_agent
from taskorch.http.schemas import (
    WORKFLOW_ID_PATTERN,
    AgentOut,
    ComponentOut,
    HealthOut,
    MetricsOut,
    ParseIn,
    ParseOut,
)
from taskorch.planning import TaskNLP
from taskorch.runtime.metrics import AgentMetrics

router = APIRouter(
    prefix="/api/v1", route_class=StrictJSONRoute, dependencies=[Depends(same_site_json)]
)


@router.post("/parse", tags=["planning"], responses=CHANGES)
async def parse(body: ParseIn, request: Request) -> ParseOut:
    """Turn a requirement into a plan (subtasks, stages, estimates) without storing anything."""
    try:
        async with TaskNLP.from_settings(engine_of(request).settings) as nlp:
            result = await nlp.plan(body.text, body.context)
    except (InputError, PlanError) as exc:  # nothing to plan in it, or a plan that breaks a rule
        raise InputError(f"text: {exc.message}") from None
    return ParseOut(planner=result.describe(), plan=result.plan.to_dict())


@router.get("/agents", tags=["agents"])
async def agents(request: Request) -> list[AgentOut]:
    """The registered agents with their load and track record, then the simulated agent this
    server runs unassigned subtasks on (if any)."""
    return await agent_rows(engine_of(request), request.app.state.local_agents)


async def agent_rows(engine: OrchestrationEngine, local: list[dict[str, Any]]) -> list[AgentOut]:
    rows = [_registered(info.to_json()) for info in await engine.list_agents()]
    if local:
        metrics = await engine.get_metrics()
        active = active_by_agent(metrics)
        for agent in local:
            rows.append(_local(agent, metrics.agents.get(agent["id"]), active.get(agent["id"], 0)))
    return rows


def _registered(data: dict[str, Any]) -> AgentOut:
    record = data["track_record"]
    return AgentOut(
        id=data["id"],
        name=data["name"],
        type=data["type"],
        adapter=data["adapter"],
        status=data["status"],
        simulated=False,
        max_concurrency=data["max_concurrency"],
        active=data["active"],
        utilisation=data["utilisation"],
        attempts=record["attempts"],
        successes=record["successes"],
        success_rate=record["success_rate"],
        mean_s=record["mean_s"],
        p95_s=record["p95_s"],
        last_error=record["last_error"],
        capabilities=data["capabilities"],
        cost_usd=record["cost_usd"],
        rate_limited_until=(data["rate_window"] or {}).get("until"),
    )


def _local(agent: dict[str, Any], figures: AgentMetrics | None, active: int) -> AgentOut:
    limit = agent["max_concurrency"]
    return AgentOut(
        id=agent["id"],
        name=agent["name"],
        type=agent["type"],
        adapter="in-process (simulated)",
        status="available",
        simulated=True,
        max_concurrency=limit,
        active=active,
        utilisation=round(active / limit, 3) if limit else None,
        attempts=figures.attempts if figures else 0,
        successes=figures.successes if figures else 0,
        success_rate=round(figures.success_rate, 4) if figures and figures.attempts else None,
        mean_s=round(figures.mean_s, 3) if figures and figures.attempts else None,
    )


@router.get("/health", tags=["system"], responses={503: {"model": HealthOut}})
async def health(request: Request, response: Response) -> HealthOut:
    """Each component (database, planner, agents) as ok, degraded or down, with the reason.
    Answers 503 only when work cannot run (see ``HealthReport.status``)."""
    report = await engine_of(request).health_check()
    if report.status == "down":
        response.status_code = 503
    return HealthOut(
        status=report.status,
        components={
            name: ComponentOut(status=c.status, detail=c.detail, info=c.info)
            for name, c in report.components.items()
        },
    )


@router.get("/metrics", tags=["system"])
async def metrics_summary(request: Request) -> MetricsOut:
    """Workflows and subtasks by state, attempts, success rate, errors by class, queue depth."""
    engine = engine_of(request)
    metrics = await engine.get_metrics()
    status = await engine.get_status()
    return MetricsOut(
        workflows_by_state=status["workflows"],
        subtasks_by_state=metrics.subtasks_by_state,
        attempts=metrics.attempts,
        successes=metrics.successes,
        failures=metrics.failures,
        success_rate=round(metrics.success_rate, 4),
        zombies=metrics.zombies,
        queue_depth=metrics.queue_depth,
        mean_execution_s=round(metrics.mean_execution_s, 3),
        throughput_per_s=round(metrics.throughput_per_s, 3),
        errors_by_class=metrics.errors_by_class,
    )


@router.get(
    "/events",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An SSE stream."}},
)
async def events(
    request: Request,
    workflow_id: Annotated[str | None, Query(pattern=WORKFLOW_ID_PATTERN)] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> StreamingResponse:
    """Server-sent events: ``workflow:transition`` and the subtask events (``task:started``,
    ``task:complete``, ``task:retry``, ``task:failed``, ``task:zombie``, ...) as they happen;
    optionally only one workflow's, and ending after ``max_events``."""
    stream = event_stream(
        engine_of(request).events,
        request.app.state.stopping,
        workflow_id=workflow_id,
        max_events=max_events,
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

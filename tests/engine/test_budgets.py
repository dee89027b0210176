"""Budgets with the runtime for real: a scripted agent reports its usage the way Claude Code
(JSON result) and Aider (printed cost lines) do, parsed by the adapters' own parsers; a capped
workflow never spends more than its cap plus one attempt in flight, waits with the reason and
the figures, goes on when the budget is raised, and ends when cancelled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.agents.cli_reports import ReportFormat, parse_report
from taskorch.domain.budget import NOTHING
from taskorch.domain.models import JSONDict, NewTask, Subtask, Task, Workflow
from taskorch.domain.plan import Plan
from taskorch.engine import OrchestrationEngine
from taskorch.engine.pipeline import ValidationOutcome
from taskorch.engine.status import WorkflowStatus
from taskorch.settings import load_settings
from taskorch.store import Store

REQUIREMENT = "Add authentication system with security audit and documentation"
# The heuristic plan: design (10k estimated tokens), backend and frontend (15k each, in
# parallel), tests (12.5k), audit (10k), docs (7.5k).
USD_PER_ESTIMATED_TOKEN = 20 / 1_000_000  # twice the default price: the first prediction is low
DEADLINE_S = 60.0


class Delivery:
    async def target(self, task: Task, options: JSONDict) -> JSONDict:
        return options

    async def prepare(self, workflow: Workflow, plan: Plan) -> Plan:
        return plan

    async def verify(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> dict[str, str]:
        return {}

    async def open_pull_request(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> JSONDict:
        return {"branch": f"taskorch/{workflow.id}"}

    async def validate(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> ValidationOutcome:
        return ValidationOutcome(True, "tests passed")

    async def merge(self, workflow: Workflow) -> JSONDict:
        return {"base": "main"}

    async def cleanup(self, workflow: Workflow, *, cancelled: bool) -> None:
        pass


def claude_json(cost_usd: float | None, tokens: int) -> str:
    body: JSONDict = {
        "type": "result",
        "is_error": False,
        "result": "done",
        "usage": {"input_tokens": tokens - tokens // 4, "output_tokens": tokens // 4},
    }
    if cost_usd is not None:
        body["total_cost_usd"] = cost_usd
    return json.dumps(body)


def aider_lines(cost_usd: float | None, tokens: int) -> str:
    sent, received = tokens - tokens // 4, tokens // 4
    cost = f"\nCost: ${cost_usd:.4f} message, ${cost_usd:.4f} session." if cost_usd else ""
    return f"Applied edit to app.py\nTokens: {sent:,} sent, {received:,} received.{cost}"


class ScriptedAgent:
    """Reports, for each subtask, tokens equal to its estimate and (with ``priced``) a cost of
    :data:`USD_PER_ESTIMATED_TOKEN` per estimated token, in the chosen agent's own format."""

    def __init__(self, kind: ReportFormat, *, priced: bool = True) -> None:
        self.kind = kind
        self.priced = priced
        self.runs: list[str] = []
        self.spent_usd = 0.0
        self.costs: list[float] = []

    @property
    def name(self) -> str:
        return f"scripted-{self.kind}"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        tokens = task.subtask.estimated_tokens
        cost = tokens * USD_PER_ESTIMATED_TOKEN if self.priced else None
        script = claude_json if self.kind == "claude-json" else aider_lines
        report = parse_report(self.kind, script(cost, tokens))
        self.runs.append(task.subtask.key)
        self.costs.append(report.cost_usd or 0.0)
        return AgentResult(
            True,
            report.text,
            tokens_in=report.tokens_in,
            tokens_out=report.tokens_out,
            cost_usd=report.cost_usd,
        )


def settled_waiting(status: WorkflowStatus) -> bool:
    """Waiting for its budget with nothing running: every attempt that started has ended (the
    figures' own view: the subtasks are read a moment before them)."""
    figures = status.budget
    return status.waiting_for == "budget" and figures is not None and figures.in_flight == NOTHING


async def wait_for(
    engine: OrchestrationEngine, workflow_id: str, check: Callable[[WorkflowStatus], bool]
) -> WorkflowStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        try:
            status = await engine.get_workflow_status(workflow_id)
        except Exception:  # not created yet
            status = None
        if status is not None and check(status):
            return status
        assert loop.time() < deadline, "the workflow never got there"
        await asyncio.sleep(0.02)


async def start(
    store: Store, tmp_path: Path, agent: ScriptedAgent, budget: JSONDict
) -> tuple[OrchestrationEngine, asyncio.Task[WorkflowStatus], str]:
    settings = load_settings(taskorch_home=tmp_path / "home", nlp_provider="heuristic")
    engine = OrchestrationEngine(settings, store=store, delivery=Delivery())
    task = await engine.add_task(NewTask.create(REQUIREMENT))
    run = asyncio.create_task(
        engine.process_task(task.id, agents={None: agent}, options={"budget": budget})
    )
    while not (workflows := await store.list_workflows()):
        assert not run.done(), run.result()
        await asyncio.sleep(0.01)
    return engine, run, workflows[0].id


async def test_a_capped_workflow_waits_within_its_cap_and_goes_on_when_raised(
    store: Store, tmp_path: Path
) -> None:
    agent = ScriptedAgent("claude-json")
    engine, run, workflow_id = await start(store, tmp_path, agent, {"usd": 0.60})

    waiting = await wait_for(engine, workflow_id, settled_waiting)
    budget = waiting.to_dict()["budget"]
    assert set(budget) == {
        "cap_usd",
        "spent_usd",
        "predicted_usd",
        "waiting",
        "cap_tokens",
        "spent_tokens",
        "counted_by",
    }
    # design ($0.20) then backend ($0.30, predicted from the design's measured rate); the
    # frontend's $0.30 would cross the cap: it waits, queued, and nothing runs.
    assert budget["cap_usd"] == 0.60
    assert budget["waiting"] is True
    assert budget["counted_by"] == "cost"
    assert budget["spent_usd"] <= 0.60 + max(agent.costs)
    assert budget["spent_usd"] == round(sum(agent.costs), 6)
    assert budget["predicted_usd"] == 0.30
    assert budget["spent_tokens"] == 25_000
    assert budget["cap_tokens"] is None
    assert waiting.state == "processing"
    assert not run.done()
    assert waiting.budget_line == "waiting: budget (spent $0.50 of $0.60, next attempt ~$0.30)"
    assert sorted(agent.runs) == ["auth-001-design", "auth-002-backend"]

    raised = await engine.set_budget(workflow_id, usd=5)
    assert raised.to_dict()["budget"]["cap_usd"] == 5.0
    final = await asyncio.wait_for(run, DEADLINE_S)
    assert final.state == "merged"
    assert len(agent.runs) == 6
    assert final.to_dict()["budget"]["spent_usd"] == round(sum(agent.costs), 6) == 1.40
    assert final.waiting_for is None


async def test_a_workflow_held_by_its_per_subtask_cap_ends_when_cancelled(
    store: Store, tmp_path: Path
) -> None:
    agent = ScriptedAgent("aider")
    engine, run, workflow_id = await start(store, tmp_path, agent, {"subtask_usd": 0.25})
    # design ($0.20 reported, predicted $0.10 from the default price) starts; the next subtasks
    # are predicted at $0.30 each from the design's measured rate: over the per-subtask cap
    waiting = await wait_for(engine, workflow_id, settled_waiting)
    assert agent.runs == ["auth-001-design"]
    assert waiting.to_dict()["budget"]["spent_usd"] == 0.20
    assert waiting.budget_line == (
        "waiting: budget (subtask auth-002-backend spent $0.00 of $0.25, next attempt ~$0.30)"
    )

    cancelled = await engine.cancel_workflow(workflow_id)
    assert cancelled.state == "cancelled"
    final = await asyncio.wait_for(run, DEADLINE_S)
    assert final.state == "cancelled"
    assert final.waiting_for is None
    assert agent.runs == ["auth-001-design"]


async def test_agents_that_report_no_cost_are_counted_by_tokens(
    store: Store, tmp_path: Path
) -> None:
    agent = ScriptedAgent("claude-json", priced=False)
    engine, run, workflow_id = await start(store, tmp_path, agent, {"tokens": 30_000})
    waiting = await wait_for(engine, workflow_id, settled_waiting)
    budget = waiting.to_dict()["budget"]
    # design (10k) and backend (15k) fit; the frontend's 15k more would cross 30k
    assert budget["counted_by"] == "tokens"
    assert budget["spent_tokens"] == 25_000
    assert budget["cap_usd"] is None
    assert waiting.budget_line == (
        "waiting: budget (spent 25,000 of 30,000 tokens, next attempt ~15,000 tokens)"
    )
    await engine.set_budget(workflow_id, tokens=1_000_000)
    assert (await asyncio.wait_for(run, DEADLINE_S)).state == "merged"

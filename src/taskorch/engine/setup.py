"""Ready-to-use engines for the faces (CLI, HTTP, MCP): git delivery from the settings, and the
agent adapters that run a workflow's subtasks in this process.

The faces call these instead of wiring the parts themselves, so every face delivers code and picks
agents the same way.
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from taskorch.agents.base import AgentAdapter
from taskorch.agents.briefed import BriefedAgent
from taskorch.agents.sim import SimBehaviour
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.best_of import allowed_candidates
from taskorch.domain.errors import ConfigError, InputError
from taskorch.domain.models import Subtask, Workflow
from taskorch.engine.agents import AgentPool
from taskorch.engine.best_of import BestOf, Cap, Pick, no_budget
from taskorch.engine.delivery import GitDelivery, WorkspaceAgent
from taskorch.engine.engine import OrchestrationEngine
from taskorch.runtime.github import GitHubConfig
from taskorch.settings import Settings
from taskorch.store import Store
from taskorch.store.budget import BudgetLedger

SIM_HEARTBEAT_S = 0.5


def git_delivery(settings: Settings, store: Store) -> GitDelivery:
    """Code delivery through git worktrees, validated by ``TASKORCH_TEST_COMMAND``, with a GitHub
    pull request when ``GITHUB_TOKEN`` is set."""
    github = (
        GitHubConfig(
            settings.github_token.get_secret_value(),
            settings.github_repository,
            settings.github_api_url,
        )
        if settings.github_token
        else None
    )
    return GitDelivery(
        store,
        settings.home,
        test_command=shlex.split(settings.test_command) if settings.test_command else None,
        test_timeout_s=settings.test_timeout_s,
        github=github,
        default_repo=settings.taskorch_repo,
        merge_policy=settings.merge_policy,
        worktrees=settings.worktrees_root,
    )


def delivering_engine(settings: Settings) -> OrchestrationEngine:
    """An engine (not yet initialised) that delivers code through git."""
    engine = OrchestrationEngine(settings)
    engine.delivery = git_delivery(settings, engine.store)
    return engine


@asynccontextmanager
async def open_engine(
    settings: Settings, *, create: bool = True
) -> AsyncIterator[OrchestrationEngine]:
    """``async with open_engine(settings) as engine``: initialised, delivering, closed after;
    ``create=False`` opens only a database that exists (see ``OrchestrationEngine.initialize``)."""
    engine = delivering_engine(settings)
    await engine.initialize(create=create)
    try:
        yield engine
    finally:
        await engine.shutdown()


def agent_adapters(
    engine: OrchestrationEngine, kind: str, sim_duration_s: float = 0.0
) -> dict[str | None, AgentAdapter]:
    """The adapters an in-process worker uses for a workflow run with ``--agent kind``."""
    if kind != "sim":
        raise InputError(f"unknown agent {kind!r}: use sim")
    if not isinstance(engine.delivery, GitDelivery):
        raise ConfigError("agents run in git worktrees: the engine needs git delivery")
    sim = SimWorktreeAgent(SimBehaviour(duration_s=sim_duration_s, heartbeat_s=SIM_HEARTBEAT_S))
    return {None: WorkspaceAgent(sim, engine.delivery, races({None: sim}, cap=budget_cap(engine)))}


async def agents_for_run(
    engine: OrchestrationEngine, kind: str = "auto", sim_duration_s: float = 0.0
) -> AgentPool:
    """The agents of a run with ``--agent kind``: ``sim`` (one simulated agent for every
    subtask), ``auto`` (routing among the registered agents; the simulated agent when none is
    registered, said in ``note``) or the name of one registered agent. Agents are probed first,
    so an unreachable one is marked offline and not chosen."""
    if kind == "sim":
        return AgentPool(agent_adapters(engine, "sim", sim_duration_s), mode="sim")
    delivery = engine.delivery
    if not isinstance(delivery, GitDelivery):
        raise ConfigError("agents run in git worktrees: the engine needs git delivery")
    if kind != "auto":
        await engine.get_agent(kind)  # a one-line error when there is no such agent
    await engine.agent_health()
    store = engine.store
    # Registered agents read their prompt: they hear where the subtask stands in the plan.
    pool = await engine.agent_directory.pool(
        kind, lambda inner: WorkspaceAgent(BriefedAgent(inner, store), delivery)
    )
    race_on(pool, budget_cap(engine))
    if kind == "auto" and not pool:
        sim = agent_adapters(engine, "sim", sim_duration_s)
        return AgentPool(
            sim,
            mode="sim",
            note="no usable agents registered (`taskorch agents list`): "
            "the subtasks run on the simulated agent",
        )
    return pool


def race_on(pool: AgentPool, cap: Cap = no_budget) -> None:
    """Let a best-of-N attempt of any of the pool's agents race on the others: each workspace
    agent gets the pool's agents (inside their workspace wrapping) and its routing."""
    inner = {key: a.inner for key, a in pool.items() if isinstance(a, WorkspaceAgent)}
    best_of = races(inner, pick=pool.another_candidate, cap=cap)
    for adapter in pool.values():
        if isinstance(adapter, WorkspaceAgent):
            adapter.best_of = best_of


def races(
    adapters: Mapping[str | None, AgentAdapter], pick: Pick | None = None, cap: Cap = no_budget
) -> BestOf:
    """What best-of-N attempts race on: ``adapters``, other agents chosen by ``pick``, and as
    many candidates as ``cap`` allows (:func:`budget_cap`: the workflow's budget)."""
    return BestOf(adapters, pick=pick, cap=cap)


def budget_cap(engine: OrchestrationEngine) -> Cap:
    """Best-of-N within budget: as many candidates as the workflow's USD cap still pays for at
    one candidate's predicted cost (never fewer than the one attempt already started)."""
    ledger = BudgetLedger(engine.queue)

    async def cap(subtask: Subtask, workflow: Workflow, wanted: int) -> int:
        remaining_usd, predicted_usd = await ledger.candidate_room(subtask)
        return allowed_candidates(wanted, remaining_usd=remaining_usd, predicted_usd=predicted_usd)

    return cap

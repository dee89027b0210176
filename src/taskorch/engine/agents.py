"""The engine's agent side: the registry with track records, health probes, routing of a
workflow's subtasks, and the adapters an in-process worker runs them on.

Everything the faces need goes through :class:`OrchestrationEngine` (``list_agents``,
``add_agent``, ...), which delegates here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskorch.agents.base import AgentAdapter
from taskorch.domain.errors import TaskorchError
from taskorch.domain.models import Agent, AgentStatus, Subtask
from taskorch.domain.rate_window import RateWindow
from taskorch.store.agent_stats import AgentStats, RoutingWrite, TrackRecord
from taskorch.store.rate_windows import RateWindowStore

# The registry's adapters, probes and routing are imported where they are used: listing agents
# (`taskorch status`, `agents list`) reads the store only.
if TYPE_CHECKING:
    from taskorch.agents.health import Probe
    from taskorch.agents.registry import AgentSpec
    from taskorch.agents.routing import AgentCoordinator, Choice, Routable
    from taskorch.settings import Settings
    from taskorch.store import Store

WAITING = "(waiting)"
"""``agent_id`` of a subtask no registered agent can take yet: no worker claims it, and routing
tries again while the workflow runs (parentheses never occur in agent names)."""


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """A registered agent with its track record and current load: what ``agents list`` shows."""

    agent: Agent
    record: TrackRecord
    active: int = 0
    window: RateWindow | None = None
    """The agent's rate window, while it is open (a limit answered, its reset not yet come)."""

    @property
    def status(self) -> AgentStatus:
        """The stored status, shown as ``busy`` while an available agent is at its limit."""
        full = self.active >= self.agent.max_concurrency
        if self.agent.status == AgentStatus.AVAILABLE and full:
            return AgentStatus.BUSY
        return self.agent.status

    @property
    def utilisation(self) -> float:
        return round(self.active / max(self.agent.max_concurrency, 1), 3)

    def to_json(self) -> dict[str, Any]:
        from taskorch.agents.registry import describe_adapter

        agent = self.agent
        return {
            "id": agent.id,
            "name": agent.name,
            "type": agent.type,
            "adapter": describe_adapter(agent),
            "status": self.status.value,
            "capabilities": agent.capabilities.model_dump(mode="json"),
            "max_concurrency": agent.max_concurrency,
            "active": self.active,
            "utilisation": self.utilisation,
            "track_record": self.record.to_json(),
            "rate_window": self.window.to_json() if self.window else None,
            "created_at": agent.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """Tokens and cost of an agent's finished attempts, with the model they ran on (the agent's
    configured model, else ``unknown``): the Prometheus counters' figures."""

    agent: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float


UNKNOWN_MODEL = "unknown"


class AgentPool(dict[str | None, AgentAdapter]):
    """The adapters of a run (agent id -> adapter), with what the worker needs beside them:
    per-agent concurrency limits and the coordinator that picks another agent on a retry."""

    def __init__(
        self,
        adapters: Mapping[str | None, AgentAdapter],
        *,
        mode: str,
        limits: Mapping[str, int] | None = None,
        coordinator: AgentCoordinator | None = None,
        note: str = "",
    ) -> None:
        super().__init__(adapters)
        self.mode = mode
        """``sim`` (one simulated agent for everything) or the routing mode: ``auto`` or a name."""
        self.limits = dict(limits or {})
        self.coordinator = coordinator
        self.note = note

    def reassign(self, subtask: Subtask, error_class: str, policy_reassign: bool) -> str | None:
        if self.coordinator is None:
            return subtask.agent_id
        return self.coordinator.reassign(subtask, subtask.agent_id, error_class, policy_reassign)

    def another_candidate(self, subtask: Subtask, chosen: Sequence[str | None]) -> str | None:
        """Another capable agent for a best-of-N race on ``subtask`` (None: no other)."""
        if self.coordinator is None:
            return None
        exclude = [agent for agent in chosen if agent is not None]
        return self.coordinator.find_best_agent(subtask, exclude=exclude).agent_id


class AgentDirectory:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.stats = AgentStats(store.connector)
        self.waiting_agent = WAITING
        self.wait_timeout_s = settings.attempt_timeout_s
        """A subtask no agent can take fails its workflow after this long
        (TASK_TIMEOUT, else TASKORCH_SUBTASK_TIMEOUT_S)."""

    # --- registry ----------------------------------------------------------------------------

    async def add(self, spec: AgentSpec) -> AgentInfo:
        from taskorch.agents.registry import with_default_host

        spec = with_default_host(spec, self.settings.host_name)
        agent = await self.store.upsert_agent(
            spec.name,
            name=spec.name,
            type=spec.type,
            capabilities=spec.effective_capabilities(),
            max_concurrency=spec.max_concurrency,
            metadata={"adapter": spec.adapter_settings()},
        )
        return await self.get(agent.id)

    async def remove(self, ref: str) -> Agent:
        return await self.store.remove_agent(ref)

    async def get(self, ref: str) -> AgentInfo:
        await self.sync_default()
        agent = await self.store.get_agent(ref)
        records, load = await self.stats.track_records(), await self.stats.load()
        window = (await self.rate_windows()).get(agent.id)
        return AgentInfo(agent, records.get(agent.id, TrackRecord()), load.get(agent.id, 0), window)

    async def list(self) -> list[AgentInfo]:
        await self.sync_default()
        agents = await self.store.list_agents()
        records, load = await self.stats.track_records(), await self.stats.load()
        windows = await self.rate_windows()
        return [
            AgentInfo(a, records.get(a.id, TrackRecord()), load.get(a.id, 0), windows.get(a.id))
            for a in agents
        ]

    async def usage_by_model(self, unassigned: str) -> Sequence[ModelUsage]:
        """Every agent's spending so far, ``unassigned`` naming subtasks run with no agent."""
        from taskorch.agents.registry import configured_model

        models = {a.id: configured_model(a) for a in await self.store.list_agents()}
        usage = await self.stats.model_usage()
        return [
            ModelUsage(
                agent_id or unassigned,
                models.get(agent_id or "") or UNKNOWN_MODEL,
                spent.tokens_in,
                spent.tokens_out,
                spent.cost_usd,
            )
            for agent_id, spent in sorted(usage.items(), key=lambda item: item[0] or "")
        ]

    async def rate_windows(self) -> dict[str, RateWindow]:
        """Agents in a rate window now, by id (see :mod:`taskorch.runtime.rate_limits`)."""
        return await RateWindowStore(self.store.connector).open_at(datetime.now(UTC))

    async def set_enabled(self, ref: str, enabled: bool) -> AgentInfo:
        agent = await self.store.get_agent(ref)
        status = AgentStatus.AVAILABLE if enabled else AgentStatus.DISABLED
        if agent.status != status:
            await self.store.set_agent_status(agent.id, status)
        return await self.get(agent.id)

    async def sync_default(self) -> None:
        """``AGENTAPI_URL`` set (environment or config file) registers the default agentapi
        agent ``agentapi`` (its key comes from ``AGENTAPI_KEY`` at run time, never stored)."""
        if "agentapi_url" not in self.settings.model_fields_set:
            return
        from taskorch.agents.registry import DEFAULT_AGENT_NAME, AgentSpec, capabilities_for

        url = self.settings.agentapi_url.rstrip("/")
        existing = {a.name: a for a in await self.store.list_agents()}.get(DEFAULT_AGENT_NAME)
        if existing is not None and existing.metadata.get("adapter", {}).get("url") == url:
            return
        spec = AgentSpec(name=DEFAULT_AGENT_NAME, url=url, key_env="AGENTAPI_KEY")
        await self.store.upsert_agent(
            DEFAULT_AGENT_NAME,
            name=DEFAULT_AGENT_NAME,
            type="custom",
            capabilities=capabilities_for("custom"),
            status=existing.status if existing else AgentStatus.AVAILABLE,
            max_concurrency=existing.max_concurrency if existing else 1,
            metadata={"adapter": spec.adapter_settings(), "source": "AGENTAPI_URL"},
        )

    # --- health ------------------------------------------------------------------------------

    async def probe(self) -> dict[str, tuple[Agent, Probe]]:
        """Probe every agent that is not disabled, at once; an unreachable agent goes offline
        and a reachable offline one available again."""
        from taskorch.agents.health import probe_agent

        await self.sync_default()
        agents = [a for a in await self.store.list_agents() if a.status != AgentStatus.DISABLED]
        env = self.secrets()
        probes = await asyncio.gather(*(probe_agent(a, env) for a in agents))
        found: dict[str, tuple[Agent, Probe]] = {}
        for agent, probe in zip(agents, probes, strict=True):
            if not probe.reachable and _runs_here(agent):
                # A program missing on this host says nothing of the hosts that have it: the
                # agent stays available for them (this host's workers leave it alone).
                found[agent.name] = (agent, probe)
                continue
            if not probe.reachable and agent.status != AgentStatus.OFFLINE:
                agent = await self.store.set_agent_status(agent.id, AgentStatus.OFFLINE)
            elif probe.reachable and agent.status == AgentStatus.OFFLINE:
                agent = await self.store.set_agent_status(agent.id, AgentStatus.AVAILABLE)
            found[agent.name] = (agent, probe)
        return found

    def secrets(self) -> dict[str, str]:
        """Where adapters read the keys their settings name: the environment, plus
        ``AGENTAPI_KEY`` from the settings (it may come from the config file)."""
        env = dict(os.environ)
        if self.settings.agentapi_key is not None:
            env["AGENTAPI_KEY"] = self.settings.agentapi_key.get_secret_value()
        return env

    # --- routing -----------------------------------------------------------------------------

    async def coordinator(self, only: str | None = None) -> AgentCoordinator:
        from taskorch.agents.routing import AgentCoordinator

        return AgentCoordinator(
            await self.store.list_agents(),
            await self.stats.track_records(),
            await self.stats.load(),
            only=None if only in (None, "auto") else only,
            scoring=self.settings.enable_agent_coordination,
            windows=await self.rate_windows(),
            cost_weight=self.settings.routing_cost_weight,
        )

    async def route(self, mode: str, subtasks: Sequence[Subtask]) -> dict[int, Choice]:
        """Choose an agent for each subtask (by id) and store it; one that no agent can take
        waits (``agent_id`` :data:`WAITING`) with the reason in its ``error``."""
        coordinator = await self.coordinator(mode)
        routable: Sequence[Routable] = subtasks
        choices = coordinator.assign_tasks(routable)
        by_id = {subtasks[index].id: choice for index, choice in choices.items()}
        await self.stats.route(
            RoutingWrite(
                sub_id,
                choice.agent_id or WAITING,
                None if choice.routed else f"waiting for an agent: {choice.reason}",
            )
            for sub_id, choice in by_id.items()
        )
        return by_id

    async def pool(self, mode: str, wrap: Callable[[AgentAdapter], AgentAdapter]) -> AgentPool:
        """Adapters for every usable registered agent (``mode`` a name: that one only), each
        wrapped by ``wrap`` (the workspace that makes "done mean merged")."""
        from taskorch.agents.health import probe_agent
        from taskorch.agents.registry import build_adapter, serving_host

        coordinator = await self.coordinator(mode)
        env = self.secrets()
        usable = [a for a in coordinator.agents if a.status != AgentStatus.DISABLED]
        if mode != "auto":
            usable = [a for a in usable if mode in (a.id, a.name)]
        # An agentapi server that sees another host's files gets its work from that host.
        here = self.settings.host_name
        usable = [a for a in usable if serving_host(a) in (None, here)]
        # A CLI agent whose program this host lacks: this host's workers leave its work alone.
        local = [a for a in usable if _runs_here(a)]
        probes = await asyncio.gather(*(probe_agent(a, env) for a in local))
        missing = {a.id for a, probe in zip(local, probes, strict=True) if not probe.reachable}
        usable = [a for a in usable if a.id not in missing]
        adapters: dict[str | None, AgentAdapter] = {
            a.id: wrap(build_adapter(a, env)) for a in usable
        }
        return AgentPool(
            adapters,
            mode=mode,
            limits={a.id: a.max_concurrency for a in usable},
            coordinator=coordinator,
        )


def _runs_here(agent: Agent) -> bool:
    """Whether the agent is a program on the worker's own host (a CLI agent), rather than a
    server every host reaches alike (agentapi)."""
    from taskorch.agents.registry import adapter_settings

    try:
        return bool(adapter_settings(agent)["kind"] == "cli")
    except TaskorchError:
        return False

"""The engine's health: the database, the planner and each registered agent, as components of one
report (what ``taskorch health``, the HTTP API's and the MCP server's health checks show).

A component is ``ok``, ``degraded`` or ``down``; the report is ``down`` only when work cannot run.
Checking never creates a database or calls a planner's API: a SQLite file that does not exist is
reported missing, the planner's settings are read, and agents are probed (``engine/agents.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from taskorch.domain.errors import StoreError
from taskorch.domain.models import Agent, AgentStatus
from taskorch.engine.agents import AgentDirectory
from taskorch.settings import Settings
from taskorch.store import Store
from taskorch.store.sqlite import SqliteConnector

HealthStatus = Literal["ok", "degraded", "down"]


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    status: HealthStatus
    detail: str
    info: dict[str, Any] = field(default_factory=dict)


SPEC_COMPONENTS = {"nlp": "planner", "agentCoordinator": "agents"}
"""The specification's names for two health components -> taskorch's: the report carries both,
with the same values, so a client written against either finds its key."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    components: dict[str, ComponentHealth]

    @property
    def status(self) -> HealthStatus:
        """``down`` only when work cannot run (the database, the planner, or a domain with no
        agent up: the ``agents`` component); one agent down of several is ``degraded``."""
        states = {
            "degraded" if name.startswith("agent:") and c.status == "down" else c.status
            for name, c in self.components.items()
        }
        if "down" in states:
            return "down"
        return "degraded" if "degraded" in states else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "components": {
                name: {"status": c.status, "detail": c.detail, **c.info}
                for name, c in self.components.items()
            },
        }


async def health_report(
    store: Store, settings: Settings, directory: AgentDirectory
) -> HealthReport:
    components = {"database": await _database_health(store), "planner": _planner_health(settings)}
    if components["database"].status == "ok":  # probing needs the registry table
        components.update(await _agents_health(store, directory))
    for alias, name in SPEC_COMPONENTS.items():
        if name in components:
            components[alias] = components[name]
    return HealthReport(components)


async def agent_health(directory: AgentDirectory) -> dict[str, ComponentHealth]:
    """Probe every agent that is not disabled (agentapi ``GET /status``, CLI program on
    PATH); an unreachable agent is marked offline, a reachable offline one available."""
    found = await directory.probe()
    return {
        name: ComponentHealth(
            "ok" if probe.reachable else "down",
            probe.detail,
            {"agent_status": agent.status.value, "type": agent.type, **probe.info},
        )
        for name, (agent, probe) in found.items()
    }


async def _agents_health(store: Store, directory: AgentDirectory) -> dict[str, ComponentHealth]:
    """One component per registered agent (``agent:<name>``), probed."""
    try:
        found = await agent_health(directory)
    except StoreError as exc:
        return {"agents": ComponentHealth("degraded", f"agent registry: {exc.message}")}
    if not found:
        return {"agents": ComponentHealth("ok", "no agents registered (`taskorch agents`)")}
    registered = await store.list_agents()
    agents = {a.name: a for a in registered if a.status != AgentStatus.DISABLED}
    components = {f"agent:{name}": health for name, health in found.items()}
    up = {name for name, health in found.items() if health.status == "ok"}
    return {"agents": _coverage(agents, up), **components}


def _coverage(agents: Mapping[str, Agent], up: set[str]) -> ComponentHealth:
    """Whether every domain's work can run: ``down`` when a domain that registered agents take
    has none of them up, ``degraded`` when no registered agent takes a domain at all."""
    from taskorch.domain.plan import Domain

    stopped: list[str] = []
    uncovered: list[str] = []
    for domain in Domain:
        capable = sorted(
            name
            for name, agent in agents.items()
            if not agent.capabilities.domains or domain in agent.capabilities.domains
        )
        if not capable:
            uncovered.append(domain.value)
        elif not up.intersection(capable):
            stopped.append(f"{domain.value} ({', '.join(capable)} down)")
    if stopped:
        return ComponentHealth("down", f"no agent up for {'; '.join(stopped)}")
    if uncovered:
        return ComponentHealth("degraded", f"no registered agent takes {', '.join(uncovered)}")
    return ComponentHealth("ok", "every domain has an agent up")


def _planner_health(settings: Settings) -> ComponentHealth:
    """Which planner the settings choose and whether what it needs is there (no network)."""
    from taskorch.planning.providers import chosen_provider

    name = chosen_provider(settings)
    info: dict[str, Any] = {"provider": name}
    if settings.nlp_model:
        info["model"] = settings.nlp_model
    if name == "heuristic":
        return ComponentHealth("ok", "heuristic (offline)", info)
    if name == "openai-compatible":
        if not settings.openai_base_url:
            return ComponentHealth("down", f"{name}: OPENAI_BASE_URL is not set", info)
        if not settings.nlp_model:
            return ComponentHealth("down", f"{name}: NLP_MODEL is not set", info)
        return ComponentHealth("ok", f"{name} at {settings.openai_base_url}", info)
    anthropic = name == "anthropic"
    key = settings.anthropic_api_key if anthropic else settings.openai_api_key
    variable = "ANTHROPIC_API_KEY" if anthropic else "OPENAI_API_KEY"
    if key is None:
        return ComponentHealth("down", f"{name}: {variable} is not set", info)
    return ComponentHealth("ok", f"{name} ({variable} set)", info)


async def _database_health(store: Store) -> ComponentHealth:
    missing = missing_sqlite_file(store.connector)
    if missing is not None:
        return ComponentHealth("down", no_database(missing), {"backend": "sqlite"})
    try:
        health = await store.health()
    except StoreError as exc:
        return ComponentHealth("down", exc.message, {"backend": store.backend})
    info = {
        "backend": health.backend,
        "location": health.location,
        "schema_version": health.schema_version,
        "latest_schema_version": health.latest_version,
    }
    if not health.up_to_date:
        return ComponentHealth(
            "degraded",
            f"schema version {health.schema_version} of {health.latest_version}: "
            "run `taskorch init`",
            info,
        )
    return ComponentHealth("ok", f"{health.backend} reachable", info)


def missing_sqlite_file(connector: object) -> str | None:
    """Where a SQLite database that does not exist yet would be (opening it would create it);
    None for one that exists, or another backend."""
    if isinstance(connector, SqliteConnector) and not connector.path.exists():
        return str(connector.path.resolve())
    return None


def no_database(where: str) -> str:
    return (
        f"no taskorch database at {where}: run `taskorch init` to create one, "
        "or point --home / DATABASE_URL at yours"
    )

"""Routing: which registered agent takes a subtask, and why.

:class:`AgentCoordinator` scores every usable agent that can do the subtask at all and picks the
highest total. Each part is in [0, 1] and weighted (:data:`WEIGHTS`); the parts travel with the
choice so ``taskorch status`` and the workflow history can show why:

- ``capability``: fit of the subtask's domain and worker type (an explicit match counts more than
  an agent that lists none, i.e. takes anything; a subtask carrying a command fits the shell
  agent best); an agent whose lists leave the subtask out is not a candidate, nor is a shell
  agent for a subtask without a command;
- ``language``: share of the subtask's languages (from its files' extensions and its text) the
  agent lists (an agent listing none gets a neutral 0.7);
- ``load``: free share of the agent's concurrency limit, counting what this plan already gave it;
- ``success``: success rate with one success and one failure assumed up front (a new agent: 0.5),
  so a failing agent gets fewer assignments;
- ``latency``: ``60 / (60 + mean seconds)`` (unknown: 0.5);
- ``cost``: cost per success (what the agent's attempts that reported a cost spent, over its
  successes) normalised among the candidates: the cheapest 1.0, one twice as dear 0.5, one that
  reports no cost a neutral 0.5; weighted by ``TASKORCH_ROUTING_COST_WEIGHT`` (default 0.15, 0
  turns it off) and left out while no candidate has reported a cost;
- ``exploration``: a bonus, not weighted, of ``0.1 / sqrt(1 + attempts)``, so a new agent gets
  tried before the record of the old ones settles everything.

Agents that are offline or disabled are never chosen. An agent in a rate window (it answered with
a rate limit or usage limit, :mod:`taskorch.domain.rate_window`) is chosen only when every
candidate is in one: its subtask then waits for the reset. With no candidate, the choice carries no
agent and a reason that names every agent and why it did not fit; the subtask waits for one.
Equal totals go to the agent whose name sorts first, so routing is deterministic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any, Protocol

from taskorch.domain.models import Agent, AgentStatus
from taskorch.domain.plan import Domain, Plan, WorkerType
from taskorch.domain.rate_window import RateWindow
from taskorch.domain.retry import ErrorClass
from taskorch.store.agent_stats import TrackRecord

WEIGHTS: dict[str, float] = {
    "capability": 0.30,
    "language": 0.15,
    "load": 0.20,
    "success": 0.25,
    "latency": 0.10,
}
COST_WEIGHT = 0.15
NEUTRAL_COST = 0.5
EXPLORATION = 0.1
GENERALIST_FIT = 0.6
NEUTRAL_LANGUAGE = 0.7
LATENCY_REFERENCE_S = 60.0
UNREACHABLE_CLASSES = frozenset({"network", "service_unavailable", "timeout", "zombie"})
"""Error classes that say the agent could not be reached or stopped answering: a retry goes to
another capable agent when there is one, whatever the class's retry policy says."""

_EXTENSIONS = {
    ".py": "python",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".php": "php",
    ".cs": "csharp",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".swift": "swift",
    ".sh": "shell",
    ".sql": "sql",
    ".md": "markdown",
}
_WORDS = {
    "python": "python",
    "pytest": "python",
    "django": "python",
    "fastapi": "python",
    "flask": "python",
    "typescript": "typescript",
    "javascript": "javascript",
    "node": "javascript",
    "react": "typescript",
    "golang": "go",
    "rust": "rust",
    "java": "java",
    "kotlin": "kotlin",
    "ruby": "ruby",
    "rails": "ruby",
    "php": "php",
    "bash": "shell",
    "sql": "sql",
    "postgresql": "sql",
}
_TOKEN = re.compile(r"[a-z][a-z0-9+#]*")


class Routable(Protocol):
    """What routing reads of a subtask (a stored :class:`Subtask` or a plan's subtask)."""

    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def assigned_to(self) -> Domain: ...
    @property
    def worker_type(self) -> WorkerType: ...
    @property
    def files_affected(self) -> list[str]: ...
    @property
    def command(self) -> list[str] | None: ...


@dataclass(frozen=True, slots=True)
class Choice:
    """Routing's answer for one subtask: the agent (None: no capable agent) and why."""

    agent_id: str | None
    score: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    runners_up: tuple[tuple[str, float], ...] = ()

    @property
    def routed(self) -> bool:
        return self.agent_id is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent_id,
            "score": self.score,
            "parts": self.parts,
            "reason": self.reason,
            "runners_up": [{"agent": a, "score": s} for a, s in self.runners_up],
        }


def languages_of(subtask: Routable) -> set[str]:
    """The languages a subtask involves: its files' extensions, else words in its text."""
    found = {
        _EXTENSIONS[suffix]
        for path in subtask.files_affected
        if (suffix := PurePosixPath(path).suffix.lower()) in _EXTENSIONS
    }
    if len(found) > 1:
        found.discard("markdown")  # docs next to code: the code's language decides
    if found:
        return found
    words = _TOKEN.findall(f"{subtask.title} {subtask.description}".lower())
    return {_WORDS[w] for w in words if w in _WORDS}


class AgentCoordinator:
    """Chooses agents for subtasks from a snapshot of the registry, track records and load."""

    def __init__(
        self,
        agents: Iterable[Agent],
        records: Mapping[str, TrackRecord] | None = None,
        load: Mapping[str, int] | None = None,
        *,
        only: str | None = None,
        scoring: bool = True,
        windows: Mapping[str, RateWindow] | None = None,
        cost_weight: float = COST_WEIGHT,
    ) -> None:
        """``only`` restricts routing to one agent (by id or name); ``scoring=False``
        (``ENABLE_AGENT_COORDINATION=false``) gives every subtask the first usable agent;
        ``windows``: agents in a rate window now; ``cost_weight``: the ``cost`` part's weight."""
        self.agents = sorted(agents, key=lambda a: a.name)
        self.records = dict(records or {})
        self.load = dict(load or {})
        self.only = only
        self.scoring = scoring
        self.windows = dict(windows or {})
        self.cost_weight = cost_weight

    # --- choosing ----------------------------------------------------------------------------

    def find_best_agent(self, subtask: Routable, *, exclude: Iterable[str] = ()) -> Choice:
        """The best usable agent for ``subtask`` (not one of ``exclude``), with its score parts."""
        excluded = set(exclude)
        scored: list[Choice] = []
        misfits: list[str] = []
        for agent in self.agents:
            if agent.id in excluded:
                misfits.append(f"{agent.name} (excluded)")
                continue
            why_not = self._unusable(agent, subtask)
            if why_not:
                misfits.append(f"{agent.name} ({why_not})")
                continue
            scored.append(self.score(agent, subtask))
        if not scored:
            return Choice(None, reason=_no_agent_reason(subtask, misfits))
        unlimited = [c for c in scored if c.agent_id not in self.windows]
        scored = unlimited or scored  # all in a rate window: the best waits for its reset
        if not self.scoring:
            first = scored[0]
            return replace(first, reason=f"{first.agent_id}: agent coordination is off")
        scored = self._with_cost(scored)
        scored.sort(key=lambda c: -c.score)  # stable: equal scores keep name order
        best, others = scored[0], scored[1:4]
        runners_up = tuple((str(c.agent_id), c.score) for c in others)
        return replace(best, reason=_explain(best, others), runners_up=runners_up)

    def assign_tasks(self, plan: Plan | Sequence[Routable]) -> dict[int, Choice]:
        """A choice for each subtask, in order (keys are positions in ``plan.subtasks`` or the
        sequence). Subtasks of one stage run at the same time, so each assignment counts as
        load for the next choices in its stage; later stages start from the current load."""
        subtasks: Sequence[Routable] = plan.subtasks if isinstance(plan, Plan) else plan
        stage_of = _stages(plan) if isinstance(plan, Plan) else {}
        base = dict(self.load)
        planned: dict[int, dict[str, int]] = {}
        choices: dict[int, Choice] = {}
        for index, subtask in enumerate(subtasks):
            stage = stage_of.get(index, getattr(subtask, "stage", 0))
            self.load = {**base, **planned.get(stage, {})}
            choice = self.find_best_agent(subtask)
            choices[index] = choice
            if choice.agent_id is not None:
                in_stage = planned.setdefault(stage, dict(base))
                in_stage[choice.agent_id] = in_stage.get(choice.agent_id, 0) + 1
        self.load = base
        return choices

    def reassign(
        self, subtask: Routable, current: str | None, error_class: str, policy_reassign: bool
    ) -> str | None:
        """The agent for a retry after ``current`` failed with ``error_class``: another capable
        agent when the policy says so or the agent was unreachable, else the same one."""
        # busy or a rate limit: no word on how the agent works
        if current is not None and error_class not in (ErrorClass.BUSY, ErrorClass.RATE_LIMIT):
            self._note_failure(current)
        if not (policy_reassign or error_class in UNREACHABLE_CLASSES):
            return current
        other = self.find_best_agent(subtask, exclude=[current] if current else [])
        return other.agent_id if other.agent_id is not None else current

    # --- scoring -----------------------------------------------------------------------------

    def score(self, agent: Agent, subtask: Routable) -> Choice:
        record = self.records.get(agent.id, TrackRecord())
        parts = {
            "capability": _capability_fit(agent, subtask),
            "language": _language_fit(agent, subtask),
            "load": _free_share(agent, self.load.get(agent.id, 0)),
            "success": (record.successes + 1) / (record.attempts + 2),
            "latency": (
                LATENCY_REFERENCE_S / (LATENCY_REFERENCE_S + record.mean_s)
                if record.mean_s is not None
                else 0.5
            ),
        }
        parts = {name: round(value, 3) for name, value in parts.items()}
        parts["exploration"] = round(EXPLORATION / math.sqrt(1 + record.attempts), 3)
        total = sum(WEIGHTS[name] * parts[name] for name in WEIGHTS) + parts["exploration"]
        return Choice(agent.id, round(total, 3), parts)

    def _with_cost(self, scored: list[Choice]) -> list[Choice]:
        """The candidates with their ``cost`` part: the cheapest cost per success over theirs."""
        costs = {
            c.agent_id: self.records.get(str(c.agent_id), TrackRecord()).cost_per_success
            for c in scored
        }
        known = [cost for cost in costs.values() if cost is not None]
        if self.cost_weight <= 0 or not known:
            return scored
        cheapest = min(known)
        priced: list[Choice] = []
        for choice in scored:
            cost = costs[choice.agent_id]
            part = NEUTRAL_COST if cost is None else 1.0 if cost <= cheapest else cheapest / cost
            parts = {**choice.parts, "cost": round(part, 3)}
            total = round(choice.score + self.cost_weight * parts["cost"], 3)
            priced.append(replace(choice, score=total, parts=parts))
        return priced

    def _unusable(self, agent: Agent, subtask: Routable) -> str | None:
        if self.only is not None and self.only not in (agent.id, agent.name):
            return "not the agent asked for"
        if agent.status in (AgentStatus.OFFLINE, AgentStatus.DISABLED):
            return agent.status.value
        if not self.scoring:
            return None
        caps = agent.capabilities
        if caps.domains and subtask.assigned_to not in caps.domains:
            return f"domains {', '.join(caps.domains)}"
        if caps.worker_types and subtask.worker_type not in caps.worker_types:
            return f"worker types {', '.join(caps.worker_types)}"
        if agent.type == "shell" and not subtask.command:
            return "shell agent, the subtask has no command"
        return None

    def _note_failure(self, agent_id: str) -> None:
        """Count a failure at once, so this run already routes around a failing agent."""
        record = self.records.get(agent_id, TrackRecord())
        self.records[agent_id] = replace(record, attempts=record.attempts + 1)


def _stages(plan: Plan) -> dict[int, int]:
    """Position of each subtask in ``plan.subtasks`` -> its stage number in the execution plan."""
    stage_of_key = {
        key: number for number, keys in enumerate(plan.execution_plan.values()) for key in keys
    }
    return {i: stage_of_key.get(s.subtask_id, 0) for i, s in enumerate(plan.subtasks)}


def _capability_fit(agent: Agent, subtask: Routable) -> float:
    caps = agent.capabilities
    domain = 1.0 if caps.domains else GENERALIST_FIT
    work = 1.0 if caps.worker_types else GENERALIST_FIT
    fit = (domain + work) / 2
    if subtask.command:
        # A deterministic command is exactly what the shell agent is for; a coding agent would
        # only get the instructions around it.
        fit = 1.0 if agent.type == "shell" else fit / 2
    return fit


def _language_fit(agent: Agent, subtask: Routable) -> float:
    wanted = languages_of(subtask)
    if not wanted:
        return 1.0
    known = set(agent.capabilities.languages)
    if not known:
        return NEUTRAL_LANGUAGE
    return len(wanted & known) / len(wanted)


def _free_share(agent: Agent, active: int) -> float:
    return max(0.0, 1.0 - active / max(agent.max_concurrency, 1))


def _explain(choice: Choice, runners_up: Sequence[Choice] = ()) -> str:
    parts = ", ".join(
        f"{name} {value:.2f}" for name, value in choice.parts.items() if name != "exploration"
    )
    text = f"{choice.agent_id}: score {choice.score:.2f} = {parts}, exploration +"
    text += f"{choice.parts.get('exploration', 0.0):.2f}"
    if runners_up:
        text += "; next: " + ", ".join(f"{c.agent_id} {c.score:.2f}" for c in runners_up)
    return text


def _no_agent_reason(subtask: Routable, misfits: Sequence[str]) -> str:
    need = f"{subtask.assigned_to.value}/{subtask.worker_type.value}"
    if not misfits:
        return f"no agent registered for {need}: add one with `taskorch agents add`"
    return f"no available agent can do {need}: " + "; ".join(misfits)

"""What a workflow's attempts cost: tokens in and out and USD, in all and by subtask, agent and
model.

- :class:`Usage`: the sums; ``None`` where no attempt reported that figure (an agent that reports
  no usage is not a free one), and how many attempts reported nothing.
- :func:`cost_summary`: a workflow's (the ``cost`` key of ``status --json`` and of
  ``GET /api/v1/workflows/{id}``); :func:`usage_report`: every attempt's (``taskorch metrics``).

The model of an attempt: the one the agent reported in the result of the attempt that finished
its subtask (``model``: Claude Code's ``modelUsage``, Aider's ``Main model:``), else the one its
registration names (``--model X`` / ``-m X`` in its arguments or command), else ``unknown``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskorch.domain.models import Agent, Attempt, Subtask
from taskorch.store import Store

UNKNOWN_MODEL = "unknown"


@dataclass(frozen=True, slots=True)
class Usage:
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    attempts: int = 0
    unreported: int = 0
    """Of ``attempts``, those whose agent reported neither tokens nor cost."""

    def add(self, tokens_in: int | None, tokens_out: int | None, cost: float | None) -> Usage:
        return Usage(
            _plus(self.tokens_in, tokens_in),
            _plus(self.tokens_out, tokens_out),
            _plus_cost(self.cost_usd, cost),
            self.attempts + 1,
            self.unreported + (tokens_in is None and tokens_out is None and cost is None),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "attempts": self.attempts,
            "unreported_attempts": self.unreported,
        }


def _plus(total: int | None, more: int | None) -> int | None:
    if more is None:
        return total
    return (total or 0) + more


def _plus_cost(total: float | None, more: float | None) -> float | None:
    if more is None:
        return total
    return round((total or 0.0) + more, 6)


@dataclass(frozen=True, slots=True)
class CostSummary:
    total: Usage
    by_subtask: dict[str, Usage] = field(default_factory=dict)
    by_agent: dict[str, Usage] = field(default_factory=dict)
    by_model: dict[str, Usage] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.total.to_dict(),
            "by_subtask": {k: v.to_dict() for k, v in self.by_subtask.items()},
            "by_agent": {k: v.to_dict() for k, v in self.by_agent.items()},
            "by_model": {k: v.to_dict() for k, v in self.by_model.items()},
        }


def cost_summary(
    attempts: Iterable[tuple[str, Attempt]],
    subtasks: Sequence[Subtask] = (),
    agent_models: Mapping[str, str] | None = None,
) -> CostSummary:
    """Usage of the recorded (finished) attempts in all and by subtask, agent and model."""
    total = Usage()
    by_subtask: dict[str, Usage] = {s.key: Usage() for s in subtasks}
    by_agent: dict[str, Usage] = {}
    by_model: dict[str, Usage] = {}
    results = {s.key: s for s in subtasks}
    for key, attempt in attempts:
        figures = (attempt.tokens_in, attempt.tokens_out, attempt.cost_usd)
        total = total.add(*figures)
        by_subtask[key] = by_subtask.get(key, Usage()).add(*figures)
        agent = attempt.agent_id or "unassigned"
        by_agent[agent] = by_agent.get(agent, Usage()).add(*figures)
        model = model_of(attempt, results.get(key), agent_models or {}) or UNKNOWN_MODEL
        by_model[model] = by_model.get(model, Usage()).add(*figures)
    return CostSummary(total, by_subtask, by_agent, by_model)


async def usage_report(store: Store) -> CostSummary:
    """Every finished attempt's usage by agent and by model (reported by the attempt that
    finished its subtask, else named by its agent's registration, else ``unknown``), for
    ``taskorch metrics``."""
    models = configured_models(await store.list_agents())
    total = Usage()
    by_agent: dict[str, Usage] = {}
    by_model: dict[str, Usage] = {}
    for row in await store.attempt_usage_by_agent():
        agent = str(row["agent_id"] or "unassigned")
        cost = row["cost_usd"]
        usage = Usage(
            _int(row["tokens_in"]),
            _int(row["tokens_out"]),
            round(float(cost), 6) if cost is not None else None,
            int(row["attempts"]),
            int(row["unreported"] or 0),
        )
        by_agent[agent] = _merge(by_agent.get(agent, Usage()), usage)
        model = str(row["model"] or models.get(agent, UNKNOWN_MODEL))
        by_model[model] = _merge(by_model.get(model, Usage()), usage)
        total = _merge(total, usage)
    return CostSummary(total, {}, by_agent, by_model)


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _merge(a: Usage, b: Usage) -> Usage:
    return Usage(
        _plus(a.tokens_in, b.tokens_in),
        _plus(a.tokens_out, b.tokens_out),
        _plus_cost(a.cost_usd, b.cost_usd),
        a.attempts + b.attempts,
        a.unreported + b.unreported,
    )


def model_of(
    attempt: Attempt, subtask: Subtask | None, agent_models: Mapping[str, str]
) -> str | None:
    """The model of an attempt: reported in the result of the attempt that finished the
    subtask, else named by its agent's registration; None when neither says."""
    result = (subtask.result or {}) if subtask is not None else {}
    reported = result.get("model")
    final = subtask is not None and attempt.number == subtask.attempts
    if isinstance(reported, str) and reported and final and attempt.outcome.value == "succeeded":
        return reported
    return agent_models.get(attempt.agent_id or "")


def configured_models(agents: Iterable[Agent]) -> dict[str, str]:
    """Agent id -> the model its registration names (``--model X``, ``--model=X``, ``-m X`` in
    its extra arguments or its command)."""
    found: dict[str, str] = {}
    for agent in agents:
        settings = agent.metadata.get("adapter")
        if not isinstance(settings, dict):
            continue
        words = [str(w) for w in (settings.get("args") or []) + (settings.get("command") or [])]
        model = _model_argument(words)
        if model:
            found[agent.id] = model
    return found


def _model_argument(words: Sequence[str]) -> str | None:
    for index, word in enumerate(words):
        if word.startswith("--model="):
            return word.split("=", 1)[1] or None
        if word in ("--model", "-m") and index + 1 < len(words):
            return words[index + 1]
    return None

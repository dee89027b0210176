"""Best-of-N: how many agents race on one subtask, and what each candidate did.

A subtask runs on N agents at once, each in its own worktree; the first candidate whose work
passes validation is merged, the others are ended. N comes from the plan (``best_of`` on the
subtask), the run (``best_of`` in the workflow's options: implementation subtasks) or an
escalation (``best_of_retry``: every subtask's retries after a failed attempt), and is capped by
what the budget allows (:func:`allowed_candidates`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_CANDIDATES = 5
"""More agents on one subtask than this costs more than it finds."""

RUN_OPTION_WORKER_TYPE = "implementation"
"""The worker type a run's ``--best-of`` applies to: the subtasks that write the code."""


def candidates_wanted(
    *,
    worker_type: str,
    attempt: int,
    plan_best_of: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> int:
    """How many candidates a subtask's attempt asks for (before the budget's cap).

    ``attempt`` is the attempt's number (1 for the first try). The plan's own ``best_of`` wins;
    else the run's ``best_of`` for implementation subtasks; a retry takes the escalation's
    ``best_of_retry`` when that is larger.
    """
    given = options or {}
    wanted = 1
    if plan_best_of is not None:
        wanted = plan_best_of
    elif worker_type == RUN_OPTION_WORKER_TYPE and given.get("best_of"):
        wanted = int(given["best_of"])
    if attempt > 1 and given.get("best_of_retry"):
        wanted = max(wanted, int(given["best_of_retry"]))
    return max(1, min(wanted, MAX_CANDIDATES))


def allowed_candidates(
    wanted: int,
    *,
    remaining_usd: float | None = None,
    predicted_usd: float | None = None,
) -> int:
    """``wanted`` capped by the budget: as many candidates as ``remaining_usd`` pays for at
    ``predicted_usd`` each, never fewer than one (whether one attempt may start at all is the
    dispatcher's call, not this one's). No budget or no prediction: no cap."""
    wanted = max(1, min(wanted, MAX_CANDIDATES))
    if remaining_usd is None or predicted_usd is None or predicted_usd <= 0:
        return wanted
    affordable = math.floor(max(remaining_usd, 0.0) / predicted_usd + 1e-9)
    return max(1, min(wanted, affordable))


class CandidateState(StrEnum):
    RUNNING = "running"
    WON = "won"
    """Passed validation first; its work is what the subtask merged."""
    PASSED = "passed"
    """Passed validation after the winner had been chosen (not merged)."""
    REJECTED = "rejected"
    """Finished, but its work failed validation (the reason says why)."""
    FAILED = "failed"
    """The agent failed."""
    CANCELLED = "cancelled"
    """Ended because another candidate won (or the attempt itself ended)."""


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """One candidate of a best-of-N attempt, as ``status`` shows it."""

    number: int
    key: str
    """The candidate's worktree and branch name (``<subtask key>.c<number>``)."""
    agent_id: str | None
    state: CandidateState
    reason: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    changed_files: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "key": self.key,
            "agent": self.agent_id,
            "state": self.state.value,
            "reason": self.reason,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "changed_files": list(self.changed_files),
        }


def total_usage(records: list[CandidateRecord]) -> tuple[int | None, int | None, float | None]:
    """Tokens in, tokens out and cost of all candidates together (None: none reported any)."""

    def total(values: list[int | None] | list[float | None]) -> Any:
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    cost = total([r.cost_usd for r in records])
    return (
        total([r.tokens_in for r in records]),
        total([r.tokens_out for r in records]),
        round(cost, 6) if cost is not None else None,
    )


def candidate_key(subtask_key: str, number: int) -> str:
    return f"{subtask_key}.c{number}"

"""Estimates: minutes and tokens for one subtask, and the resource estimate of a whole plan.

The plan's estimate is always derived from its subtasks and its resolved DAG, never taken from a
model's answer: the numbers users budget with must agree with the plan they see.
"""

from __future__ import annotations

import math

from taskorch.domain.dag import Resolution
from taskorch.domain.plan import Plan, ResourceEstimate, WorkerType

BASE_MINUTES: dict[WorkerType, int] = {
    WorkerType.PLANNER: 15,
    WorkerType.IMPLEMENTATION: 25,
    WorkerType.TEST: 20,
    WorkerType.AUDIT: 15,
    WorkerType.DOCUMENTATION: 10,
    WorkerType.DEPLOY: 10,
}
SIMPLE_MAX_MINUTES = 25
"""A simple task takes under 30 minutes by definition; its estimate stays below that."""
MINUTES_PER_EXTRA_FILE = 5
TOKENS_PER_MINUTE = 500
BASE_TOKENS = 2_500
MAX_BOTTLENECKS = 3


def subtask_minutes(worker_type: WorkerType, file_count: int, *, simple: bool = False) -> int:
    minutes = BASE_MINUTES[worker_type] + MINUTES_PER_EXTRA_FILE * max(0, min(file_count, 3) - 1)
    return min(minutes, SIMPLE_MAX_MINUTES) if simple else minutes


def subtask_tokens(minutes: int) -> int:
    """Agent tokens scale with working time; rounded to 500 so estimates do not look precise."""
    raw = BASE_TOKENS + TOKENS_PER_MINUTE * minutes
    return int(math.ceil(raw / 500) * 500)


def resource_estimate(plan: Plan, resolution: Resolution) -> ResourceEstimate:
    """The plan's resource estimate from its subtasks and its resolved stages.

    The duration range runs from the critical path (every parallel stage fully staffed) to the
    serial sum (one worker does everything), with at least a 25% margin over the critical path;
    a single subtask gets its own estimate.
    """
    minutes = [s.estimated_duration_minutes for s in plan.subtasks]
    low = math.ceil(resolution.critical_path_minutes)
    high = max(sum(minutes), _round_up(low * 1.25, 5)) if len(minutes) > 1 else low
    return ResourceEstimate(
        total_subtasks=len(plan.subtasks),
        duration_estimate=f"{low}-{high} minutes" if high > low else f"{low} minutes",
        token_estimate=sum(s.estimated_tokens for s in plan.subtasks),
        masters=list(dict.fromkeys(s.assigned_to.value for s in plan.subtasks)),
        workers=len(plan.subtasks),
        parallelization_possible=any(len(stage) > 1 for stage in resolution.stages),
        bottlenecks=_bottlenecks(plan, resolution),
    )


def _bottlenecks(plan: Plan, resolution: Resolution) -> list[str]:
    """The critical path, then the lone subtasks that every later stage waits for."""
    found: list[str] = []
    if len(resolution.critical_path) > 1:
        chain = " -> ".join(resolution.critical_path)
        found.append(f"critical path {chain} ({math.ceil(resolution.critical_path_minutes)} min)")
    later = len(plan.subtasks)
    for stage in resolution.stages[:-1]:
        later -= len(stage)
        if len(stage) == 1 and len(found) < MAX_BOTTLENECKS:
            found.append(f"{stage[0]} gates the {later} subtask(s) after it")
    return found


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)

"""Aggregates over every stored workflow: what ``/metrics`` needs, at about the same cost for ten
workflows or a hundred thousand. Counts by state come from the status index; the duration
histogram of finished workflows is kept in ``workflow_durations`` as each one ends (in the
transaction of its last transition), so a scrape reads a few rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskorch.store.connector import Connector

DURATION_BUCKETS_S = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
"""Upper bounds of the workflow-duration histogram; the SQL that fills ``workflow_durations``
spells them out too (a test keeps them in step)."""


@dataclass(frozen=True, slots=True)
class Durations:
    """Finished workflows of one state: how many took at most each bound (cumulative), in all,
    and the sum of their durations."""

    cumulative: tuple[int, ...]
    count: int
    total_s: float


@dataclass(frozen=True, slots=True)
class WorkflowStats:
    by_state: dict[str, int] = field(default_factory=dict)
    durations: dict[str, Durations] = field(default_factory=dict)


async def workflow_stats(connector: Connector) -> WorkflowStats:
    async with connector.transaction(write=False) as tx:
        counts = await tx.fetchall("workflow_state_counts")
        kept = await tx.fetchall("workflow_durations")
    by_state = {str(row["status"]): int(row["n"]) for row in counts}
    per_bucket: dict[str, dict[int, int]] = {}
    totals: dict[str, float] = {}
    for row in kept:
        state = str(row["state"])
        per_bucket.setdefault(state, {})[int(row["bucket"])] = int(row["n"])
        totals[state] = totals.get(state, 0.0) + float(row["total_s"])
    durations = {state: _cumulative(per_bucket[state], totals[state]) for state in per_bucket}
    return WorkflowStats(by_state, durations)


def _cumulative(buckets: dict[int, int], total_s: float) -> Durations:
    running = 0
    cumulative: list[int] = []
    for bound in DURATION_BUCKETS_S:
        running += buckets.get(bound, 0)
        cumulative.append(running)
    return Durations(tuple(cumulative), running + buckets.get(0, 0), total_s)

"""Dependency resolution: validate a plan's DAG, cut it into stages, find its critical path.

Edges point from a node to the nodes it depends on. A node's stage is one more than the latest stage
among its dependencies (stage 0 has none), so nothing inside a stage depends on anything else in it.

The resolver is written for graphs far larger than any one plan: integer indices, flat lists and
loops without recursion, so 100,000 nodes resolve in well under a second (``bench/dag.py``) and no
graph shape, however deep, can exhaust the interpreter's stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from taskorch.domain.errors import (
    CycleError,
    InputError,
    PlanError,
    SelfDependencyError,
    TooManyStagesError,
    UnknownDependencyError,
)
from taskorch.domain.plan import MAX_STAGES, Plan, stage_key


@dataclass(frozen=True, slots=True)
class Resolution:
    """A resolved DAG. Wherever the order of nodes is free, they keep the order of the input."""

    order: list[str]
    """Every node, dependencies before dependents: the stages one after another."""
    stages: list[list[str]]
    """Stage 0 holds the nodes without dependencies; each stage keeps the input order."""
    stage_of: dict[str, int]
    """The 0-based stage of every node."""
    critical_path: list[str]
    """The longest chain by duration, dependencies first; of equally long ones, the most nodes."""
    critical_path_minutes: float

    def execution_plan(self) -> dict[str, list[str]]:
        """The plan format's ``execution_plan``: ``{"stage_1": [...], "stage_2": [...]}``."""
        return {stage_key(index): list(stage) for index, stage in enumerate(self.stages)}


class DependencyResolver:
    """Turns ``node -> dependencies`` into a :class:`Resolution`, or raises the :class:`PlanError`
    that names what is wrong.

    ``max_stages`` is the most stages a plan may need (``None``: no limit); a plan that needs more
    raises :class:`TooManyStagesError`, which asks the user to split the requirement.
    """

    def __init__(self, max_stages: int | None = MAX_STAGES) -> None:
        if max_stages is not None and max_stages < 1:
            raise ValueError(f"max_stages must be at least 1 or None, not {max_stages}")
        self.max_stages = max_stages

    def resolve(
        self,
        dependencies: Mapping[str, Sequence[str]],
        durations: Mapping[str, float] | None = None,
    ) -> Resolution:
        """Resolve ``dependencies`` (each node -> the nodes it depends on).

        ``durations`` gives each node's duration in minutes for the critical path; a node it leaves
        out counts as 0 (unknown work is not invented), and entries for nodes that are not in the
        graph are ignored. A dependency listed twice counts once.

        Raises, checked in this order: :class:`UnknownDependencyError`,
        :class:`SelfDependencyError`, :class:`CycleError` (its ``cycle`` reads in dependency
        direction: ``[a, b, a]`` means a depends on b and b on a), :class:`TooManyStagesError`, and
        :class:`InputError` for a negative or non-finite duration.
        """
        nodes = list(dependencies)
        parents = _parent_indices(nodes, dependencies)
        order, stage = _order_by_stage(parents)
        if len(order) < len(nodes):
            _raise_for_cycle(nodes, parents, order)
        stage_count = stage[order[-1]] + 1 if order else 0
        if self.max_stages is not None and stage_count > self.max_stages:
            raise TooManyStagesError(stage_count, self.max_stages)

        stages: list[list[str]] = [[] for _ in range(stage_count)]
        for node_id, node_stage in zip(nodes, stage, strict=True):
            stages[node_stage].append(node_id)

        path, minutes = _critical_path(order, parents, _durations(nodes, durations))
        return Resolution(
            order=[node_id for stage_nodes in stages for node_id in stage_nodes],
            stages=stages,
            stage_of=dict(zip(nodes, stage, strict=True)),
            critical_path=[nodes[node] for node in path],
            critical_path_minutes=minutes,
        )

    def resolve_plan(self, plan: Plan) -> Resolution:
        """Resolve a plan's subtasks by ``subtask_id``, ``dependencies`` and
        ``estimated_duration_minutes``."""
        dependencies: dict[str, list[str]] = {}
        durations: dict[str, float] = {}
        for subtask in plan.subtasks:
            if subtask.subtask_id in dependencies:
                raise PlanError(f"subtask id {subtask.subtask_id!r} is used more than once")
            dependencies[subtask.subtask_id] = subtask.dependencies
            durations[subtask.subtask_id] = float(subtask.estimated_duration_minutes)
        return self.resolve(dependencies, durations)


def _parent_indices(
    nodes: list[str], dependencies: Mapping[str, Sequence[str]]
) -> list[tuple[int, ...]]:
    """Each node's dependencies as indices into ``nodes``.

    Tuples, not lists: once the garbage collector sees that they hold only ints it stops tracking
    them, which on large graphs saves a good part of the run time. A dependency listed twice stays
    twice; every later step counts an edge and its copy consistently, so it behaves as one edge.
    """
    index = {node_id: node for node, node_id in enumerate(nodes)}
    lookup = index.__getitem__
    try:
        return [tuple(map(lookup, dependency_ids)) for dependency_ids in dependencies.values()]
    except KeyError:
        for node_id in nodes:
            for dependency in dependencies[node_id]:
                if dependency not in index:
                    raise UnknownDependencyError(node_id, dependency) from None
        raise


def _order_by_stage(parents: list[tuple[int, ...]]) -> tuple[list[int], list[int]]:
    """Kahn's algorithm: a topological order and each node's stage.

    Nodes on or behind a cycle are left out of the order. With a first-in first-out queue, nodes
    come out stage by stage, and a node becomes ready exactly when its dependency of the latest
    stage is taken, so its stage is that one's plus one.
    """
    children: list[list[int]] = [[] for _ in parents]
    for node, node_parents in enumerate(parents):
        for parent in node_parents:
            children[parent].append(node)
    waiting_on = list(map(len, parents))
    stage = [0] * len(parents)
    order = [node for node, count in enumerate(waiting_on) if not count]
    # The loop walks the queue it appends to: a list iterator sees items appended behind it.
    for node in order:
        next_stage = stage[node] + 1
        for child in children[node]:
            waiting_on[child] -= 1
            if not waiting_on[child]:
                stage[child] = next_stage
                order.append(child)
    return order, stage


def _raise_for_cycle(
    nodes: list[str], parents: list[tuple[int, ...]], order: list[int]
) -> NoReturn:
    """Raise for a cycle among the nodes Kahn's algorithm could not order.

    A self-dependency is the plainer mistake, so it is named first. Otherwise every unordered node
    waits on at least one unordered dependency, so walking from one to such a dependency, again and
    again, must come back to a node already walked: that stretch is a cycle.
    """
    for node, node_parents in enumerate(parents):
        if node in node_parents:
            raise SelfDependencyError(nodes[node])
    ordered = bytearray(len(nodes))
    for node in order:
        ordered[node] = 1
    node = ordered.index(0)
    position: dict[int, int] = {}
    walk: list[int] = []
    while node not in position:
        position[node] = len(walk)
        walk.append(node)
        node = next(parent for parent in parents[node] if not ordered[parent])
    cycle = [*walk[position[node] :], node]
    raise CycleError([nodes[member] for member in cycle])


def _durations(nodes: list[str], durations: Mapping[str, float] | None) -> list[float]:
    if not durations:
        return [0.0] * len(nodes)
    minutes = [float(durations.get(node_id, 0.0)) for node_id in nodes]
    for node_id, value in zip(nodes, minutes, strict=True):
        if not (value >= 0.0 and math.isfinite(value)):
            raise InputError(
                f"subtask {node_id!r} has duration {value}; it must be a finite number >= 0"
            )
    return minutes


def _critical_path(
    order: list[int], parents: list[tuple[int, ...]], minutes: list[float]
) -> tuple[list[int], float]:
    """Longest path by (minutes, node count), so zero durations still give the longest chain."""
    if not order:
        return [], 0.0
    length = [0.0] * len(order)
    hops = [0] * len(order)
    previous = [-1] * len(order)
    for node in order:
        best = -1
        best_length = -1.0
        best_hops = -1
        for parent in parents[node]:
            parent_length = length[parent]
            if parent_length > best_length or (
                parent_length == best_length and hops[parent] > best_hops
            ):
                best, best_length, best_hops = parent, parent_length, hops[parent]
        if best >= 0:
            length[node] = best_length + minutes[node]
            hops[node] = best_hops + 1
            previous[node] = best
        else:
            length[node] = minutes[node]

    end = max(range(len(order)), key=lambda node: (length[node], hops[node]))
    path = [end]
    while previous[path[-1]] >= 0:
        path.append(previous[path[-1]])
    path.reverse()
    return path, length[end]

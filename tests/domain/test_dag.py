from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskorch.domain.dag import DependencyResolver, Resolution
from taskorch.domain.errors import (
    CycleError,
    InputError,
    PlanError,
    SelfDependencyError,
    TooManyStagesError,
    UnknownDependencyError,
)
from taskorch.domain.plan import MAX_STAGES, Complexity, Domain, Plan, PlanSubtask, WorkerType

Graph = dict[str, list[str]]


def resolve(graph: Mapping[str, Sequence[str]], **durations: float) -> Resolution:
    return DependencyResolver().resolve(graph, durations or None)


def chain(length: int) -> Graph:
    """n0 <- n1 <- ... : each node depends on the one before it."""
    return {f"n{i}": [f"n{i - 1}"] if i else [] for i in range(length)}


def assert_real_cycle(graph: Mapping[str, Sequence[str]], cycle: list[str]) -> None:
    assert len(cycle) >= 3
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1, "a cycle visits each node once"
    for node, dependency in itertools.pairwise(cycle):
        assert dependency in graph[node], f"{node} -> {dependency} is not an edge"


def assert_consistent(graph: Mapping[str, Sequence[str]], resolution: Resolution) -> None:
    nodes = list(graph)
    assert sorted(resolution.order) == sorted(nodes)
    assert [node for stage in resolution.stages for node in stage] == resolution.order
    position = {node: index for index, node in enumerate(resolution.order)}
    for node, dependencies in graph.items():
        for dependency in dependencies:
            assert position[dependency] < position[node]
            assert resolution.stage_of[dependency] < resolution.stage_of[node]
        expected_stage = 1 + max((resolution.stage_of[d] for d in dependencies), default=-1)
        assert resolution.stage_of[node] == expected_stage
    for index, stage in enumerate(resolution.stages):
        assert stage, "no stage is empty"
        assert stage == [node for node in nodes if resolution.stage_of[node] == index]
        members = set(stage)
        assert not any(members.intersection(graph[node]) for node in stage)


# --- errors -------------------------------------------------------------------------------------


def test_unknown_dependency_names_node_and_missing_id() -> None:
    with pytest.raises(UnknownDependencyError) as caught:
        resolve({"a": [], "b": ["a", "ghost"]})
    assert (caught.value.node, caught.value.dependency) == ("b", "ghost")
    assert "'ghost'" in str(caught.value)


def test_self_dependency() -> None:
    with pytest.raises(SelfDependencyError) as caught:
        resolve({"a": [], "b": ["a", "b"]})
    assert caught.value.node == "b"


def test_self_dependency_is_named_even_beside_a_longer_cycle() -> None:
    with pytest.raises(SelfDependencyError):
        resolve({"x": ["y"], "y": ["x"], "z": ["z"]})


def test_two_cycle() -> None:
    with pytest.raises(CycleError) as caught:
        resolve({"a": ["b"], "b": ["a"]})
    assert caught.value.cycle == ["a", "b", "a"]
    assert str(caught.value) == "dependency cycle: a -> b -> a"


def test_three_cycle_reads_in_dependency_direction() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"]}
    with pytest.raises(CycleError) as caught:
        resolve(graph)
    assert caught.value.cycle == ["a", "b", "c", "a"]
    assert_real_cycle(graph, caught.value.cycle)


def test_cycle_behind_an_acyclic_part_leaves_that_part_out() -> None:
    graph = {
        "start": [],
        "entry": ["start", "c1"],
        "c1": ["c2"],
        "c2": ["start", "c3"],
        "c3": ["c1"],
        "after": ["entry"],
    }
    with pytest.raises(CycleError) as caught:
        resolve(graph)
    assert caught.value.cycle == ["c1", "c2", "c3", "c1"]
    assert_real_cycle(graph, caught.value.cycle)


def test_long_cycle_is_found_without_recursion() -> None:
    graph = chain(50_000)
    graph["n0"] = ["n49999"]
    with pytest.raises(CycleError) as caught:
        DependencyResolver(max_stages=None).resolve(graph)
    assert len(caught.value.cycle) == 50_001
    assert_real_cycle(graph, caught.value.cycle)


def test_negative_duration_is_refused() -> None:
    with pytest.raises(InputError, match="'a'"):
        resolve({"a": []}, a=-1.0)


def test_max_stages_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_stages"):
        DependencyResolver(max_stages=0)


# --- stages -------------------------------------------------------------------------------------


def test_stages_keep_input_order_and_never_hold_a_dependency() -> None:
    graph = {
        "docs": ["impl", "tests"],
        "impl": ["design"],
        "audit": ["design"],
        "design": [],
        "tests": ["impl"],
        "lint": [],
    }
    resolution = resolve(graph)
    assert resolution.stages == [["design", "lint"], ["impl", "audit"], ["tests"], ["docs"]]
    assert resolution.stage_of == {
        "docs": 3,
        "impl": 1,
        "audit": 1,
        "design": 0,
        "tests": 2,
        "lint": 0,
    }
    assert resolution.order == ["design", "lint", "impl", "audit", "tests", "docs"]
    assert_consistent(graph, resolution)


def test_duplicate_dependencies_count_once() -> None:
    graph = {"a": [], "b": ["a", "a"], "c": ["b", "a", "b"]}
    resolution = resolve(graph, a=1, b=2, c=3)
    assert resolution.stages == [["a"], ["b"], ["c"]]
    assert resolution.critical_path == ["a", "b", "c"]
    assert resolution.critical_path_minutes == 6


def test_empty_graph() -> None:
    resolution = resolve({})
    assert resolution == Resolution([], [], {}, [], 0.0)
    assert resolution.execution_plan() == {}


def test_a_chain_of_ten_stages_passes() -> None:
    assert len(resolve(chain(MAX_STAGES)).stages) == MAX_STAGES == 10


def test_a_chain_of_eleven_stages_asks_to_split() -> None:
    with pytest.raises(TooManyStagesError) as caught:
        resolve(chain(11))
    assert (caught.value.stages, caught.value.limit) == (11, 10)
    assert "split the requirement" in str(caught.value)


def test_no_stage_limit() -> None:
    resolution = DependencyResolver(max_stages=None).resolve(chain(50_000))
    assert len(resolution.stages) == 50_000
    assert len(resolution.critical_path) == 50_000


def test_execution_plan_keys() -> None:
    resolution = resolve({"b": ["a"], "a": [], "c": ["a"], "d": ["b", "c"]})
    assert resolution.execution_plan() == {
        "stage_1": ["a"],
        "stage_2": ["b", "c"],
        "stage_3": ["d"],
    }


# --- critical path ------------------------------------------------------------------------------


def test_critical_path_on_known_graph() -> None:
    graph = {
        "design": [],
        "impl": ["design"],
        "audit": ["design"],
        "tests": ["impl"],
        "docs": ["impl", "audit"],
    }
    resolution = resolve(graph, design=15, impl=30, audit=40, tests=10, docs=5)
    # design-impl-tests = 55, design-impl-docs = 50, design-audit-docs = 60
    assert resolution.critical_path == ["design", "audit", "docs"]
    assert resolution.critical_path_minutes == 60


def test_missing_durations_count_as_zero_and_ties_prefer_the_longest_chain() -> None:
    graph = {"a": [], "b": ["a"], "c": ["b"], "x": []}
    resolution = resolve(graph, x=0.0)
    assert resolution.critical_path == ["a", "b", "c"]
    assert resolution.critical_path_minutes == 0.0
    assert resolve(graph, x=1.0).critical_path == ["x"]


def test_resolve_plan_uses_subtask_ids_dependencies_and_minutes() -> None:
    def subtask(subtask_id: str, minutes: int, *dependencies: str) -> PlanSubtask:
        return PlanSubtask(
            subtask_id=subtask_id,
            parent_task_id="task-42",
            title=subtask_id,
            assigned_to=Domain.DEVELOPMENT,
            worker_type=WorkerType.IMPLEMENTATION,
            dependencies=list(dependencies),
            estimated_duration_minutes=minutes,
        )

    plan = Plan(
        orchestration_id="orch-task-42",
        parent_task_id="task-42",
        task_title="Add authentication",
        complexity=Complexity.MEDIUM,
        subtasks=[
            subtask("auth-001-design", 15),
            subtask("auth-002-impl", 30, "auth-001-design"),
            subtask("auth-003-audit", 20, "auth-001-design"),
            subtask("auth-004-docs", 10, "auth-002-impl", "auth-003-audit"),
        ],
    )
    resolution = DependencyResolver().resolve_plan(plan)
    assert resolution.execution_plan() == {
        "stage_1": ["auth-001-design"],
        "stage_2": ["auth-002-impl", "auth-003-audit"],
        "stage_3": ["auth-004-docs"],
    }
    assert resolution.critical_path == ["auth-001-design", "auth-002-impl", "auth-004-docs"]
    assert resolution.critical_path_minutes == 55

    duplicated = plan.model_copy(update={"subtasks": [*plan.subtasks, subtask("auth-002-impl", 1)]})
    with pytest.raises(PlanError, match="auth-002-impl"):
        DependencyResolver().resolve_plan(duplicated)


# --- properties ---------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 25) -> tuple[Graph, dict[str, float]]:
    """A random DAG (node i depends only on nodes before it), listed in a shuffled order, with
    whole-minute durations for some of its nodes."""
    count = draw(st.integers(min_value=0, max_value=max_nodes))
    ids = [f"t{i}" for i in range(count)]
    dependencies = {
        node: [ids[j] for j in draw(st.lists(st.integers(0, i - 1), max_size=4))] if i else []
        for i, node in enumerate(ids)
    }
    shuffled = draw(st.permutations(ids))
    durations = {node: float(draw(st.integers(0, 120))) for node in shuffled if draw(st.booleans())}
    return {node: dependencies[node] for node in shuffled}, durations


def longest_path_minutes(graph: Graph, durations: dict[str, float]) -> float:
    @functools.cache
    def ending_at(node: str) -> float:
        before = max((ending_at(d) for d in graph[node]), default=0.0)
        return before + durations.get(node, 0.0)

    return max(map(ending_at, graph), default=0.0)


@settings(deadline=None)
@given(dags())
def test_random_dags_resolve_consistently(dag: tuple[Graph, dict[str, float]]) -> None:
    graph, durations = dag
    resolution = DependencyResolver(max_stages=None).resolve(graph, durations)
    assert_consistent(graph, resolution)

    path = resolution.critical_path
    assert bool(path) == bool(graph)
    for dependency, node in itertools.pairwise(path):
        assert dependency in graph[node], f"{node} does not depend on {dependency}"
    assert resolution.critical_path_minutes == sum(durations.get(node, 0.0) for node in path)
    assert all(resolution.critical_path_minutes >= minutes for minutes in durations.values())
    assert resolution.critical_path_minutes == longest_path_minutes(graph, durations)


@settings(deadline=None)
@given(dags(max_nodes=30), st.data())
def test_a_back_edge_raises_a_cycle_of_real_edges(
    dag: tuple[Graph, dict[str, float]], data: st.DataObject
) -> None:
    graph, _ = dag
    with_dependencies = [node for node, dependencies in graph.items() if dependencies]
    if not with_dependencies:
        graph = {**graph, "first": [], "second": ["first"]}
        with_dependencies = ["second"]
    top = data.draw(st.sampled_from(with_dependencies))
    # Walk down from `top` to one of its (transitive) dependencies; making that one depend on
    # `top` closes a cycle.
    bottom = data.draw(st.sampled_from(graph[top]))
    for _ in range(data.draw(st.integers(0, 5))):
        if not graph[bottom]:
            break
        bottom = data.draw(st.sampled_from(graph[bottom]))
    graph[bottom] = [*graph[bottom], top]

    with pytest.raises(CycleError) as caught:
        DependencyResolver(max_stages=None).resolve(graph)
    assert_real_cycle(graph, caught.value.cycle)

"""serialise_overlaps: subtasks declaring overlapping files get ordered; nothing else changes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskorch.domain.dag import DependencyResolver
from taskorch.domain.errors import CycleError, PlanError, TooManyStagesError
from taskorch.domain.overlap import (
    OverlapEdge,
    covers,
    normalise_path,
    overlap_edges,
    paths_overlap,
    serialise_overlaps,
    serialise_plan,
)
from taskorch.domain.plan import Complexity, Domain, Plan, PlanSubtask, WorkerType


def sub(key: str, files: list[str], deps: list[str] | None = None) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=key,
        parent_task_id="task-1",
        title=key,
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        dependencies=deps or [],
        files_affected=files,
    )


def deps_of(subtasks: list[PlanSubtask]) -> dict[str, list[str]]:
    return {s.subtask_id: s.dependencies for s in subtasks}


def reaches(graph: dict[str, list[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    stack = list(graph[start])
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(graph[node])
    return False


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("src/app.py", "src/app.py", True),
        ("./src/app.py", "src//app.py", True),
        ("src/auth", "src/auth/login.py", True),
        ("src/auth/", "src/auth/login.py", True),
        ("src/auth.py", "src/auth/login.py", False),
        ("src/app.py", "src/apps.py", False),
        ("tests/*.py", "tests/test_x.py", True),
        ("tests/*.py", "docs/x.md", False),
        ("src/*", "src/deep/x.py", True),
        ("src", "src/*.py", True),
        ("docs/*.md", "docs/**/*.rst", True),
        ("docs/*.md", "src/*.py", False),
        ("", "src/app.py", False),
    ],
)
def test_paths_overlap(a: str, b: str, expected: bool) -> None:
    assert paths_overlap(a, b) is expected
    assert paths_overlap(b, a) is expected


def test_covers_is_for_changed_files() -> None:
    assert covers("src/auth/", "src/auth/login.py")
    assert covers("tests/*.py", "tests/test_a.py")
    assert not covers("src/auth/login.py", "src/auth")
    assert not covers("docs/a.md", "docs/b.md")


def test_no_overlap_changes_nothing_but_returns_new_objects() -> None:
    plan = [sub("a", ["a.py"]), sub("b", ["b.py"], ["a"]), sub("c", [])]
    result = serialise_overlaps(plan)
    assert deps_of(result) == deps_of(plan)
    assert all(new is not old for new, old in zip(result, plan, strict=True))
    assert all(
        new.files_affected is not old.files_affected for new, old in zip(result, plan, strict=True)
    )


def test_the_later_of_two_overlapping_subtasks_waits_for_the_earlier() -> None:
    plan = [sub("a", ["src/app.py"]), sub("b", ["src/app.py", "b.py"])]
    result = serialise_overlaps(plan)
    assert deps_of(result) == {"a": [], "b": ["a"]}
    assert plan[1].dependencies == []  # the input is not changed
    assert overlap_edges(plan)[0].files == ("src/app.py",)


def test_later_means_by_stage_before_list_order() -> None:
    # "late" comes first in the list but sits in stage 2; "early" is in stage 1
    plan = [sub("late", ["x.py"], ["root"]), sub("root", []), sub("early", ["x.py"])]
    assert deps_of(serialise_overlaps(plan))["late"] == ["root", "early"]


def test_subtasks_already_ordered_get_no_extra_edge() -> None:
    plan = [sub("a", ["x.py"]), sub("mid", [], ["a"]), sub("b", ["x.py"], ["mid"])]
    assert deps_of(serialise_overlaps(plan)) == deps_of(plan)


def test_a_chain_on_one_file_gets_one_edge_per_link() -> None:
    plan = [sub(key, ["shared.md"]) for key in "abcd"]
    assert deps_of(serialise_overlaps(plan)) == {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}


def test_stretching_a_plan_past_the_stage_limit_raises() -> None:
    plan = [sub(f"s{i}", ["same.py"]) for i in range(11)]
    with pytest.raises(TooManyStagesError):
        serialise_overlaps(plan)
    assert len(serialise_overlaps(plan, resolver=DependencyResolver(max_stages=None))) == 11


def test_invalid_input_plans_are_refused() -> None:
    with pytest.raises(CycleError):
        serialise_overlaps([sub("a", [], ["b"]), sub("b", [], ["a"])])
    with pytest.raises(PlanError, match="more than once"):
        serialise_overlaps([sub("a", []), sub("a", [])])


def test_serialise_plan_recomputes_the_execution_plan() -> None:
    plan = Plan(
        orchestration_id="orch-1",
        parent_task_id="task-1",
        task_title="t",
        complexity=Complexity.MEDIUM,
        subtasks=[sub("a", ["x.py"]), sub("b", ["x.py"]), sub("c", ["y.py"])],
        execution_plan={"stage_1": ["a", "b", "c"]},
    )
    result = serialise_plan(plan)
    assert result.execution_plan == {"stage_1": ["a", "c"], "stage_2": ["b"]}
    assert plan.execution_plan == {"stage_1": ["a", "b", "c"]}


FILES = ["a.py", "b.py", "src", "src/c.py", "src/*.py", "docs/d.md"]


@st.composite
def dags(draw: st.DrawFn, files: list[str] = FILES, *, most: int = 9) -> list[PlanSubtask]:
    count = draw(st.integers(min_value=1, max_value=most))
    subtasks = []
    for index in range(count):
        deps = (
            draw(st.sets(st.integers(min_value=0, max_value=index - 1), max_size=3))
            if index
            else set()
        )
        declared = draw(st.lists(st.sampled_from(files), max_size=3, unique=True))
        subtasks.append(sub(f"s{index}", declared, [f"s{d}" for d in sorted(deps)]))
    return draw(st.permutations(subtasks))


@settings(max_examples=300, deadline=None)
@given(dags())
def test_after_serialising_every_overlapping_pair_is_ordered(plan: list[PlanSubtask]) -> None:
    result = serialise_overlaps(plan, resolver=DependencyResolver(max_stages=None))
    graph = deps_of(result)
    DependencyResolver(max_stages=None).resolve(graph)  # still a DAG
    for s in plan:  # original edges kept, in front
        assert graph[s.subtask_id][: len(s.dependencies)] == s.dependencies
    for i, first in enumerate(result):
        for second in result[i + 1 :]:
            overlap = any(
                paths_overlap(x, y) for x in first.files_affected for y in second.files_affected
            )
            if overlap:
                assert reaches(graph, first.subtask_id, second.subtask_id) or reaches(
                    graph, second.subtask_id, first.subtask_id
                )
    for edge in overlap_edges(plan):  # an added edge always joins an overlapping pair
        assert edge.files
    # idempotent: a serialised plan needs no more edges
    assert overlap_edges(result) == []


def pairwise_edges(subtasks: list[PlanSubtask]) -> list[OverlapEdge]:
    """The edges as first written: every later subtask compared with every earlier one."""
    dependencies = {s.subtask_id: list(s.dependencies) for s in subtasks}
    files = {
        s.subtask_id: [e for e in (normalise_path(f) for f in s.files_affected) if e]
        for s in subtasks
    }
    ancestors: dict[str, set[str]] = {}
    placed: list[str] = []
    added: list[OverlapEdge] = []
    for node in DependencyResolver(max_stages=None).resolve(dependencies).order:
        reach: set[str] = set()
        for dependency in dependencies[node]:
            reach |= {dependency, *ancestors[dependency]}
        for earlier in reversed(placed):
            if earlier in reach or not files[node]:
                continue
            shared = tuple(
                e for e in files[node] if any(paths_overlap(e, o) for o in files[earlier])
            )
            if shared:
                added.append(OverlapEdge(node, earlier, shared))
                reach |= {earlier, *ancestors[earlier]}
        ancestors[node] = reach
        placed.append(node)
    return added


NESTED = ["a", "a/b", "a/b/c.py", "a/bc.py", "./a/b/", "x/y.py", "a/*.py", "a/b/*", "", "?.md"]


@settings(max_examples=300, deadline=None)
@given(dags(NESTED, most=12))
def test_the_indexed_edges_are_the_pairwise_ones(plan: list[PlanSubtask]) -> None:
    assert overlap_edges(plan) == pairwise_edges(plan)

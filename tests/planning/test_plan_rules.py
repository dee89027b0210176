"""The plan rules, enforced on any plan whatever produced it (see taskorch.planning.rules)."""

from __future__ import annotations

import pytest

from taskorch.domain.dag import DependencyResolver
from taskorch.domain.errors import (
    CycleError,
    PlanError,
    SelfDependencyError,
    TooManyStagesError,
    UnknownDependencyError,
)
from taskorch.domain.plan import (
    Complexity,
    Domain,
    Plan,
    PlanSubtask,
    Progress,
    ResourceEstimate,
    WorkerType,
)
from taskorch.planning import enforce


def subtask(subtask_id: str, *deps: str, files: int = 0, minutes: int = 20) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=subtask_id,
        parent_task_id="whatever",
        title=f"Do {subtask_id}",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        dependencies=list(deps),
        estimated_duration_minutes=minutes,
        estimated_tokens=1000,
        files_affected=[f"src/{subtask_id}_{n}.py" for n in range(files)],
        status="running",
    )


def plan(*subtasks: PlanSubtask, complexity: Complexity = Complexity.HIGH) -> Plan:
    return Plan(
        orchestration_id="orch-task-1",
        parent_task_id="task-1",
        task_title="t",
        complexity=complexity,
        subtasks=list(subtasks),
        execution_plan={"stage_1": ["made-up"]},
        resource_estimate=ResourceEstimate(total_subtasks=99, token_estimate=1),
        progress=Progress(current_stage=4, completed_subtasks=["a"]),
    )


def test_derived_parts_are_recomputed_not_trusted() -> None:
    enforced = enforce(plan(subtask("a"), subtask("b", "a"), subtask("c", "a"), subtask("d", "b")))
    assert enforced.execution_plan == {"stage_1": ["a"], "stage_2": ["b", "c"], "stage_3": ["d"]}
    estimate = enforced.resource_estimate
    assert estimate.total_subtasks == 4
    assert estimate.token_estimate == 4000
    assert estimate.duration_estimate == "60-80 minutes"
    assert estimate.parallelization_possible
    assert enforced.progress == Progress()
    assert {s.parent_task_id for s in enforced.subtasks} == {"task-1"}
    assert {s.status for s in enforced.subtasks} == {"pending"}


def test_enforce_is_idempotent_and_round_trips() -> None:
    once = enforce(plan(subtask("a"), subtask("b", "a"), subtask("c", "b", files=7)))
    assert enforce(once) == once
    assert Plan.from_json(once.to_json()) == once


def test_more_than_three_files_are_split_into_parts_and_rewired() -> None:
    enforced = enforce(plan(subtask("a", files=7), subtask("b", "a"), subtask("c", "b")))
    ids = [s.subtask_id for s in enforced.subtasks]
    assert ids == ["a-p1", "a-p2", "a-p3", "b", "c"]
    assert [len(s.files_affected) for s in enforced.subtasks[:3]] == [3, 3, 1]
    assert enforced.subtask("b").dependencies == ["a-p1", "a-p2", "a-p3"]
    assert enforced.execution_plan["stage_1"] == ["a-p1", "a-p2", "a-p3"]
    declared = [f for s in enforced.subtasks for f in s.files_affected]
    assert declared == [f"src/a_{n}.py" for n in range(7)]


def test_splitting_beyond_ten_subtasks_is_an_error() -> None:
    subtasks = [subtask(f"s{n}") for n in range(8)] + [subtask("big", files=9)]
    with pytest.raises(PlanError, match="declares 9 files"):
        enforce(plan(*subtasks))


def test_more_than_ten_subtasks_is_an_error_not_a_silent_clamp() -> None:
    with pytest.raises(PlanError, match="11 subtasks, more than the limit of 10"):
        enforce(plan(*(subtask(f"s{n}") for n in range(11))))


def test_two_subtasks_fit_neither_simple_nor_complex() -> None:
    with pytest.raises(PlanError, match="2 subtasks"):
        enforce(plan(subtask("a"), subtask("b")))
    with pytest.raises(PlanError, match="once subtasks with more than 3 files are split"):
        enforce(plan(subtask("a", files=4)))


def test_complexity_follows_the_count() -> None:
    assert enforce(plan(subtask("a"))).complexity is Complexity.SIMPLE
    three = [subtask("a"), subtask("b"), subtask("c")]
    assert enforce(plan(*three, complexity=Complexity.SIMPLE)).complexity is Complexity.MEDIUM
    assert enforce(plan(*three, complexity=Complexity.HIGH)).complexity is Complexity.HIGH


def test_duplicate_ids_are_an_error() -> None:
    with pytest.raises(PlanError, match="used more than once"):
        enforce(plan(subtask("a"), subtask("a"), subtask("c")))


@pytest.mark.parametrize(
    ("subtasks", "error"),
    [
        ((subtask("a", "c"), subtask("b", "a"), subtask("c", "b")), CycleError),
        ((subtask("a", "a"), subtask("b"), subtask("c")), SelfDependencyError),
        ((subtask("a", "ghost"), subtask("b"), subtask("c")), UnknownDependencyError),
    ],
)
def test_dependency_errors_come_from_the_resolver(
    subtasks: tuple[PlanSubtask, ...], error: type[PlanError]
) -> None:
    with pytest.raises(error):
        enforce(plan(*subtasks))


def test_more_than_ten_stages_cannot_happen_within_ten_subtasks_but_is_checked() -> None:
    chain = [subtask("s0")] + [subtask(f"s{n}", f"s{n - 1}") for n in range(1, 10)]
    assert len(enforce(plan(*chain)).execution_plan) == 10
    with pytest.raises(TooManyStagesError, match="split the requirement"):
        enforce(plan(*chain), resolver=DependencyResolver(max_stages=9))


def test_duplicate_dependencies_and_files_are_folded() -> None:
    a = subtask("a")
    b = subtask("b", "a", "a").model_copy(update={"files_affected": ["x.py", " x.py", ""]})
    enforced = enforce(plan(a, b, subtask("c")))
    assert enforced.subtask("b").dependencies == ["a"]
    assert enforced.subtask("b").files_affected == ["x.py"]

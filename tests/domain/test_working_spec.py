"""The working spec a plan must meet before anything runs (the pipeline's pre-dispatch check)."""

from __future__ import annotations

import pytest

from taskorch.domain.errors import WorkingSpecError
from taskorch.domain.plan import Complexity, Domain, Plan, PlanSubtask, WorkerType
from taskorch.domain.working_spec import check_working_spec, outside_repository, spec_violations


def _plan(*files: list[str], title: str = "Do it") -> Plan:
    subtasks = [
        PlanSubtask(
            subtask_id=f"s{i}",
            parent_task_id="t",
            title=title,
            assigned_to=Domain.DEVELOPMENT,
            worker_type=WorkerType.IMPLEMENTATION,
            files_affected=declared,
        )
        for i, declared in enumerate(files)
    ]
    return Plan(
        orchestration_id="o",
        parent_task_id="t",
        task_title="T",
        complexity=Complexity.HIGH,
        subtasks=subtasks,
    )


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../up.py", "src/../../up.py", "~/notes.md", "C:\\win.ini", "..\\up.py"],
)
def test_paths_outside_the_repository_are_named(path: str) -> None:
    assert outside_repository(path)
    [violation] = spec_violations(_plan([path]))
    assert violation.subtask == "s0"
    assert path in violation.problem


@pytest.mark.parametrize(
    "path", ["src/app.py", "./docs/", "src/../README.md", "tests/*.py", "a..b"]
)
def test_paths_inside_the_repository_pass(path: str) -> None:
    assert not outside_repository(path)
    assert spec_violations(_plan([path])) == []


def test_git_internals_budget_and_title_are_checked_and_all_named_at_once() -> None:
    plan = _plan([".git/config"], [f"f{i}.py" for i in range(11)], ["ok.py"])
    with pytest.raises(WorkingSpecError) as raised:
        check_working_spec(plan)
    message = raised.value.message
    assert "subtask s0 declares files inside .git: .git/config" in message
    assert "subtask s1 declares 11 files, more than the budget of 10" in message
    assert "s2" not in message
    assert spec_violations(_plan(["a.py"], title="  ")) != []
    check_working_spec(_plan([f"f{i}.py" for i in range(11)]), max_files=None)

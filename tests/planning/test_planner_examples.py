"""The examples the planner must get right, and TaskNLP's face, on the offline planner."""

from __future__ import annotations

import time

import pytest

from taskorch.domain.errors import InputError, PlanError
from taskorch.domain.plan import Complexity, Domain, Plan, PlanSubtask, WorkerType
from taskorch.planning import HEURISTIC, HeuristicPlanner, TaskNLP

AUTH = "Add authentication system with security audit and documentation"
REST_API = (
    "Create a REST API for user management with authentication, including login, registration, "
    "and password reset functionality"
)


def heuristic(text: str) -> Plan:
    return HeuristicPlanner().plan(text, task_ref="task-42")


def stage_of(plan: Plan, subtask_id: str) -> int:
    for index, ids in enumerate(plan.execution_plan.values()):
        if subtask_id in ids:
            return index
    raise AssertionError(f"{subtask_id} is in no stage")


def only(plan: Plan) -> PlanSubtask:
    assert len(plan.subtasks) == 1
    return plan.subtasks[0]


def test_security_scan_is_simple_and_owned_by_security() -> None:
    plan = heuristic("Scan repository for security vulnerabilities")
    assert plan.complexity is Complexity.SIMPLE
    subtask = only(plan)
    assert subtask.assigned_to is Domain.SECURITY
    assert subtask.worker_type is WorkerType.AUDIT
    assert subtask.estimated_duration_minutes < 30
    assert plan.execution_plan == {"stage_1": [subtask.subtask_id]}


def test_bug_fix_is_simple_development_with_its_file() -> None:
    plan = heuristic("Fix bug in dashboard/server/index.js line 42")
    assert plan.complexity is Complexity.SIMPLE
    subtask = only(plan)
    assert subtask.assigned_to is Domain.DEVELOPMENT
    assert subtask.worker_type is WorkerType.IMPLEMENTATION
    assert subtask.files_affected == ["dashboard/server/index.js"]


def test_portfolio_listing_is_simple_inventory() -> None:
    plan = heuristic("List all repositories in the portfolio")
    assert plan.complexity is Complexity.SIMPLE
    assert only(plan).assigned_to is Domain.INVENTORY


def test_authentication_system_is_six_subtasks_in_five_stages() -> None:
    plan = heuristic(AUTH)
    assert plan.complexity is not Complexity.SIMPLE
    assert len(plan.subtasks) == 6
    kinds = [[plan.subtask(i).worker_type for i in ids] for ids in plan.execution_plan.values()]
    assert kinds == [
        [WorkerType.PLANNER],
        [WorkerType.IMPLEMENTATION, WorkerType.IMPLEMENTATION],
        [WorkerType.TEST],
        [WorkerType.AUDIT],
        [WorkerType.DOCUMENTATION],
    ]
    stage_two = [plan.subtask(i).title for i in plan.execution_plan["stage_2"]]
    assert any("backend" in t for t in stage_two)
    assert any("frontend" in t for t in stage_two)
    assert plan.subtasks[0].subtask_id == "auth-001-design"
    assert plan.resource_estimate.masters == ["development", "security", "docs"]
    assert plan.resource_estimate.parallelization_possible
    assert plan.resource_estimate.total_subtasks == 6


def test_rest_api_names_login_registration_and_password_reset_with_tests_after() -> None:
    plan = heuristic(REST_API)
    assert plan.complexity is not Complexity.SIMPLE
    titles = " | ".join(s.title.lower() for s in plan.subtasks)
    for feature in ("login", "registration", "password reset"):
        assert feature in titles
    implementations = [s for s in plan.subtasks if s.worker_type is WorkerType.IMPLEMENTATION]
    tests = [s for s in plan.subtasks if s.worker_type is WorkerType.TEST]
    assert len(implementations) == 3
    assert tests
    assert {stage_of(plan, s.subtask_id) for s in implementations} == {1}, "built in parallel"
    for test in tests:
        assert stage_of(plan, test.subtask_id) > 1
        assert set(test.dependencies) == {s.subtask_id for s in implementations}
    assert any(s.worker_type is WorkerType.AUDIT for s in plan.subtasks), "auth gets an audit"


def test_explicit_order_beats_phase_order() -> None:
    plan = heuristic("Write the docs in docs/guide.md, then implement the parser in parser.py")
    docs = next(s for s in plan.subtasks if s.worker_type is WorkerType.DOCUMENTATION)
    build = next(s for s in plan.subtasks if "parser.py" in s.files_affected)
    assert stage_of(plan, docs.subtask_id) < stage_of(plan, build.subtask_id)


def test_after_cue_reorders_the_clause() -> None:
    plan = heuristic("Deploy the service to staging after the integration tests pass")
    deploy = next(s for s in plan.subtasks if s.worker_type is WorkerType.DEPLOY)
    test = next(s for s in plan.subtasks if s.worker_type is WorkerType.TEST)
    assert stage_of(plan, test.subtask_id) < stage_of(plan, deploy.subtask_id)


def test_many_files_are_split_into_parts_of_three() -> None:
    files = [f"src/module_{n}.py" for n in range(7)]
    plan = heuristic("Refactor " + ", ".join(files))
    declared = [f for s in plan.subtasks for f in s.files_affected]
    assert sorted(declared) == sorted(files)
    assert all(len(s.files_affected) <= 3 for s in plan.subtasks)


def test_a_long_list_is_merged_into_at_most_ten_subtasks() -> None:
    features = ", ".join(f"feature {n}" for n in range(25))
    plan = heuristic(f"Build a shop including {features}")
    assert 3 <= len(plan.subtasks) <= 10
    described = " ".join(s.title + s.description for s in plan.subtasks)
    assert all(f"feature {n}" in described for n in range(25)), "merged, not dropped"


def test_one_megabyte_requirement_is_planned_in_seconds() -> None:
    paragraph = (
        "Add a reporting module in src/reports/builder.py with export to CSV, then write tests "
        "and document the API. After review, deploy it to staging.\n"
    )
    text = paragraph * (1_000_000 // len(paragraph) + 1)
    started = time.monotonic()
    plan = heuristic(text)
    assert time.monotonic() - started < 5
    assert 3 <= len(plan.subtasks) <= 10
    assert all(len(s.description) < 10_000 for s in plan.subtasks)


def test_same_text_same_plan() -> None:
    assert heuristic(REST_API).to_json() == heuristic(REST_API).to_json()
    derived = HeuristicPlanner().plan(REST_API)
    assert derived.parent_task_id.startswith("task-")
    assert derived == HeuristicPlanner().plan(REST_API)


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "?!  ..."])
def test_empty_requirement_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        heuristic(text)


async def test_task_nlp_without_provider_is_the_heuristic_planner() -> None:
    async with TaskNLP() as nlp:
        result = await nlp.plan(AUTH, task_ref=42)
    assert result.planner == HEURISTIC
    assert not result.used_fallback
    assert "heuristic" in result.describe()
    assert result.plan.parent_task_id == "task-42"
    assert result.plan.orchestration_id == "orch-task-42"


async def test_parse_requirements_classifies_items() -> None:
    requirements = await TaskNLP().parse_requirements(REST_API)
    assert [i.text for i in requirements.items if not i.umbrella] == [
        "login",
        "registration",
        "password reset",
    ]
    assert requirements.items[0].umbrella
    assert requirements.metadata.is_complex
    assert "rest" in requirements.metadata.technologies


async def test_extract_task_metadata() -> None:
    metadata = await TaskNLP().extract_task_metadata(
        "Fix the login crash in app/auth.py and api/session.ts using Django"
    )
    assert metadata.files == ["app/auth.py", "api/session.ts"]
    assert metadata.languages == ["python", "typescript"]
    assert "django" in metadata.technologies
    assert metadata.risk_level.value == "high"
    assert not metadata.is_complex


async def test_decompose_task_plans_given_items() -> None:
    subtasks = await TaskNLP().decompose_task(
        ["implement the importer", "write tests for the importer", "document the format"],
        "Import tasks from CSV",
    )
    kinds = [s.worker_type for s in subtasks]
    assert WorkerType.IMPLEMENTATION in kinds
    assert WorkerType.TEST in kinds
    assert kinds.index(WorkerType.TEST) > kinds.index(WorkerType.IMPLEMENTATION)


async def test_identify_dependencies_by_phase_and_refuses_cycles() -> None:
    def subtask(subtask_id: str, kind: WorkerType, *deps: str) -> PlanSubtask:
        return PlanSubtask(
            subtask_id=subtask_id,
            parent_task_id="t",
            title=subtask_id,
            assigned_to=Domain.DEVELOPMENT,
            worker_type=kind,
            dependencies=list(deps),
        )

    nlp = TaskNLP()
    found = await nlp.identify_dependencies(
        [
            subtask("d", WorkerType.DOCUMENTATION),
            subtask("a", WorkerType.IMPLEMENTATION),
            subtask("b", WorkerType.IMPLEMENTATION),
            subtask("t", WorkerType.TEST),
        ]
    )
    assert found == {"d": ["t"], "a": [], "b": [], "t": ["a", "b"]}
    with pytest.raises(PlanError, match="cycle"):
        await nlp.identify_dependencies(
            [subtask("a", WorkerType.TEST, "b"), subtask("b", WorkerType.TEST, "a")]
        )


async def test_generate_instructions_names_files_and_done_criteria() -> None:
    plan = heuristic("Fix bug in dashboard/server/index.js line 42")
    text = await TaskNLP().generate_instructions(plan.subtasks[0], context="Node 20, Express")
    assert "dashboard/server/index.js" in text
    assert "Done when:" in text
    assert "Node 20, Express" in text


async def test_validate_completion() -> None:
    subtask = heuristic("Fix bug in dashboard/server/index.js line 42").subtasks[0]
    nlp = TaskNLP()
    done = await nlp.validate_completion(
        subtask, {"output": "Fixed the off-by-one.", "files_changed": ["dashboard/server/index.js"]}
    )
    assert done.complete
    assert not done.warnings
    failed = await nlp.validate_completion(subtask, "Ran pytest: 2 failed, 10 passed")
    assert not failed.complete
    assert "failure" in failed.reasons[0]
    empty = await nlp.validate_completion(subtask, {"output": "", "exit_code": 1})
    assert not empty.complete
    assert len(empty.reasons) == 2
    stray = await nlp.validate_completion(subtask, {"summary": "ok", "files_changed": ["x.py"]})
    assert stray.complete
    assert stray.warnings

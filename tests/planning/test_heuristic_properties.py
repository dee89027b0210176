"""Properties of the heuristic planner for any text: no crash, every rule kept, deterministic."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskorch.domain.dag import DependencyResolver
from taskorch.domain.errors import InputError
from taskorch.domain.plan import MAX_FILES_PER_SUBTASK, MAX_STAGES, Complexity, Plan
from taskorch.planning import HeuristicPlanner

_VOCABULARY = [
    "add", "build", "fix", "write", "tests", "then", "after", "before", "and", "with",
    "including", "security", "audit", "documentation", "deploy", "list", "all", "repositories",
    "login", "system", "design", "src/app.py", "web/ui.tsx", "README.md", "Dockerfile", ",", ";",
    ".", ":", "-", "1.", "*", "\n", "the", "API", "password", "scan", "refactor", "docs/x.md",
]  # fmt: skip
_PHRASES = st.lists(st.sampled_from(_VOCABULARY), max_size=60).map(" ".join)
_REQUIREMENTS = st.one_of(st.text(max_size=400), _PHRASES)


def assert_keeps_the_rules(plan: Plan) -> None:
    count = len(plan.subtasks)
    if plan.complexity is Complexity.SIMPLE:
        assert count == 1
    else:
        assert 3 <= count <= 10
    ids = [s.subtask_id for s in plan.subtasks]
    assert len(set(ids)) == len(ids)
    assert all(len(s.files_affected) <= MAX_FILES_PER_SUBTASK for s in plan.subtasks)
    assert all(s.title and s.success_criteria for s in plan.subtasks)
    resolution = DependencyResolver(max_stages=MAX_STAGES).resolve_plan(plan)
    assert plan.execution_plan == resolution.execution_plan()
    assert plan.resource_estimate.total_subtasks == count
    assert Plan.from_json(plan.to_json()) == plan


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_REQUIREMENTS)
def test_any_text_gives_a_valid_plan_or_an_empty_input_error(text: str) -> None:
    planner = HeuristicPlanner()
    try:
        plan = planner.plan(text)
    except InputError:
        assert not any(ch.isalnum() for ch in text)
        return
    assert_keeps_the_rules(plan)
    assert planner.plan(text) == plan, "deterministic"
    assert HeuristicPlanner().plan(text).to_json() == plan.to_json()

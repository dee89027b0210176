from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskorch.domain.errors import InvalidTransitionError
from taskorch.domain.states import (
    SUBTASK_TERMINAL,
    SUBTASK_TRANSITIONS,
    WORKFLOW_CANCELLABLE,
    WORKFLOW_TERMINAL,
    WORKFLOW_TRANSITIONS,
    SubtaskState,
    WorkflowState,
    can_transition_subtask,
    can_transition_workflow,
    check_subtask_transition,
    check_workflow_transition,
)

WORKFLOW_STRINGS = [
    "pending",
    "processing",
    "nlp_parsing",
    "task_decomposition",
    "dependency_resolution",
    "agent_assignment",
    "pr_created",
    "validation_running",
    "validation_failed",
    "validation_passed",
    "merged",
    "failed",
    "cancelled",
]

HAPPY_PATH = [
    "pending",
    "nlp_parsing",
    "task_decomposition",
    "dependency_resolution",
    "agent_assignment",
    "processing",
    "pr_created",
    "validation_running",
    "validation_passed",
    "merged",
]
PRE_PR = HAPPY_PATH[: HAPPY_PATH.index("processing") + 1]

# The arrows drawn in DESIGN.md, written out by hand rather than derived from states.py.
EXPECTED_WORKFLOW_ARROWS: set[tuple[str, str]] = {
    *itertools.pairwise(HAPPY_PATH),
    ("validation_running", "validation_failed"),
    ("validation_failed", "processing"),
    *((state, "cancelled") for state in PRE_PR),
    ("processing", "failed"),
    # No dead ends (issue 13): cancel works in every non-terminal state, a final merge that
    # conflicts goes back to a fix-up round, and a rejected review fails the workflow.
    *((state, "cancelled") for state in HAPPY_PATH[HAPPY_PATH.index("processing") + 1 : -1]),
    ("validation_passed", "validation_failed"),
    ("validation_passed", "failed"),
    ("validation_failed", "cancelled"),
}


def test_workflow_states_are_exactly_the_thirteen_stored_strings() -> None:
    assert sorted(state.value for state in WorkflowState) == sorted(WORKFLOW_STRINGS)
    assert len(WorkflowState) == 13
    assert set(WORKFLOW_TRANSITIONS) == set(WorkflowState)


def test_subtask_states_are_the_stored_strings() -> None:
    assert {state.value for state in SubtaskState} == {
        "pending",
        "queued",
        "assigned",
        "running",
        "completed",
        "failed",
        "cancelled",
        "blocked",
    }
    assert set(SUBTASK_TRANSITIONS) == set(SubtaskState)


def test_expected_table_has_the_drawn_arrow_count() -> None:
    # 9 happy-path arrows, 2 for the validation loop, 6 cancellations, 1 failure.
    assert len(EXPECTED_WORKFLOW_ARROWS) == 24


@pytest.mark.parametrize(
    ("from_state", "to_state"), list(itertools.product(WORKFLOW_STRINGS, repeat=2))
)
def test_workflow_transition_table_is_exactly_the_design(from_state: str, to_state: str) -> None:
    allowed = (from_state, to_state) in EXPECTED_WORKFLOW_ARROWS
    assert can_transition_workflow(WorkflowState(from_state), WorkflowState(to_state)) is allowed
    if allowed:
        assert check_workflow_transition(from_state, to_state) == (
            WorkflowState(from_state),
            WorkflowState(to_state),
        )
    else:
        with pytest.raises(InvalidTransitionError) as caught:
            check_workflow_transition(from_state, to_state)
        assert str(caught.value) == f"illegal workflow transition: {from_state} -> {to_state}"
        assert (caught.value.from_state, caught.value.to_state) == (from_state, to_state)


def test_terminal_and_cancellable_workflow_states() -> None:
    assert {state.value for state in WORKFLOW_TERMINAL} == {"merged", "failed", "cancelled"}
    non_terminal = {s.value for s in WorkflowState} - {"merged", "failed", "cancelled"}
    assert {state.value for state in WORKFLOW_CANCELLABLE} == non_terminal


def test_unknown_workflow_state_is_refused_naming_both() -> None:
    with pytest.raises(InvalidTransitionError, match="pending -> finished"):
        check_workflow_transition("pending", "finished")
    with pytest.raises(InvalidTransitionError, match="done -> merged"):
        check_workflow_transition("done", "merged")


def test_subtask_happy_path_and_retry() -> None:
    path = ["pending", "queued", "assigned", "running", "queued", "assigned", "running"]
    for from_state, to_state in itertools.pairwise([*path, "completed"]):
        check_subtask_transition(from_state, to_state)


def test_illegal_subtask_transition_names_both_states() -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        check_subtask_transition("completed", "running")
    assert str(caught.value) == "illegal subtask transition: completed -> running"
    assert caught.value.kind == "subtask"


def test_terminal_subtask_states() -> None:
    assert {state.value for state in SUBTASK_TERMINAL} == {"completed", "cancelled"}


# --- random walks -------------------------------------------------------------------------------


@settings(deadline=None)
@given(st.data())
def test_random_workflow_walks(data: st.DataObject) -> None:
    state = WorkflowState.PENDING
    visited = [state]
    for _ in range(data.draw(st.integers(0, 60), label="steps")):
        allowed = WORKFLOW_TRANSITIONS[state]
        if bool(allowed) and data.draw(st.booleans(), label="follow an arrow"):
            target = data.draw(st.sampled_from(sorted(allowed)), label="allowed target")
        else:
            target = data.draw(st.sampled_from(list(WorkflowState)), label="any target")
        if (state.value, target.value) in EXPECTED_WORKFLOW_ARROWS:
            check_workflow_transition(state, target)
            state = target
            visited.append(state)
        else:
            with pytest.raises(InvalidTransitionError):
                check_workflow_transition(state, target)

    for before, after in itertools.pairwise(visited):
        assert before not in WORKFLOW_TERMINAL, f"left terminal state {before}"
        if after is WorkflowState.MERGED:
            assert before is WorkflowState.VALIDATION_PASSED
    if state in WORKFLOW_TERMINAL:
        for target in WorkflowState:
            with pytest.raises(InvalidTransitionError):
                check_workflow_transition(state, target)


@settings(deadline=None)
@given(st.data())
def test_random_subtask_walks(data: st.DataObject) -> None:
    state = SubtaskState.PENDING
    visited = [state]
    for _ in range(data.draw(st.integers(0, 60), label="steps")):
        allowed = SUBTASK_TRANSITIONS[state]
        if bool(allowed) and data.draw(st.booleans(), label="follow an arrow"):
            target = data.draw(st.sampled_from(sorted(allowed)), label="allowed target")
        else:
            target = data.draw(st.sampled_from(list(SubtaskState)), label="any target")
        if can_transition_subtask(state, target):
            assert check_subtask_transition(state, target) == (state, target)
            state = target
            visited.append(state)
        else:
            with pytest.raises(InvalidTransitionError):
                check_subtask_transition(state, target)

    for before, after in itertools.pairwise(visited):
        assert before not in SUBTASK_TERMINAL, f"left terminal state {before}"
        if after is SubtaskState.COMPLETED:
            assert before is SubtaskState.RUNNING
    if state in SUBTASK_TERMINAL:
        for target in SubtaskState:
            with pytest.raises(InvalidTransitionError):
                check_subtask_transition(state, target)

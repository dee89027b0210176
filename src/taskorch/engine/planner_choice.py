"""Which planner a workflow plans with: ``ENABLE_NLP``, unless the workflow was started with its
own choice (the MCP tool's ``enableNLP``), stored with its options so that a resumed or
``serve``-carried workflow plans the same way; and the planning itself (:func:`plan_with`, the
engine's planner)."""

from __future__ import annotations

from taskorch.domain.models import parse_task_ref
from taskorch.domain.plan import Plan
from taskorch.domain.states import WorkflowState
from taskorch.settings import Settings
from taskorch.store import Store

OPTION = "enable_nlp"


async def planner_settings(store: Store, settings: Settings, ref: str) -> Settings:
    """The settings to plan task ``ref``'s workflow with (the one being planned: one workflow
    carries a task at a time)."""
    planning = await store.list_workflows(
        task_id=parse_task_ref(ref), status=WorkflowState.NLP_PARSING
    )
    for workflow in planning:
        chosen = workflow.metadata.get("options", {}).get(OPTION)
        if isinstance(chosen, bool) and chosen != settings.enable_nlp:
            return settings.model_copy(update={OPTION: chosen})
    return settings


async def plan_with(
    store: Store, settings: Settings, text: str, context: str | None, ref: str
) -> tuple[Plan, str]:
    """Task ``ref``'s plan for ``text`` by the planner its workflow chose, and which one made it."""
    from taskorch.planning import TaskNLP
    from taskorch.runtime import tracing

    with tracing.span("planner plan") as notes:  # in the workflow's trace, when tracing
        chosen = await planner_settings(store, settings, ref)
        async with TaskNLP.from_settings(chosen) as nlp:
            result = await nlp.plan(text, context, ref)
        notes.set("taskorch.planner", result.describe())
        notes.set("taskorch.subtasks", len(result.plan.subtasks))
    return result.plan, result.describe()

"""An adapter wrapper that tells the agent where its subtask stands in the plan.

Before each attempt it reads the workflow's subtasks and its task, and appends the briefing of
:mod:`taskorch.domain.briefing` (the requirement and its context, the dependencies done and what
they did, the subtasks waiting on this one, the ones running in parallel) to the instructions the
worker built; the wrapped adapter sends the whole text as its prompt (a CLI agent's ``{prompt}``
or stdin, agentapi's message). The requirement's context is the run's ``--context`` (the
workflow's ``options``) and the task's own ``metadata["context"]``; a task imported from Task
Master carries its details and test strategy in its description already.

Registered agents run wrapped (``taskorch run``, ``serve``, ``worker``); the simulated agent reads
no prompt and is not, so benchmarks pay nothing for it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask, Heartbeat
from taskorch.domain.briefing import Briefing, briefing_for, with_briefing
from taskorch.domain.models import Subtask, Task
from taskorch.store import Store


class BriefedAgent:
    def __init__(self, inner: AgentAdapter, store: Store) -> None:
        self.inner = inner
        self.store = store

    @property
    def name(self) -> str:
        return self.inner.name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        briefing = await self.briefing(task.subtask)
        instructions = with_briefing(task.instructions, briefing)
        return await self.inner.run(dataclasses.replace(task, instructions=instructions), heartbeat)

    async def briefing(self, subtask: Subtask) -> Briefing:
        siblings = await self.store.list_subtasks(subtask.workflow_id)
        workflow = await self.store.get_workflow(subtask.workflow_id)
        task = await self.store.get_task(workflow.task_id)
        return briefing_for(
            subtask,
            siblings,
            requirement=requirement_of(task),
            context=context_of(workflow.metadata, task.metadata),
        )


def requirement_of(task: Task) -> str:
    title, description = task.title.strip(), task.description.strip()
    if not description or description == title:
        return f"{task.ref}: {title}"
    if description.startswith(title):
        return f"{task.ref}: {description}"
    return f"{task.ref}: {title}\n{description}"


def context_of(workflow_metadata: dict[str, Any], task_metadata: dict[str, Any]) -> str:
    options = workflow_metadata.get("options")
    found = [
        options.get("context") if isinstance(options, dict) else None,
        task_metadata.get("context"),
    ]
    texts = [text.strip() for text in found if isinstance(text, str) and text.strip()]
    return "\n".join(dict.fromkeys(texts))  # the same text given twice is said once

"""What a workflow's pull request says: its title (on GitHub, the merge commit's too) and a body
with a table of the subtasks, their agents and the files they changed."""

from __future__ import annotations

from collections.abc import Sequence

from taskorch.domain.models import Subtask, Workflow


def pr_title(workflow: Workflow) -> str:
    plan = workflow.metadata.get("plan", {})
    return f"taskorch: {plan.get('task_title') or workflow.id}"[:200]


def pr_body(workflow: Workflow, subtasks: Sequence[Subtask]) -> str:
    lines = [
        f"Workflow `{workflow.id}` opened this pull request.",
        "",
        "| subtask | agent | files |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s.key} | {s.agent_id or 'default'} | "
        f"{', '.join((s.result or {}).get('changed_files', [])) or '-'} |"
        for s in subtasks
    ]
    return "\n".join(lines)

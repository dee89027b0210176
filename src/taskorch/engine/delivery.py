"""Delivering a workflow's code with git: a workspace per workflow (the target repository from
``--repo``, or a managed scratch repository), subtask attempts in their own worktrees that count
only once merged, then the pull request record, validation and the merge to the base branch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask, Heartbeat
from taskorch.domain.errors import AgentError
from taskorch.domain.models import JSONDict, Subtask, Workflow
from taskorch.domain.overlap import serialise_plan
from taskorch.domain.plan import Plan, PlanSubtask
from taskorch.engine.pipeline import ValidationOutcome
from taskorch.planning.completion import check_completion
from taskorch.runtime.github import GitHubConfig, open_pull_request
from taskorch.runtime.validation import ValidationReport, run_test_command, working_spec_check
from taskorch.runtime.workspace import Workspace
from taskorch.runtime.workspace_records import MergeStatus
from taskorch.store import Store


class GitDelivery:
    def __init__(
        self,
        store: Store,
        home: Path,
        *,
        test_command: Sequence[str] | None = None,
        test_timeout_s: float = 600.0,
        github: GitHubConfig | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.test_command = list(test_command) if test_command else None
        self.test_timeout_s = test_timeout_s
        self.github = github
        self._workspaces: dict[str, Workspace] = {}

    async def workspace(self, workflow_id: str) -> Workspace:
        """The workflow's workspace, created on first use (and again after a restart)."""
        if workflow_id not in self._workspaces:
            workflow = await self.store.get_workflow(workflow_id)
            repo = workflow.metadata.get("options", {}).get("repo")
            if repo:
                workspace = await Workspace.for_repo(
                    Path(repo), workflow_id, home=self.home, require_clean=False
                )
            else:
                workspace = await Workspace.managed(self.home, workflow_id)
            await workspace.start()
            self._workspaces[workflow_id] = workspace
        return self._workspaces[workflow_id]

    async def prepare(self, workflow: Workflow, plan: Plan) -> Plan:
        await self.workspace(workflow.id)
        return serialise_plan(plan)

    async def open_pull_request(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> JSONDict:
        summary = (await (await self.workspace(workflow.id)).pr_summary()).to_json()
        summary["subtasks"] = [
            {
                "key": s.key,
                "declared_files": s.files_affected,
                "actual_files": (s.result or {}).get("changed_files", []),
                "agent": s.agent_id,
                "attempts": s.attempts,
                "tokens_in": (s.result or {}).get("tokens_in"),
                "tokens_out": (s.result or {}).get("tokens_out"),
                "cost_usd": (s.result or {}).get("cost_usd"),
            }
            for s in subtasks
        ]
        summary["commits_count"] = len(summary["commits"])
        if self.github is not None:
            workspace = await self.workspace(workflow.id)
            pull = await open_pull_request(
                self.github,
                workspace.repo,
                head=workspace.workflow_branch,
                base=workspace.base_branch,
                title=_title(workflow),
                body=_body(workflow, subtasks),
            )
            summary["github"] = pull
            summary["url"] = pull["url"]
        return summary

    async def validate(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> ValidationOutcome:
        workspace = await self.workspace(workflow.id)
        test = await run_test_command(
            self.test_command, workspace.workflow_worktree, self.test_timeout_s
        )
        declared = {s.key: s.files_affected for s in subtasks}
        actual = {s.key: list((s.result or {}).get("changed_files", [])) for s in subtasks}
        report = ValidationReport(test, working_spec_check(declared, actual))
        incomplete = _incomplete(workflow, subtasks)
        summary = report.summary
        if incomplete:
            summary += f"; {len(incomplete)} subtask(s) not complete against their criteria"
        return ValidationOutcome(
            passed=report.passed and not incomplete,
            summary=summary,
            log=report.output_tail,
            findings=[str(f) for f in report.findings] + incomplete,
        )

    async def merge(self, workflow: Workflow) -> JSONDict:
        return (await (await self.workspace(workflow.id)).merge_to_base()).to_json()

    async def cleanup(self, workflow: Workflow, *, cancelled: bool) -> None:
        workspace = await self.workspace(workflow.id)
        await workspace.cleanup(cancelled=cancelled)
        self._workspaces.pop(workflow.id, None)


def _incomplete(workflow: Workflow, subtasks: Sequence[Subtask]) -> list[str]:
    """Each subtask's result judged against its success criteria (``validate_completion``)."""
    planned = {s.subtask_id: s for s in Plan.model_validate(workflow.metadata["plan"]).subtasks}
    problems = []
    for sub in subtasks:
        spec = planned.get(sub.key) or PlanSubtask(
            subtask_id=sub.key,
            parent_task_id="-",
            title=sub.title,
            assigned_to=sub.assigned_to,
            worker_type=sub.worker_type,
            files_affected=sub.files_affected,
            success_criteria=sub.success_criteria,
        )
        result = dict(sub.result or {})
        result.setdefault("files_changed", result.get("changed_files", []))
        check = check_completion(spec, result)
        problems += [f"{sub.key}: {reason}" for reason in check.reasons]
    return problems


def _title(workflow: Workflow) -> str:
    plan = workflow.metadata.get("plan", {})
    return f"taskorch: {plan.get('task_title') or workflow.id}"[:200]


def _body(workflow: Workflow, subtasks: Sequence[Subtask]) -> str:
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


class WorkspaceAgent:
    """Runs an agent in the subtask's own worktree; the attempt succeeds only once the subtask's
    branch merged into the workflow branch ("done means merged")."""

    def __init__(self, inner: AgentAdapter, delivery: GitDelivery) -> None:
        self.inner = inner
        self.delivery = delivery

    @property
    def name(self) -> str:
        return self.inner.name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        subtask = task.subtask
        workspace = await self.delivery.workspace(subtask.workflow_id)
        if await workspace.is_merged(subtask.key):
            # A crash came between the merge landing and the subtask being marked done: the
            # work is in; running the agent again would only redo it.
            return AgentResult(
                True, "already merged before a restart", data={"already_merged": True}
            )
        workdir = await workspace.prepare_subtask(subtask.key)
        result = await self.inner.run(dataclasses.replace(task, workdir=workdir), heartbeat)
        heartbeat()
        if not result.success:
            raise AgentError(f"agent reported failure: {result.output[-500:]}")
        await workspace.commit_all(subtask.key, f"{subtask.key}: {subtask.title}")
        changed = await workspace.changed_files(subtask.key)
        merge = await workspace.merge_subtask(subtask.key)
        if merge.status is MergeStatus.CONFLICT:
            raise AgentError(merge.message, error_class="dependency")
        if merge.status is MergeStatus.NOTHING_TO_MERGE:
            raise AgentError(
                f"agent {self.name} reported success for {subtask.key} but changed nothing",
                error_class="agent",
            )
        data = {**result.data, "changed_files": changed, "merge": merge.to_json()}
        return dataclasses.replace(result, data=data)

"""Delivering a workflow's code with git: a workspace per workflow (its repository, a path or a git
URL, from ``--repo``, the task or ``TASKORCH_REPO``; else this host's scratch repository), subtask
attempts in their own worktrees that count only once merged on the repository, then the pull
request record, validation and the merge to the base branch, each checked in git.

:class:`GitDelivery` is the pipeline's delivery (where the work goes, the workspaces, the pull
request, verification, validation, the merge, the clean-up); the agents that run subtasks in
their worktrees and merge them live in ``workspace_agent``, what the pull request says in
``pull_request_text``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from taskorch.domain.errors import HostError, InputError
from taskorch.domain.models import JSONDict, Subtask, Task, Workflow
from taskorch.domain.overlap import serialise_plan
from taskorch.domain.plan import Plan, PlanSubtask
from taskorch.domain.states import WORKFLOW_TERMINAL, WorkflowState
from taskorch.engine.pipeline import ValidationOutcome
from taskorch.engine.pull_request_text import pr_body, pr_title
from taskorch.engine.workspace_agent import DeliveryAware, WorkspaceAgent
from taskorch.runtime import remote
from taskorch.runtime.git_recovery import recover_git_state
from taskorch.runtime.github import (
    GitHubConfig,
    merge_pull_request,
    open_pull_request,
    remote_url,
)
from taskorch.runtime.remote import Origin, parse_origin
from taskorch.runtime.repository import check_repository, scratch_repository
from taskorch.runtime.validation import ValidationReport, run_test_command, working_spec_check
from taskorch.runtime.workspace import Workspace
from taskorch.store import Store

# What the engine, the CLI, tests and the benchmarks import from here, wherever it now lives.
__all__ = [
    "MERGE_POLICIES",
    "TARGET_REUSE_S",
    "DeliveryAware",
    "GitDelivery",
    "WorkspaceAgent",
    "check_merge_policy",
]

MERGE_POLICIES = ("auto", "approve")
TARGET_REUSE_S = 1.0
"""How long a repository checked for one task's target stands for the next tasks' (a batch)."""


class GitDelivery:
    def __init__(
        self,
        store: Store,
        home: Path,
        *,
        test_command: Sequence[str] | None = None,
        test_timeout_s: float = 600.0,
        github: GitHubConfig | None = None,
        default_repo: str | None = None,
        merge_policy: str = "auto",
        worktrees: Path | None = None,
    ) -> None:
        self.store = store
        self.home = home.absolute()
        self.worktrees = worktrees
        self.default_repo = default_repo
        self.merge_policy = check_merge_policy(merge_policy)
        self.test_command = list(test_command) if test_command else None
        self.test_timeout_s = test_timeout_s
        self.github = github
        self._workspaces: dict[str, Workspace] = {}
        self._resolved: dict[tuple[str, str | None], tuple[Origin, str, float]] = {}

    async def target(self, task: Task, options: JSONDict) -> JSONDict:
        """``options`` with where the work goes settled before the workflow starts, so that every
        host agrees: ``repo`` (an absolute path or a URL: the option, else the task's, else
        ``TASKORCH_REPO``, else this host's scratch repository), its ``base_branch`` and the
        ``merge_policy``. A repository that cannot be reached is a one-line error now."""
        chosen = options.get("repo") or task.metadata.get("repo") or self.default_repo
        wanted = options.get("base_branch") or task.metadata.get("base_branch")
        origin, base = await self._resolve(str(chosen or ""), str(wanted) if wanted else None)
        policy = options.get("merge_policy") or task.metadata.get("merge_policy")
        return {
            **options,
            "repo": origin.url,
            "base_branch": base,
            "merge_policy": check_merge_policy(str(policy or self.merge_policy)),
        }

    async def _resolve(self, chosen: str, wanted: str | None) -> tuple[Origin, str]:
        """The repository (``chosen``; empty: the scratch one) and its base branch (``wanted``;
        None: its HEAD's), checked; a batch of tasks for one repository checks it once (for
        :data:`TARGET_REUSE_S`), not once per task."""
        key = (chosen, wanted)
        known = self._resolved.get(key)
        if known is not None and time.monotonic() - known[2] < TARGET_REUSE_S:
            return known[0], known[1]
        if chosen:
            origin = parse_origin(chosen)
        else:
            origin = Origin(str(await scratch_repository(self.home)))
        if origin.path is not None:
            root, base = await check_repository(origin.path, wanted, require_clean=False)
            origin = Origin(str(root))
        else:
            await asyncio.to_thread(self.home.mkdir, parents=True, exist_ok=True)
            base = await remote.remote_base(origin, self.home, wanted)
        self._resolved[key] = (origin, base, time.monotonic())
        return origin, base

    async def workspace(self, workflow_id: str) -> Workspace:
        """The workflow's workspace on this host, created on first use (and after a restart):
        worktrees cut from this host's mirror of the workflow's repository."""
        if workflow_id not in self._workspaces:
            workspace = await self._open(workflow_id)
            await workspace.start()
            self._workspaces[workflow_id] = workspace
        return self._workspaces[workflow_id]

    async def recover_git(self) -> None:
        """Set right what a killed process left in git on this host (stale lock files, a base
        branch moved half-way in a user's checkout): at the start of a worker, ``serve`` and
        ``resume``."""
        local: set[Path] = set()
        for workflow in await self.store.list_workflows():
            repo = workflow.metadata.get("options", {}).get("repo")
            if repo and workflow.status not in WORKFLOW_TERMINAL:
                path = parse_origin(str(repo)).path
                if path is not None:
                    local.add(path)
        await recover_git_state(self.home, sorted(local))

    def leftover_workflows(self) -> list[str]:
        """Workflows that have worktrees on this host (see :func:`engine.leftovers`)."""
        roots = [self.worktrees or self.home / "worktrees", self.home / "worktrees"]
        found = {p.name for root in roots if root.is_dir() for p in root.glob("wf-*") if p.is_dir()}
        return sorted(found)

    async def cleanup_leftover(self, workflow: Workflow) -> None:
        """:meth:`cleanup` of a workflow that ended without it (a kill came between), without
        setting its workspace up again first."""
        workspace = self._workspaces.pop(workflow.id, None) or await self._open(workflow.id)
        await workspace.cleanup(cancelled=workflow.status is WorkflowState.CANCELLED)

    async def _open(self, workflow_id: str) -> Workspace:
        """The workspace object, not set up (see :meth:`workspace`)."""
        workflow = await self.store.get_workflow(workflow_id)
        options = workflow.metadata.get("options", {})
        repo = options.get("repo")
        if not repo:  # a workflow started before repositories were recorded
            return await Workspace.managed(self.home, workflow_id, worktrees=self.worktrees)
        origin = parse_origin(str(repo))
        if origin.path is not None and not origin.path.is_dir():
            raise HostError(
                f"repository {origin.url} is not on host {socket.gethostname()}; run "
                "this workflow's work where it is, or give the repository as a URL"
            )
        mirror = await remote.mirror(self.home, origin)
        return Workspace(
            mirror,
            workflow_id,
            str(options.get("base_branch") or "main"),
            home=self.home,
            worktrees=self.worktrees,
            origin=origin,
            exclusive=self.store.connector.exclusive,
        )

    def delivers(self, workflow: Workflow) -> bool:
        """Whether this workflow's subtasks carry code through git (all that the pipeline
        starts; not the bare queue workloads of benchmarks)."""
        return "repo" in workflow.metadata.get("options", {})

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
            # A local repository pushes to its own remote; a URL's mirror to the URL itself.
            local = workspace.origin.path if workspace.origin else None
            pull = await open_pull_request(
                self.github,
                local or workspace.repo,
                head=workspace.workflow_branch,
                base=workspace.base_branch,
                title=pr_title(workflow),
                body=pr_body(workflow, subtasks),
            )
            summary["github"] = pull
            summary["url"] = pull["url"]
        return summary

    async def verify(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> dict[str, str]:
        """Subtask key -> what is wrong, for each completed subtask whose work git does not show
        on the repository's workflow branch: no merge of it there, or a file it reported changed
        missing from that merge. Empty when git agrees with the records."""
        landed = await (await self.workspace(workflow.id)).landed_merges(len(subtasks))
        problems: dict[str, str] = {}
        for sub in subtasks:
            if sub.status.value != "completed":
                continue
            merge = landed.get(sub.key)
            if merge is None:
                problems[sub.key] = (
                    f"subtask {sub.key} is recorded completed but no merge of it is on the "
                    "workflow branch of the repository"
                )
                continue
            reported = (sub.result or {}).get("changed_files") or []
            missing = sorted(set(map(str, reported)) - set(merge[1]))
            if missing:
                problems[sub.key] = (
                    f"subtask {sub.key}'s merge on the repository lacks files it reported: "
                    + ", ".join(missing)
                )
        return problems

    async def validate(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> ValidationOutcome:
        workspace = await self.workspace(workflow.id)
        if self.test_command:  # (a checkout only for it to run in: the rest reads refs)
            await workspace.refresh()
        conflicts = await workspace.base_conflicts()
        if conflicts:
            return ValidationOutcome(
                passed=False,
                summary=f"the workflow branch conflicts with {workspace.base_branch} in: "
                + ", ".join(conflicts),
                findings=[f"conflict with {workspace.base_branch}: {path}" for path in conflicts],
                base_conflicts=conflicts,
            )
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
        """Land the workflow branch on the repository's base branch (with a GitHub pull request:
        by merging it through GitHub's API, so GitHub and taskorch agree), then read back from
        git that the base contains it: the record carries the base's commit (``base_commit``)."""
        workspace = await self.workspace(workflow.id)
        repository = workspace.origin.url if workspace.origin else str(workspace.repo)
        pull = (workflow.metadata.get("pull_request") or {}).get("github")
        if self.github is not None and pull:
            return await self._merge_on_github(workflow, workspace, pull)
        merged = await workspace.merge_to_base()
        base_commit = await workspace.base_contains_workflow()
        if base_commit is None:
            raise HostError(
                f"the merge of {workspace.workflow_branch} did not reach "
                f"{workspace.base_branch} of {repository}"
            )
        return {
            **merged.to_json(),
            "repository": repository,
            "base_commit": base_commit,
            "verified": True,
        }

    async def _merge_on_github(
        self, workflow: Workflow, workspace: Workspace, pull: JSONDict
    ) -> JSONDict:
        assert self.github is not None
        head = await workspace.workflow_tip()
        merged = await merge_pull_request(
            self.github, str(pull["repository"]), int(pull["number"]), head, pr_title(workflow)
        )
        # Read back from GitHub's copy itself: the origin, or a local repository's own remote.
        local = workspace.origin.path if workspace.origin else None
        url = await remote_url(local) if local is not None else None
        base_commit = await workspace.base_contains_workflow(from_url=url)
        if base_commit is None:
            raise HostError(
                f"GitHub reports pull request #{pull['number']} merged, but "
                f"{workspace.base_branch} of {url or workspace.origin} does not contain "
                f"{workspace.workflow_branch}"
            )
        return {
            "base_branch": workspace.base_branch,
            "commit": merged.get("sha"),
            "pull_request": pull["number"],
            "merged_by": "github",
            "repository": url or (workspace.origin.url if workspace.origin else ""),
            "base_commit": base_commit,
            "verified": True,
        }

    async def cleanup(self, workflow: Workflow, *, cancelled: bool) -> None:
        workspace = await self.workspace(workflow.id)
        await workspace.cleanup(cancelled=cancelled)
        self._workspaces.pop(workflow.id, None)


def check_merge_policy(policy: str) -> str:
    if policy not in MERGE_POLICIES:
        raise InputError(f"merge policy {policy!r} is not one of: {', '.join(MERGE_POLICIES)}")
    return policy


def _incomplete(workflow: Workflow, subtasks: Sequence[Subtask]) -> list[str]:
    """Each subtask's result judged against its success criteria (``validate_completion``)."""
    from taskorch.planning.completion import check_completion  # (only validation needs it)

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

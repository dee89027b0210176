"""The pipeline's delivery stage: from the pull request to the merge, with fix-up rounds.

``pr_created`` → ``validation_running`` (the delivery validates) → ``validation_passed`` (held for
approval under the ``approve`` merge policy, then merged: the task completes with the workflow)
or ``validation_failed`` (a fix-up subtask with the failure, back to ``processing``; bounded by
:data:`MAX_FIX_ROUNDS`). What happens to the code is :class:`Delivery`'s business
(``engine/delivery.py``); these steps only decide when.
"""

from __future__ import annotations

from typing import Any

from taskorch.domain.errors import MergeConflictError
from taskorch.domain.models import TaskStatus, Workflow
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.domain.states import WorkflowState
from taskorch.engine.pipeline_moves import WorkflowMoves
from taskorch.engine.pipeline_planning import plan_of, subtask_priority
from taskorch.engine.pipeline_processing import unproven
from taskorch.engine.status import waiting_for
from taskorch.runtime.faults import pause_point

W = WorkflowState

MAX_FIX_ROUNDS = 2


class DeliverySteps:
    def __init__(self, moves: WorkflowMoves) -> None:
        self.moves = moves
        self.store = moves.store
        self.delivery = moves.delivery

    async def pr_created(self, workflow: Workflow) -> Workflow:
        return await self.moves.move(workflow, W.VALIDATION_RUNNING)

    async def validate(self, workflow: Workflow) -> Workflow:
        subtasks = await self.store.list_subtasks(workflow.id)
        outcome = await self.delivery.validate(workflow, subtasks)
        report = {
            "passed": outcome.passed,
            "summary": outcome.summary,
            "findings": outcome.findings,
            "log_tail": outcome.log[-4000:],
            "base_conflicts": outcome.base_conflicts,
        }
        target = W.VALIDATION_PASSED if outcome.passed else W.VALIDATION_FAILED
        rounds = list(workflow.metadata.get("validations", []))
        return await self.moves.move(
            workflow, target, {"validation": report, "validations": [*rounds, report]}
        )

    async def fix(self, workflow: Workflow) -> Workflow:
        rounds = int(workflow.metadata.get("fix_rounds", 0))
        report = workflow.metadata.get("validation", {})
        if rounds >= MAX_FIX_ROUNDS:
            moved = await self.moves.move(workflow, W.PROCESSING, {"fix_rounds": rounds})
            return await self.moves.fail(
                moved,
                {
                    "reason": f"validation still failing after {rounds} fix-up round(s)",
                    "validation": report,
                },
            )
        key = f"fix-{rounds + 1}"
        conflicts = [str(f) for f in report.get("base_conflicts") or []]
        fixup = (
            _merge_fixup(workflow, key, conflicts) if conflicts else _fixup(workflow, key, report)
        )
        await self.store.add_subtasks(
            workflow.id, [fixup], {key: 0}, priority=await subtask_priority(self.store, workflow)
        )
        await self.moves.queue.link_workflow(workflow.id)
        merge_base = list(workflow.metadata.get("merge_base_fixups", []))
        return await self.moves.move(
            workflow,
            W.PROCESSING,
            {
                "fix_rounds": rounds + 1,
                "fixup_subtask": key,
                "merge_base_fixups": [*merge_base, key] if conflicts else merge_base,
            },
        )

    async def merge(self, workflow: Workflow) -> Workflow | None:
        if waiting_for_approval(workflow):
            return None  # waits for `taskorch approve` (or reject, or cancel)
        subtasks = await self.store.list_subtasks(workflow.id)
        problems = await unproven(self.delivery, workflow, subtasks)
        if problems:
            moved = await self.moves.move(workflow, W.VALIDATION_FAILED, {"unproven": problems})
            return await self.moves.fail(moved, {"reason": next(iter(problems.values()))})
        await pause_point("workflow:validated")
        try:
            result = await self.delivery.merge(workflow)
        except MergeConflictError as exc:
            report = {
                "passed": False,
                "summary": exc.message,
                "findings": [f"conflict with the base branch: {f}" for f in exc.files],
                "log_tail": "",
                "base_conflicts": exc.files,
            }
            rounds = list(workflow.metadata.get("validations", []))
            return await self.moves.move(
                workflow,
                W.VALIDATION_FAILED,
                {"validation": report, "validations": [*rounds, report]},
            )
        await pause_point("workflow:base-merged")
        # The task ends with its workflow, in one transaction: no kill leaves it carried.
        moved = await self.moves.move(
            workflow,
            W.MERGED,
            {"merge": result},
            result={"merged": True, **result},
            task_status=TaskStatus.COMPLETED,
        )
        await pause_point("workflow:merged")
        await self.moves.clean(moved, cancelled=False)
        return moved


def waiting_for_approval(workflow: Workflow) -> bool:
    """Validated, held by the ``approve`` merge policy until someone approves or rejects."""
    return waiting_for(workflow) == "approval"


def _merge_fixup(workflow: Workflow, key: str, conflicts: list[str]) -> PlanSubtask:
    base = workflow.metadata.get("options", {}).get("base_branch") or "the base branch"
    return PlanSubtask(
        subtask_id=key,
        parent_task_id=plan_of(workflow).parent_task_id,
        title=f"Resolve the conflicts with {base} ({key})",
        description=(
            f"{base} changed since this work began and now conflicts with it. It has been merged "
            "into your working copy; the conflicting files hold git's conflict markers "
            "(<<<<<<<, =======, >>>>>>>). Edit each so that both changes are kept as they "
            "should be, and remove every marker. Conflicting files: " + ", ".join(conflicts)
        ),
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        files_affected=conflicts,
        success_criteria=f"no conflict markers remain and the branch merges cleanly into {base}",
    )


def _fixup(workflow: Workflow, key: str, report: dict[str, Any]) -> PlanSubtask:
    log_tail = str(report.get("log_tail", ""))[-2000:]
    findings = "; ".join(str(f) for f in report.get("findings", []))
    return PlanSubtask(
        subtask_id=key,
        parent_task_id=plan_of(workflow).parent_task_id,
        title=f"Fix validation failures ({key})",
        description=f"Validation failed: {report.get('summary', '')}\n{findings}\n\n{log_tail}",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        success_criteria="the validation that failed passes",
    )

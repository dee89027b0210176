"""The agents a worker runs a delivering workflow's subtasks on.

:class:`WorkspaceAgent` runs an agent in the subtask's own worktree and counts its attempt only
once the subtask's branch merged into the workflow branch ("done means merged"), or races a
best-of-N attempt (:mod:`taskorch.engine.best_of`); :class:`DeliveryAware` sends each claimed
subtask to it or to a plain agent, by whether its workflow delivers through git. The git work
around an agent beats the attempt's heartbeat (:func:`_beating`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask, Heartbeat
from taskorch.agents.process import output_log
from taskorch.domain.errors import AgentError
from taskorch.domain.models import Subtask, Workflow
from taskorch.engine.best_of import BestOf, Checks, Race, plan_subtask
from taskorch.engine.evidence import start_output_log
from taskorch.runtime.faults import pause_point
from taskorch.runtime.workspace import Workspace
from taskorch.runtime.workspace_records import MergeStatus

# For the annotations only: the delivery module re-exports these wrappers.
if TYPE_CHECKING:
    from taskorch.engine.delivery import GitDelivery


class WorkspaceAgent:
    """Runs an agent in the subtask's own worktree; the attempt succeeds only once the subtask's
    branch merged into the workflow branch ("done means merged")."""

    def __init__(
        self, inner: AgentAdapter, delivery: GitDelivery, best_of: BestOf | None = None
    ) -> None:
        self.inner = inner
        self.delivery = delivery
        self.best_of = best_of
        """The agents a best-of-N attempt races on (None: every attempt runs on ``inner``)."""

    @property
    def name(self) -> str:
        return self.inner.name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        subtask = task.subtask
        # The git work around the agent beats for the attempt: a slow fetch or push is this
        # worker at work, not a dead one whose lease should lapse (and whose subtask would run
        # again). The agent beats for itself.
        async with _beating(heartbeat):
            workspace = await self.delivery.workspace(subtask.workflow_id)
            # Its first attempt (the claim counts it) cannot have merged before: no look.
            if subtask.attempts != 1 and await workspace.is_merged(subtask.key):
                # A crash came between the merge landing and the subtask being marked done:
                # the work is in; running the agent again would only redo it.
                return AgentResult(
                    True, "already merged before a restart", data={"already_merged": True}
                )
            workflow = await self.delivery.store.get_workflow(subtask.workflow_id)
            merge_base = subtask.key in workflow.metadata.get("merge_base_fixups", [])
            race = None if merge_base else await self._race(workspace, task, heartbeat, workflow)
            if race is None:
                workdir = await workspace.prepare_subtask(subtask.key, merge_base=merge_base)
        if race is not None:
            return await race.run()
        # What the agent prints goes to a live output file too, for the dashboard's tail.
        log = start_output_log(self.delivery.home, subtask)  # (an empty file: no thread hop)
        with output_log(log):
            result = await self.inner.run(dataclasses.replace(task, workdir=workdir), heartbeat)
        heartbeat()
        async with _beating(heartbeat):
            await pause_point("subtask:agent-done")
            if not result.success:
                error = AgentError(f"agent reported failure: {result.output[-500:]}")
                raise error.with_usage(result.tokens_in, result.tokens_out, result.cost_usd)
            return await self._deliver(workspace, subtask, result, merge_base=merge_base)

    async def _race(
        self, workspace: Workspace, task: AgentTask, heartbeat: Heartbeat, workflow: Workflow
    ) -> Race | None:
        """A best-of-N race for this attempt, when its subtask asks for more than one
        candidate (see :mod:`taskorch.engine.best_of`)."""
        if self.best_of is None:
            return None
        candidates = await self.best_of.candidates(task.subtask, workflow)
        if candidates <= 1:
            return None
        return Race(
            workspace,
            task,
            heartbeat,
            self.best_of.lineup(task.subtask, candidates),
            spec=plan_subtask(workflow, task.subtask),
            checks=Checks(self.delivery.test_command, self.delivery.test_timeout_s),
            busy=lambda: _beating(heartbeat),
        )

    async def _deliver(
        self, workspace: Workspace, subtask: Subtask, result: AgentResult, *, merge_base: bool
    ) -> AgentResult:
        """Commit the agent's work and merge it into the workflow branch."""
        if merge_base:
            left = await workspace.conflict_markers(subtask.key)
            if left:
                raise AgentError(
                    f"agent {self.name} left conflict markers in: {', '.join(left)}",
                    error_class="agent",
                )
        await workspace.commit_all(subtask.key, f"{subtask.key}: {subtask.title}")
        await pause_point("subtask:committed")
        merge = await workspace.merge_subtask(subtask.key, committed=True)
        if merge.status is MergeStatus.CONFLICT:
            raise AgentError(merge.message, error_class="dependency")
        if merge.status is MergeStatus.NOTHING_TO_MERGE:
            raise AgentError(
                f"agent {self.name} reported success for {subtask.key} but changed nothing",
                error_class="agent",
            )
        # The merge's files are the branch's changes since its branch point (everything was
        # committed above): what changed_files() would read again.
        changed = sorted(merge.files)
        if merge_base:
            # Its merge brings in everything the base gained meanwhile; its own work is the
            # conflicts it resolved.
            changed = sorted(set(changed) & set(subtask.files_affected))
        await pause_point("subtask:merged")
        data = {**result.data, "changed_files": changed, "merge": merge.to_json()}
        return dataclasses.replace(result, data=data)


GIT_BEAT_S = 0.2


@contextlib.asynccontextmanager
async def _beating(heartbeat: Heartbeat) -> AsyncIterator[None]:
    """Heartbeats every :data:`GIT_BEAT_S` while the body runs (the attempt's timeout still
    bounds it)."""

    async def beat() -> None:
        while True:
            heartbeat()
            await asyncio.sleep(GIT_BEAT_S)

    beater = asyncio.create_task(beat())
    try:
        yield
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater


class DeliveryAware:
    """One agent for both kinds of work a worker may claim: subtasks of workflows that deliver
    through git run in their worktree (``delivering``, which does the git work), bare queue work
    (benchmarks, tests that store subtasks directly) on ``plain``. So a simulated worker never
    reports a delivering subtask done without its commits."""

    def __init__(
        self, plain: AgentAdapter, delivering: AgentAdapter, delivery: GitDelivery
    ) -> None:
        self.plain = plain
        self.delivering = delivering
        self.delivery = delivery
        self._delivers: dict[str, bool] = {}  # a workflow's options never change

    @property
    def name(self) -> str:
        return self.plain.name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        workflow_id = task.subtask.workflow_id
        if workflow_id not in self._delivers:
            workflow = await self.delivery.store.get_workflow(workflow_id)
            self._delivers[workflow_id] = self.delivery.delivers(workflow)
        agent = self.delivering if self._delivers[workflow_id] else self.plain
        return await agent.run(task, heartbeat)

"""A workflow's moves: the pipeline's one way to change a workflow's state.

A move checks the state it starts from where it writes (the store refuses a stale one) and is
announced as a ``workflow:transition`` event; a move that ends the workflow is followed by its
cleanup. The pipeline and each of its step modules move workflows only through
:class:`WorkflowMoves`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from taskorch.domain.errors import TaskorchError
from taskorch.domain.models import JSONDict, TaskStatus, Workflow
from taskorch.domain.states import WorkflowState
from taskorch.engine.pipeline_ports import Delivery
from taskorch.runtime import tracing
from taskorch.store import Store
from taskorch.store.queue import QueueEvent, SubtaskQueue

# One name for the pipeline's records, whichever of its modules writes them.
log = logging.getLogger("taskorch.engine.pipeline")

Publish = Callable[[Sequence[QueueEvent]], Awaitable[None]]
Listened = Callable[[], bool]
"""Whether what is published reaches anyone (``EventBus.listened``)."""


class WorkflowMoves:
    def __init__(
        self,
        store: Store,
        queue: SubtaskQueue,
        delivery: Delivery,
        publish: Publish | None = None,
        listened: Listened | None = None,
    ) -> None:
        """``listened`` says whether ``publish`` reaches anyone (None: it always may)."""
        self.store = store
        self.queue = queue
        self.delivery = delivery
        self._publish = publish
        self._listened = listened

    @property
    def listened(self) -> bool:
        """Whether announced events reach anyone: routine ones need not be built otherwise."""
        if self._publish is None:
            return False
        return self._listened is None or self._listened()

    async def publish(self, events: Sequence[QueueEvent]) -> None:
        """Announce ``events`` (to nobody when the pipeline was given no ``publish``)."""
        if self._publish:
            await self._publish(events)

    async def cancel_subtasks(self, workflow_id: str) -> list[QueueEvent]:
        """Cancel the workflow's open subtasks and announce it; the events say which."""
        events = await self.queue.cancel_workflow(workflow_id)
        await self.publish(events)
        return events

    async def move(
        self,
        workflow: Workflow,
        target: WorkflowState,
        metadata: JSONDict | None = None,
        *,
        result: JSONDict | None = None,
        task_status: TaskStatus | None = None,
    ) -> Workflow:
        moved = await self.store.transition_workflow(
            workflow.id,
            workflow.status,
            target,
            metadata=metadata,
            result=result,
            task_status=task_status,
        )
        await self.emit(moved, workflow.status, target)
        return moved

    async def fail(self, workflow: Workflow, details: JSONDict) -> Workflow:
        moved = await self.move(
            workflow,
            WorkflowState.FAILED,
            details,
            result={"merged": False, **details},
            task_status=TaskStatus.FAILED,
        )
        await self.clean(moved, cancelled=False)
        return moved

    async def clean(self, workflow: Workflow, *, cancelled: bool) -> None:
        """Remove the workflow's worktrees; a failure here is logged, never undoes the state."""
        try:
            with tracing.for_workflow(workflow.id):  # also after cancel and give-up (no step)
                await self.delivery.cleanup(workflow, cancelled=cancelled)
        except TaskorchError as exc:
            log.warning("workflow %s: cleanup failed: %s", workflow.id, exc.message)

    async def emit(
        self, workflow: Workflow, source: WorkflowState | None, target: WorkflowState
    ) -> None:
        started = workflow.start_time
        await self.publish(
            [
                QueueEvent(
                    "workflow:transition",
                    workflow.id,
                    None,
                    {
                        "from": source.value if source else None,
                        "to": target.value,
                        "started_at": started.isoformat() if started else None,
                    },
                )
            ]
        )

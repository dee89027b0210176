"""Worktrees of workflows that ended without their cleanup (a kill between the end, which is
stored first, and the cleanup): found on this host and removed, idempotently, by ``serve`` at start
and with each stranded-task check, and by ``resume``."""

from __future__ import annotations

import logging

from taskorch.domain.errors import NotFoundError, TaskorchError
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine.delivery import GitDelivery
from taskorch.engine.pipeline import Delivery
from taskorch.store import Store

log = logging.getLogger(__name__)


async def clean_ended(store: Store, delivery: Delivery) -> list[str]:
    """Clean up after each ended workflow that still has worktrees here; return their ids."""
    if not isinstance(delivery, GitDelivery):
        return []
    cleaned = []
    for workflow_id in delivery.leftover_workflows():
        try:
            workflow = await store.get_workflow(workflow_id)
        except NotFoundError:
            continue  # another database's, on a shared home: not ours to touch
        if workflow.status not in WORKFLOW_TERMINAL:
            continue
        try:
            await delivery.cleanup_leftover(workflow)
        except TaskorchError as exc:
            log.warning("workflow %s: cleanup failed: %s", workflow_id, exc.message)
            continue
        cleaned.append(workflow_id)
    return cleaned

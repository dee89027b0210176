"""What retention (``taskorch gc``) reads and removes in the database: finished workflows older
than a cutoff, and the events stored for them. Workflows, their history, subtasks and attempts
stay: they are the record of what was done."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from taskorch.domain.models import Workflow
from taskorch.store.connector import Connector
from taskorch.store.records import decode_all


async def finished_before(connector: Connector, cutoff: datetime) -> list[Workflow]:
    """Workflows that ended (merged, failed, cancelled) before ``cutoff``, oldest first."""
    rows = await connector.read("workflows_finished_before", {"cutoff": cutoff})
    return decode_all(Workflow, rows)


async def delete_events(connector: Connector, workflow_ids: Iterable[str]) -> int:
    """Remove the stored events of these workflows, in one transaction; how many went."""
    removed = 0
    async with connector.transaction() as tx:
        for workflow_id in workflow_ids:
            removed += len(
                await tx.fetchall("delete_workflow_events", {"workflow_id": workflow_id})
            )
    return removed

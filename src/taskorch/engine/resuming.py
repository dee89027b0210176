"""What a resume carries on, and with which agents.

The workflows: those named, or every one that has not ended (:func:`unfinished_workflows`). The
agents: the ones each started with. A workflow's subtasks were routed for the ``--agent`` it
started with (stored in its options): on the simulated agent they have no agent of their own,
under routing each has a registered agent. Resumed with other agents, no worker would claim them
and the workflow would wait for ever, so a resume takes the workflow's own ``--agent`` and refuses
another one in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from taskorch.domain.errors import InputError
from taskorch.domain.models import Workflow
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.store import Store

if TYPE_CHECKING:
    from taskorch.engine.pipeline import Delivery


async def unfinished_workflows(
    store: Store, delivery: Delivery | None, workflow_ids: Sequence[str] | None
) -> list[Workflow]:
    """These workflows (an unknown id is an error), or by default every unfinished one (and
    tasks a crash left claimed with no workflow carrying them are set right first)."""
    # Here, not at the top: the leftovers load the git delivery, which a caller that only asks
    # which agents resume (``cli/run.py``) does not need.
    from taskorch.engine.claims import recover_stranded
    from taskorch.engine.leftovers import clean_ended

    if workflow_ids is None:
        await recover_stranded(store)
        if delivery is not None:
            await clean_ended(store, delivery)
        workflows = await store.list_workflows()
        return [w for w in workflows if w.status not in WORKFLOW_TERMINAL]
    return [await store.get_workflow(workflow_id) for workflow_id in workflow_ids]


def started_with(workflow: Workflow) -> str:
    """The ``--agent`` a workflow started with (``sim`` for the oldest, which stored none)."""
    agent = workflow.metadata.get("options", {}).get("agent")
    return str(agent) if agent and agent != "default" else "sim"


def agent_for_resume(workflows: Sequence[Workflow], asked: str | None) -> str:
    """The ``--agent`` to resume ``workflows`` with: ``asked`` when it is theirs, else theirs."""
    modes = {workflow.id: started_with(workflow) for workflow in workflows}
    if asked is not None:
        other = {wf: mode for wf, mode in modes.items() if mode != asked}
        if other:
            wf, mode = next(iter(sorted(other.items())))
            raise InputError(
                f"workflow {wf} started with --agent {mode}; resume it with --agent {mode} "
                "(or without --agent)"
            )
        return asked
    distinct = sorted(set(modes.values()))
    if len(distinct) > 1:
        shown = ", ".join(f"{wf}: {mode}" for wf, mode in sorted(modes.items()))
        raise InputError(
            f"these workflows started with different agents ({shown}); resume each group "
            "on its own (`taskorch resume WORKFLOW_ID...`)"
        )
    return distinct[0] if distinct else "auto"

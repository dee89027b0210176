"""Which agents carry on an unfinished workflow: the ones it started with.

A workflow's subtasks were routed for the ``--agent`` it started with (stored in its options):
on the simulated agent they have no agent of their own, under routing each has a registered
agent. Resumed with other agents, no worker would claim them and the workflow would wait for
ever, so a resume takes the workflow's own ``--agent`` and refuses another one in one line.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskorch.domain.errors import InputError
from taskorch.domain.models import Workflow


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

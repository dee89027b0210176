"""Where a workflow's caps come from: the run's options (``--budget-usd``, ``--budget-tokens``,
``--budget-subtask-usd``), else its task's (``task add --budget-usd``), else the settings
(``TASKORCH_BUDGET_USD``, ``TASKORCH_BUDGET_TOKENS``); each kind on its own. The settled caps
travel in the workflow's options as ``budget`` (the store reads them from there when it creates
the workflow). ``taskorch budget`` sets a running workflow's caps again (:func:`set_caps`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from taskorch.domain.budget import Caps
from taskorch.domain.errors import InputError, StateError
from taskorch.domain.models import JSONDict, Task
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.store import Store
from taskorch.store.budget import BudgetLedger
from taskorch.store.queue import SubtaskQueue

_KINDS = {"usd": "USD", "tokens": "token", "subtask_usd": "per-subtask USD"}


def caps_from(given: Mapping[str, Any] | None) -> Caps:
    """Caps from a ``{"usd", "tokens", "subtask_usd"}`` mapping (absent or None: no cap);
    ``InputError`` naming the bad one unless each is a positive number."""
    if not given:
        return Caps()
    values: dict[str, Any] = {}
    for key, label in _KINDS.items():
        value = given.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise InputError(f"the {label} budget must be a positive number, got {value!r}")
        if key == "tokens" and value != int(value):
            raise InputError(f"the token budget must be a whole number, got {value!r}")
        values[key] = int(value) if key == "tokens" else float(value)
    return Caps(**values)


def caps_json(caps: Caps) -> JSONDict:
    return {"usd": caps.usd, "tokens": caps.tokens, "subtask_usd": caps.subtask_usd}


def merged(first: Caps, *rest: Caps) -> Caps:
    """Each kind from the first that sets it."""
    usd, tokens, subtask = first.usd, first.tokens, first.subtask_usd
    for caps in rest:
        usd = caps.usd if usd is None else usd
        tokens = caps.tokens if tokens is None else tokens
        subtask = caps.subtask_usd if subtask is None else subtask
    return Caps(usd, tokens, subtask)


def with_budget(options: JSONDict, task: Task, defaults: Caps) -> JSONDict:
    """``options`` with the workflow's settled ``budget`` (left out when there is no cap)."""
    own = caps_from(options.get("budget"))
    caps = merged(own, caps_from(task.metadata.get("budget")), defaults)
    settled = {k: v for k, v in options.items() if k != "budget"}
    if caps.any:
        settled["budget"] = caps_json(caps)
    return settled


async def set_caps(
    store: Store, queue: SubtaskQueue, workflow_id: str, given: Mapping[str, Any]
) -> Caps:
    """Set the workflow's caps from ``given`` (see :func:`caps_from`): each kind given replaces
    that kind, the others stay; return the caps as set. ``InputError`` for none given, or a value
    that is not positive; ``StateError`` for a workflow that has ended."""
    asked = caps_from(given)
    if not asked.any:
        raise InputError("no budget given: set usd, tokens or subtask_usd (taskorch budget: --usd)")
    workflow = await store.get_workflow(workflow_id)
    if workflow.status in WORKFLOW_TERMINAL:
        raise StateError(
            f"workflow {workflow_id} has ended ({workflow.status.value}): "
            "its budget no longer applies"
        )
    current = Caps(workflow.budget_usd, workflow.budget_tokens, workflow.subtask_budget_usd)
    caps = merged(asked, current)
    await BudgetLedger(queue).set_caps(workflow_id, caps)
    return caps

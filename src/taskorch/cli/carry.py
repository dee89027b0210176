"""What ``run``, ``process``, ``batch`` and ``resume`` share: one set of option names with one
meaning each, and how such a command carries workflows on while showing their progress
(:mod:`taskorch.cli.progress`), gives up at ``--timeout`` and stops on Ctrl-C.

``--repo``, ``--base-branch``, ``--merge`` and ``--priority`` are settled when a workflow starts,
so ``resume`` does not take them; ``--agent``, ``--timeout``, ``--sim-duration``, ``--json`` and
``--quiet`` mean the same on all four.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.text import Text

from taskorch.cli.app import console, err_console, line, print_json, run, settings
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.cli.progress import ProgressView, mode_for
from taskorch.cli.workflows import show_workflow, styled
from taskorch.domain.errors import InputError, TaskorchError
from taskorch.domain.limits import parse_duration
from taskorch.domain.models import JSONDict, Priority, Task, Workflow
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine import OrchestrationEngine
from taskorch.engine.agents import AgentPool
from taskorch.engine.status import WorkflowStatus
from taskorch.engine.targets import check_target, describe_target

# engine.setup (git delivery, agent adapters) is imported by the functions that carry work.

RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo",
        metavar="PATH|URL",
        help="Target git repository: a local path or a git URL (file://, ssh://, https://, "
        "host:path). Default: the task's, else TASKORCH_REPO, else a scratch repository.",
        show_default=False,
    ),
]
BaseBranchOption = Annotated[
    str | None,
    typer.Option(
        "--base-branch",
        metavar="NAME",
        help="Branch to merge into (default: the one checked out, or the remote's HEAD).",
        show_default=False,
    ),
]
MergeOption = Annotated[
    str | None,
    typer.Option(
        "--merge",
        metavar="auto|approve",
        help="auto: merge once validated; approve: wait for `taskorch approve` "
        "(default: the task's, else TASKORCH_MERGE_POLICY, else auto).",
        show_default=False,
    ),
]
AgentOption = Annotated[
    str,
    typer.Option(
        "--agent",
        help="auto: route each subtask to the best registered agent (the simulated agent when "
        "none is registered); sim: the simulated agent; or one registered agent's name.",
    ),
]
PriorityOption = Annotated[
    str | None,
    typer.Option(
        "--priority",
        metavar="low|medium|high|critical",
        help="Queue priority of the workflows' subtasks: higher ones are taken first "
        "(default: each task's own).",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        help="Give up (and cancel what has not finished) after this long: 10m, 600s, 2h; a bare "
        "number is milliseconds, as in the specification (600000 = 10 minutes).",
        show_default=False,
    ),
]
BestOfOption = Annotated[
    int | None,
    typer.Option(
        "--best-of",
        min=1,
        max=5,
        metavar="N",
        help="Run each implementation subtask on N agents at once, each in its own worktree, "
        "and merge the first whose work passes validation (capped by the budget).",
        show_default=False,
    ),
]
BestOfRetryOption = Annotated[
    int | None,
    typer.Option(
        "--best-of-retry",
        min=1,
        max=5,
        metavar="N",
        help="After a failed attempt, retry the subtask on N agents at once.",
        show_default=False,
    ),
]
SimDurationOption = Annotated[
    float, typer.Option("--sim-duration", min=0, help="Seconds each simulated subtask takes.")
]
BudgetUsdOption = Annotated[
    float | None,
    typer.Option(
        "--budget-usd",
        metavar="USD",
        help="Cap what each workflow's agents may cost: no attempt starts that would cross it "
        "(default: the task's, else TASKORCH_BUDGET_USD; docs/budgets.md).",
        show_default=False,
    ),
]
BudgetTokensOption = Annotated[
    int | None,
    typer.Option(
        "--budget-tokens",
        metavar="N",
        help="Cap the tokens each workflow's agents may use (default: the task's, else "
        "TASKORCH_BUDGET_TOKENS).",
        show_default=False,
    ),
]
BudgetSubtaskOption = Annotated[
    float | None,
    typer.Option(
        "--budget-subtask-usd",
        metavar="USD",
        help="Cap what the attempts of any one subtask may cost together.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print only the final status, as JSON (no progress).")
]
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="No progress: print only the final result line(s) and errors."
    ),
]

EXIT_INTERRUPTED = 130

Progress = Callable[[Workflow], None]
Body = Callable[[OrchestrationEngine, Progress], Awaitable[list[WorkflowStatus]]]


def timeout_s(text: str | None) -> float | None:
    """``--timeout`` in seconds (a bare number is milliseconds); None when not given."""
    if text is None:
        return None
    seconds = parse_duration("--timeout", text, bare="ms")
    if seconds <= 0:
        raise InputError(f"--timeout {text!r} must be more than 0")
    return seconds


def start_options(
    pool: AgentPool,
    target: JSONDict,
    priority: str | None,
    limit_s: float | None,
    *,
    best_of: int | None = None,
    best_of_retry: int | None = None,
    budget: Mapping[str, float | None] | None = None,
) -> JSONDict:
    """The options stored with each workflow a command starts: a resume or a server takes the
    same agents, priority, deadline, best-of-N and ``budget`` caps (``usd``, ``tokens``,
    ``subtask_usd``; checked: each a positive number)."""
    from taskorch.engine.budgets import caps_from, caps_json

    options: JSONDict = {"agent": pool.mode, **target}
    caps = caps_from(budget)
    if caps.any:
        options["budget"] = caps_json(caps)
    if best_of is not None and best_of > 1:
        options["best_of"] = best_of
    if best_of_retry is not None and best_of_retry > 1:
        options["best_of_retry"] = best_of_retry
    if priority is not None:
        options["priority"] = Priority.parse(priority).value
    if limit_s is not None:
        options["deadline"] = (datetime.now(UTC) + timedelta(seconds=limit_s)).isoformat()
    return options


async def agents(engine: OrchestrationEngine, agent: str, sim_duration_s: float = 0.0) -> AgentPool:
    from taskorch.engine.setup import agents_for_run

    pool = await agents_for_run(engine, line("--agent", agent) or "auto", sim_duration_s)
    if pool.note:
        err_console.print(pool.note, highlight=False)
    return pool


async def target(
    repo: str | None,
    base_branch: str | None,
    merge: str | None,
    tasks: Sequence[Task] = (),
) -> JSONDict:
    """The workflow options of ``--repo``, ``--base-branch`` and ``--merge``, checked before
    anything starts: the repository (the one given, else each task's own) is reached, and a
    local one must not have uncommitted changes on its base branch."""
    path = line("--repo", repo, MAX_PATH_CHARS)
    branch = line("--base-branch", base_branch)
    options = await check_target(path, branch, merge, require_clean=True, reach=True)
    if repo is None:
        for task in tasks:
            if task.metadata.get("repo"):
                base = base_branch or task.metadata.get("base_branch")
                await check_target(str(task.metadata["repo"]), base, require_clean=True, reach=True)
    return options


async def carry(
    engine: OrchestrationEngine,
    task_ids: Sequence[int],
    pool: AgentPool,
    options: JSONDict,
    progress: Progress,
    *,
    quiet: bool,
    limit_s: float | None = None,
) -> list[WorkflowStatus]:
    """Start a workflow for each task, say where each will merge (unless ``quiet``), and carry
    them on until each ends or waits for approval (or ``limit_s`` passes)."""
    workflows = await engine.start_workflows(task_ids, options=options)
    if not quiet:
        for workflow in workflows:
            where = describe_target(workflow.metadata.get("options", {}))
            err_console.print(f"{workflow.id}: merging into {where}", highlight=False)
    ids = [w.id for w in workflows]
    return await within(engine, limit_s, ids, engine.resume(ids, agents=pool, on_progress=progress))


async def within(
    engine: OrchestrationEngine,
    limit_s: float | None,
    workflow_ids: Sequence[str],
    work: Awaitable[list[WorkflowStatus]],
) -> list[WorkflowStatus]:
    """``work``'s answer, or after ``limit_s`` the unfinished workflows cancelled and one line
    naming their tasks (also when the pipeline gave up first, on the stored deadline)."""
    try:
        async with asyncio.timeout(limit_s):
            statuses = await work
    except TimeoutError:
        statuses = []
        for workflow_id in workflow_ids:
            with contextlib.suppress(TaskorchError):  # it ended meanwhile
                await engine.cancel_workflow(workflow_id)
            statuses.append(await engine.get_workflow_status(workflow_id))
    if limit_s is not None:
        late = [s for s in statuses if s.state == "cancelled"]
        if late:
            names = " and ".join(f"task {s.task.ref}" for s in late)
            whose = "its workflow was" if len(late) == 1 else "their workflows were"
            raise InputError(
                f"{names} did not finish within {limit_s:g} s; {whose} cancelled "
                "(unmerged work stays on its branches)"
            )
    return statuses


def carry_on(body: Body, *, as_json: bool, quiet: bool) -> None:
    """Run ``body`` with live progress (none for ``--json`` and ``--quiet``), then print the
    outcome; after Ctrl-C, say how to carry on or stop each unfinished workflow."""
    seen: dict[str, str] = {}

    async def main() -> list[WorkflowStatus]:
        from taskorch.engine.setup import open_engine

        async with open_engine(settings()) as engine:
            mode = mode_for(err_console, quiet=quiet or as_json)
            async with ProgressView(engine, err_console, mode) as view:

                def progress(workflow: Workflow) -> None:
                    seen[workflow.id] = workflow.status.value
                    view.watch([workflow.id])

                return await body(engine, progress)

    try:
        statuses = run(main)
    except typer.Exit as stopped:
        if stopped.exit_code == EXIT_INTERRUPTED:
            resumable(seen)
        raise
    finish(statuses, as_json=as_json, quiet=quiet)


def finish(statuses: list[WorkflowStatus], *, as_json: bool, quiet: bool) -> None:
    """Print the outcome; exit 1 unless every workflow merged or waits for approval."""
    if as_json:
        print_json([s.to_dict() for s in statuses] if len(statuses) > 1 else statuses[0].to_dict())
    else:
        for status in statuses:
            (result_line if quiet else show_workflow)(status)
    if any(s.state != "merged" and s.waiting_for is None for s in statuses):
        raise typer.Exit(1)


def result_line(status: WorkflowStatus) -> None:
    """One line: the workflow, its state, where it merged or why it waits or ended."""
    shown = Text.assemble(f"{status.workflow.id}  ", styled(status.state))
    if status.state == "merged" and status.target:
        shown.append(f"  into {describe_target(status.target)}")
    elif status.waiting_for == "approval":
        shown.append(f"  waiting for approval: taskorch approve {status.workflow.id}")
    elif reason := (status.workflow.result or {}).get("reason"):
        shown.append(f"  {reason}")
    console.print(shown)


def resumable(seen: Mapping[str, str]) -> None:
    """After Ctrl-C: the workflows stay where they stood, and how to carry on or stop them."""
    for workflow_id, state in seen.items():
        if state in {s.value for s in WORKFLOW_TERMINAL}:
            continue
        err_console.print(
            f"{workflow_id} stays {state} and resumable: taskorch resume {workflow_id} "
            f"(or stop it: taskorch cancel {workflow_id})",
            highlight=False,
        )

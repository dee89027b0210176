"""Best-of-N within one attempt: a subtask's work runs on N agents at once, each in its own
worktree (``<key>.c<n>``); the first candidate whose work passes validation (its tests when a
test command is configured, the scope check, the completion check) becomes the subtask's branch
and is merged into the workflow branch; the others are cancelled (their agents ended the way a
cancelled attempt's are) and their worktrees and branches removed.

Why inside one attempt rather than N queued subtasks: the subtask keeps one lease, one attempt
row and one merge under its own key, so the durability rules hold as for any attempt (a kill
requeues it; its merge is found by key after a restart; :meth:`Workspace.merge_candidate` merges
one winner only, whichever host gets there) and the worker needs no change. The attempt's usage
is the sum of every candidate's, so everything the race spent is in the attempts table; each
candidate (agent, state, cost, why) is in the attempt's result under ``best_of``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask, Heartbeat
from taskorch.domain.best_of import (
    CandidateRecord,
    CandidateState,
    allowed_candidates,
    candidate_key,
    candidates_wanted,
    total_usage,
)
from taskorch.domain.errors import AgentError, TaskorchError
from taskorch.domain.models import Subtask, Workflow
from taskorch.domain.plan import PlanSubtask
from taskorch.domain.retry import agent_tries
from taskorch.engine.pipeline_planning import spec_of
from taskorch.planning.completion import check_completion
from taskorch.runtime.validation import run_test_command, working_spec_check
from taskorch.runtime.workspace import Workspace
from taskorch.runtime.workspace_records import MergeStatus

Pick = Callable[[Subtask, Sequence[str | None]], str | None]
"""(subtask, agents already chosen) -> another capable agent for it, or None."""

Cap = Callable[[Subtask, Workflow, int], Awaitable[int]]
"""(subtask, its workflow, candidates wanted) -> candidates the budget allows."""


async def no_budget(subtask: Subtask, workflow: Workflow, wanted: int) -> int:
    return allowed_candidates(wanted)


@dataclass(frozen=True, slots=True)
class Checks:
    """How a candidate's work is validated: the delivery's test command and its time limit."""

    test_command: Sequence[str] | None = None
    test_timeout_s: float = 600.0


class BestOf:
    """The agents a race may use (their adapters, not wrapped in a workspace) and how to pick
    and cap them."""

    def __init__(
        self,
        adapters: Mapping[str | None, AgentAdapter],
        *,
        pick: Pick | None = None,
        cap: Cap = no_budget,
    ) -> None:
        self.adapters = dict(adapters)
        self.pick = pick
        self.cap = cap

    async def candidates(self, subtask: Subtask, workflow: Workflow) -> int:
        """How many candidates this attempt of ``subtask`` runs (1: no race)."""
        planned = plan_subtask(workflow, subtask)
        wanted = candidates_wanted(
            worker_type=subtask.worker_type.value,
            # the agents' own try: an attempt a kill or a lost lease ended is no escalation
            attempt=agent_tries(subtask.attempts, subtask.interrupted),
            plan_best_of=planned.best_of if planned is not None else None,
            options=workflow.metadata.get("options", {}),
        )
        if wanted <= 1:
            return 1
        return max(1, min(wanted, await self.cap(subtask, workflow, wanted)))

    def lineup(self, subtask: Subtask, n: int) -> list[tuple[str | None, AgentAdapter]]:
        """``n`` (agent, adapter) pairs: the subtask's own agent first, then other capable
        agents; with fewer agents than candidates the same ones again (an agent's runs differ)."""
        chosen: list[str | None] = [subtask.agent_id]
        while len(chosen) < n:
            other = self._another(subtask, chosen)
            if other is None:
                break
            chosen.append(other)
        distinct = len(chosen)
        chosen += [chosen[i % distinct] for i in range(n - distinct)]
        return [(agent, self._adapter(agent)) for agent in chosen]

    def _another(self, subtask: Subtask, chosen: Sequence[str | None]) -> str | None:
        if self.pick is not None:
            other = self.pick(subtask, chosen)
            return other if other is not None and other in self.adapters else None
        return next((a for a in self.adapters if a is not None and a not in chosen), None)

    def _adapter(self, agent: str | None) -> AgentAdapter:
        adapter = self.adapters.get(agent) or self.adapters.get(None)
        if adapter is None:
            raise AgentError(f"no adapter for agent {agent!r} on this worker")
        return adapter


def plan_subtask(workflow: Workflow, subtask: Subtask) -> PlanSubtask | None:
    for raw in (workflow.metadata.get("plan") or {}).get("subtasks", []):
        if raw.get("subtask_id") == subtask.key:
            return PlanSubtask.model_validate(raw)
    return None


class Race:
    """One best-of-N attempt of one subtask."""

    def __init__(
        self,
        workspace: Workspace,
        task: AgentTask,
        heartbeat: Heartbeat,
        lineup: Sequence[tuple[str | None, AgentAdapter]],
        *,
        spec: PlanSubtask | None,
        checks: Checks,
        busy: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        """``busy`` wraps the git work and tests around the agents: it heartbeats for the
        attempt meanwhile (each agent beats for itself while it runs)."""
        self.workspace = workspace
        self.task = task
        self.subtask = task.subtask
        self.heartbeat = heartbeat
        self.lineup = list(lineup)
        self.spec = spec or spec_of(self.subtask, "-")  # the completion check reads its files
        self.checks = checks
        self.busy = busy
        self.records: dict[int, CandidateRecord] = {}
        self.results: dict[int, AgentResult] = {}
        self.errors: list[TaskorchError] = []
        self.winner: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._ending = False

    async def run(self) -> AgentResult:
        runs = [
            asyncio.create_task(self._candidate(number, agent, adapter), name=f"candidate-{number}")
            for number, (agent, adapter) in enumerate(self.lineup, start=1)
        ]
        everyone: asyncio.Future[Any] = asyncio.gather(*runs, return_exceptions=True)
        waiters: list[asyncio.Future[Any]] = [self.winner, everyone]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The winner chosen, or the attempt itself ended: the others stop and leave nothing.
            self._ending = True
            for run in runs:
                run.cancel()
            await asyncio.gather(everyone, return_exceptions=True)
            won = self.winner.result() if self.winner.done() else None
            for number in self.records:
                if number != won:
                    with contextlib.suppress(TaskorchError):
                        await self.workspace.drop_candidate(self._key(number))
        if won is None:
            raise self._no_winner()
        return await self._merge(won)

    def summary(self) -> dict[str, Any]:
        won = self.winner.result() if self.winner.done() else None
        return {
            "n": len(self.lineup),
            "winner": won,
            "candidates": [self.records[n].to_json() for n in sorted(self.records)],
        }

    # --- one candidate -------------------------------------------------------------------------

    async def _candidate(self, number: int, agent: str | None, adapter: AgentAdapter) -> None:
        key = self._key(number)
        record = CandidateRecord(number, key, agent, CandidateState.RUNNING)
        self.records[number] = record
        try:
            async with self.busy():
                path = await self.workspace.prepare_subtask(key)
            task = dataclasses.replace(self.task, workdir=path)
            result = await adapter.run(task, self.heartbeat)
        except asyncio.CancelledError:
            self.records[number] = dataclasses.replace(record, state=CandidateState.CANCELLED)
            raise
        except AgentError as exc:
            # An agent ended by the race may still say what it spent: that counts too.
            state = CandidateState.CANCELLED if self._ending else CandidateState.FAILED
            self.records[number] = _with_usage(
                record, state, exc.message, exc.tokens_in, exc.tokens_out, exc.cost_usd
            )
            return
        except TaskorchError as exc:  # the host's failure (git, a missing program): not a verdict
            self.errors.append(exc)
            self.records[number] = dataclasses.replace(
                record, state=CandidateState.FAILED, reason=exc.message
            )
            return
        except Exception as exc:  # an adapter's bug ends its candidate, not the race
            reason = f"{type(exc).__name__}: {exc}"
            self.records[number] = dataclasses.replace(
                record, state=CandidateState.FAILED, reason=reason
            )
            return
        record = _with_usage(
            record,
            CandidateState.RUNNING,
            "",
            result.tokens_in,
            result.tokens_out,
            result.cost_usd,
        )
        self.records[number] = record
        if not result.success:
            reason = f"agent reported failure: {result.output[-300:]}"
            self.records[number] = dataclasses.replace(
                record, state=CandidateState.FAILED, reason=reason
            )
            return
        async with self.busy():
            problems, changed = await self._validate(key, result)
        record = dataclasses.replace(record, changed_files=tuple(changed))
        if problems:
            self.records[number] = dataclasses.replace(
                record, state=CandidateState.REJECTED, reason="; ".join(problems)
            )
            return
        self.results[number] = result
        if self.winner.done():
            self.records[number] = dataclasses.replace(record, state=CandidateState.PASSED)
            return
        self.records[number] = dataclasses.replace(record, state=CandidateState.WON)
        self.winner.set_result(number)

    async def _validate(self, key: str, result: AgentResult) -> tuple[list[str], list[str]]:
        """What is wrong with the candidate's work (nothing: it passes) and the files it
        changed: the scope check, the completion check, then the tests in its worktree."""
        subtask = self.subtask
        await self.workspace.commit_all(key, f"{subtask.key}: {subtask.title}")
        changed = await self.workspace.changed_files(key)
        if not changed:
            return ["changed nothing"], changed
        scope = working_spec_check({subtask.key: subtask.files_affected}, {subtask.key: changed})
        problems = [str(finding) for finding in scope]
        report = {**result.to_json(), "files_changed": changed}
        problems += check_completion(self.spec, report).reasons
        if problems or not self.checks.test_command:
            return problems, changed
        run = await run_test_command(
            self.checks.test_command,
            self.workspace.subtask_worktree(key),
            self.checks.test_timeout_s,
        )
        return ([] if run.ok else [run.summary]), changed

    # --- the end of the race ----------------------------------------------------------------

    async def _merge(self, won: int) -> AgentResult:
        tokens_in, tokens_out, cost = total_usage(list(self.records.values()))
        async with self.busy():
            merge = await self.workspace.merge_candidate(self.subtask.key, self._key(won))
        if merge.status is MergeStatus.CONFLICT:
            error = AgentError(merge.message, error_class="dependency")
            raise error.with_usage(tokens_in, tokens_out, cost)
        result = self.results[won]
        data = {
            **result.data,
            "changed_files": list(self.records[won].changed_files),
            "merge": merge.to_json(),
            "best_of": self.summary(),
        }
        return AgentResult(
            True,
            result.output,
            data=data,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            simulated=result.simulated,
        )

    def _no_winner(self) -> TaskorchError:
        if self.errors and len(self.errors) == len(self.records):
            return self.errors[0]  # every candidate failed for the host's reasons
        tokens_in, tokens_out, cost = total_usage(list(self.records.values()))
        why = "; ".join(
            f"candidate {r.number} ({r.agent_id or 'default'}) {r.state.value}: {r.reason}"
            for r in (self.records[n] for n in sorted(self.records))
        )
        error = AgentError(
            f"none of {len(self.lineup)} candidates for {self.subtask.key} passed "
            f"validation: {why}"[:2000]
        )
        return error.with_usage(tokens_in, tokens_out, cost)

    def _key(self, number: int) -> str:
        return candidate_key(self.subtask.key, number)


def _with_usage(
    record: CandidateRecord,
    state: CandidateState,
    reason: str,
    tokens_in: int | None,
    tokens_out: int | None,
    cost_usd: float | None,
) -> CandidateRecord:
    return dataclasses.replace(
        record,
        state=state,
        reason=reason,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
    )

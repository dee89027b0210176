"""An attempt in flight on a worker, and how it ended as the :class:`Outcome` the worker settles.

A success carries its result and quality. A failure is classified and judged by the retry policy:
a retry (perhaps on another agent, perhaps after a rate window) or the end. Two kinds of failure
are not the agent's try and count against the cap on interrupted attempts instead: the host's (a
repository out of this host's reach: the worker leaves that workflow to other hosts for a while,
:meth:`Failures.avoided`) and a busy or rate-limited agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskorch.agents.base import AgentAdapter, AgentResult
from taskorch.domain.errors import AgentError
from taskorch.domain.models import Subtask
from taskorch.domain.retry import ErrorClass, RetryDecision, agent_tries
from taskorch.runtime.quality import FAILED, attempt_quality
from taskorch.runtime.rate_limits import RateLimits, is_limit
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker_config import WorkerConfig
from taskorch.store.queue import Outcome, SubtaskQueue

log = logging.getLogger("taskorch.runtime.worker")  # the worker's records keep their name

HOST_AVOID_S = 60.0
"""How long a worker leaves alone a workflow it could not work on (its repository out of this
host's reach): other hosts take its subtasks meanwhile."""

Reassign = Callable[[Subtask, str, bool], str | None]
"""(subtask, error class, the policy says reassign) -> agent id for the retry."""


@dataclass(slots=True)
class Deadline:
    """One timer for the attempts of one claim, which start together: a timeout context per
    attempt costs about a third of what the worker spends on a quick attempt."""

    left: int
    handle: asyncio.TimerHandle | None = None

    def finished_one(self) -> None:
        self.left -= 1
        if self.left == 0 and self.handle is not None:
            self.handle.cancel()  # and with it the timer's references to the batch


@dataclass(slots=True)
class Running:
    subtask: Subtask
    agent_id: str | None
    started_at: datetime
    task: asyncio.Task[None] | None = None
    last_beat: float = field(default_factory=time.monotonic)
    deadline: Deadline | None = None
    timed_out: bool = False


def instructions_for(subtask: Subtask) -> str:
    """What an agent is told: the title, the description when it adds to it, files, criteria."""
    parts = [subtask.title]
    if subtask.description and subtask.description.strip() != subtask.title.strip():
        parts.append(subtask.description)
    if subtask.files_affected:
        parts.append("Files: " + ", ".join(subtask.files_affected))
    if subtask.success_criteria:
        parts.append("Done when: " + subtask.success_criteria)
    return "\n\n".join(parts)


def success(running: Running, result: AgentResult, now: datetime) -> Outcome:
    body = result.to_json()
    quality = attempt_quality(running.subtask, True, result.output, result.data)
    body["quality"] = quality.to_json()
    return Outcome(
        running.subtask,
        "completed",
        running.started_at,
        now,
        agent_id=running.agent_id,
        result=body,
        tokens_in=result.tokens_in,
        tokens_out=result.tokens_out,
        cost_usd=result.cost_usd,
    )


class Failures:
    """Turns a worker's failed attempts into outcomes, and keeps the workflows it leaves to
    other hosts meanwhile."""

    def __init__(
        self,
        queue: SubtaskQueue,
        agents: Mapping[str | None, AgentAdapter],
        recovery: ErrorRecoveryManager,
        rate_limits: RateLimits,
        config: WorkerConfig,
        *,
        worker_id: str,
        reassign: Reassign | None,
    ) -> None:
        self.queue = queue
        self.agents = agents
        self.recovery = recovery
        self.rate_limits = rate_limits
        self.worker_id = worker_id
        self.timeout_s = config.timeout_s
        self.max_interrupted = config.max_interrupted
        self.reassign = reassign
        self._avoid: dict[str, float] = {}
        """Workflow id -> until when (monotonic) this worker claims none of its subtasks."""

    def avoided(self) -> list[str]:
        now = time.monotonic()
        for workflow_id in [w for w, until in self._avoid.items() if until <= now]:
            del self._avoid[workflow_id]
        return list(self._avoid)

    async def outcome(self, running: Running, exc: Exception) -> Outcome:
        subtask = running.subtask
        error = self.recovery.classify(exc)
        if isinstance(exc, TimeoutError):
            error = AgentError(
                f"attempt timed out after {self.timeout_s:g} s", error_class="timeout"
            )
        if error.error_class == ErrorClass.HOST:
            log.warning(
                "worker %s: leaving workflow %s to other hosts for %g s: %s",
                self.worker_id,
                subtask.workflow_id,
                HOST_AVOID_S,
                error.message,
            )
            self._avoid[subtask.workflow_id] = time.monotonic() + HOST_AVOID_S
        window = None
        if is_limit(error, running.agent_id):
            policy = self.recovery.policy_for(error.error_class)
            agent = str(running.agent_id)
            window = await self.rate_limits.hit(agent, error, policy, self.queue.now)
        # Not the agent's try (the host failed, the agent was busy and got nothing, or it is in
        # a rate window): counted apart, against the cap on interrupted attempts.
        interrupted = error.error_class in (ErrorClass.HOST, ErrorClass.BUSY) or window is not None
        if interrupted:
            decision = (
                self.recovery.decide(error, subtask.interrupted + 1)
                if window is None
                else RetryDecision(True, 0.0, True, window.describe())
            )
            if subtask.interrupted + 1 >= self.max_interrupted:
                decision = RetryDecision(False, reason="too many interrupted attempts")
        else:
            tries = agent_tries(subtask.attempts, subtask.interrupted)
            decision = await self.recovery.recover(error, tries, subtask)
        now = self.queue.now
        common = {
            "agent_id": running.agent_id,
            "error_class": error.error_class,
            "error_message": error.message,
            "tokens_in": error.tokens_in,
            "tokens_out": error.tokens_out,
            "cost_usd": error.cost_usd,
        }
        if decision.retry:
            if self.reassign is not None:
                next_agent = self.reassign(subtask, error.error_class, decision.reassign)
            else:
                next_agent = (
                    self._other_agent(subtask.agent_id) if decision.reassign else subtask.agent_id
                )
            delay_s = decision.delay_s
            if error.error_class == ErrorClass.BUSY and next_agent != subtask.agent_id:
                # another capable agent takes it now, unless agents have been busy before
                delay_s = 0.0 if subtask.interrupted == 0 else delay_s
            if window is not None:  # another agent takes it now, or it waits for the reset
                delay_s = self.rate_limits.wait_s(next_agent, now)
            return Outcome(
                subtask,
                "retry",
                running.started_at,
                now,
                run_after=now + timedelta(seconds=delay_s),
                next_agent_id=next_agent,
                interrupted=interrupted,
                **common,  # type: ignore[arg-type]
            )
        return Outcome(
            subtask,
            "failed",
            running.started_at,
            now,
            result={
                "success": False,
                "output": error.message,
                "reason": decision.reason,
                "quality": FAILED.to_json(),
            },
            **common,  # type: ignore[arg-type]
        )

    def _other_agent(self, current: str | None) -> str | None:
        others = [a for a in self.agents if a is not None and a != current]
        return others[0] if others else current

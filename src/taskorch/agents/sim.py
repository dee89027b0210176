"""The simulated agent: set durations and failure rates, for demos, tests and load.

Everything it reports says "simulated". In-process it sleeps; as a subprocess
(:mod:`taskorch.agents.sim_process`) it is a real child process, for kill and process-group tests.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.domain.errors import AgentError, ConfigError
from taskorch.domain.retry import ErrorClass


@dataclass(frozen=True, slots=True)
class SimBehaviour:
    duration_s: float = 0.0
    failure_rate: float = 0.0
    error_class: ErrorClass = ErrorClass.AGENT
    heartbeat_s: float = 1.0
    retry_after_s: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ConfigError(f"sim failure rate must be between 0 and 1, got {self.failure_rate}")
        if self.duration_s < 0 or self.heartbeat_s <= 0:
            raise ConfigError("sim duration must be >= 0 and heartbeat interval > 0")


class SimAgent:
    """In-process simulated agent."""

    def __init__(self, behaviour: SimBehaviour | None = None, *, name: str = "sim") -> None:
        self.behaviour = behaviour or SimBehaviour()
        self._name = name
        self._random = random.Random(self.behaviour.seed)

    @property
    def name(self) -> str:
        return self._name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        behaviour = self.behaviour
        remaining = behaviour.duration_s
        while remaining > 0:
            step = min(remaining, behaviour.heartbeat_s)
            await asyncio.sleep(step)
            remaining -= step
            heartbeat()
        if behaviour.failure_rate and self._random.random() < behaviour.failure_rate:
            raise AgentError(
                f"simulated {behaviour.error_class} failure of {task.subtask.key}",
                error_class=behaviour.error_class,
                retryable=behaviour.error_class is not ErrorClass.AUTH,
                retry_after_s=behaviour.retry_after_s,
            )
        return AgentResult(
            success=True,
            output=f"simulated: {task.subtask.key} done by simulated agent {self.name}",
            simulated=True,
        )

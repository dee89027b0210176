"""The one small interface every agent adapter implements.

An adapter takes a subtask's instructions (in a working directory), calls ``heartbeat()`` while the
agent is alive and working, and returns an :class:`AgentResult` or raises :class:`AgentError` with
its error class. Cancellation is asyncio cancellation: an adapter must stop its agent when the
coroutine is cancelled (timeouts, workflow cancel and zombie recovery all arrive that way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from taskorch.domain.models import JSONDict, Subtask

Heartbeat = Callable[[], None]


@dataclass(frozen=True, slots=True)
class AgentTask:
    subtask: Subtask
    instructions: str
    workdir: Path | None = None
    timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class AgentResult:
    success: bool
    output: str = ""
    data: JSONDict = field(default_factory=dict)
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    simulated: bool = False

    def to_json(self) -> JSONDict:
        body: JSONDict = {"success": self.success, "output": self.output, **self.data}
        # the stored result is where the pull request summary reads an agent's usage from
        usage = {
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
        }
        body.update({k: v for k, v in usage.items() if v is not None})
        if self.simulated:
            body["simulated"] = True
        return body


class AgentAdapter(Protocol):
    @property
    def name(self) -> str: ...

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult: ...

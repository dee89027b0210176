"""Adapter running the simulated agent as a child process through :func:`run_process`."""

from __future__ import annotations

import sys
from pathlib import Path

from taskorch.agents import sim_process
from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.agents.process import run_process
from taskorch.domain.errors import AgentError

_SCRIPT = str(Path(sim_process.__file__).resolve())


class SimProcessAgent:
    def __init__(
        self,
        *,
        duration_s: float = 0.0,
        record: Path | None = None,
        spawn_child: bool = False,
        name: str = "sim-process",
        heartbeat_s: float = 0.5,
    ) -> None:
        self.duration_s = duration_s
        self.record = record
        self.spawn_child = spawn_child
        self._name = name
        self.heartbeat_s = heartbeat_s

    @property
    def name(self) -> str:
        return self._name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        # The script by path, isolated (-I): it needs only the standard library, and importing the
        # taskorch package first would cost each simulated run ~0.3 s of CPU before it starts.
        argv = [
            sys.executable,
            "-I",
            _SCRIPT,
            "--key",
            task.subtask.key,
            "--duration",
            str(self.duration_s),
        ]
        if self.record:
            argv += ["--record", str(self.record)]
        if self.spawn_child:
            argv.append("--spawn-child")
        result = await run_process(
            argv, heartbeat=heartbeat, cwd=task.workdir, heartbeat_s=self.heartbeat_s
        )
        if result.returncode != 0:
            raise AgentError(
                f"simulated subprocess agent exited {result.returncode}: {result.stderr[-500:]}"
            )
        return AgentResult(True, result.stdout.strip(), simulated=True)

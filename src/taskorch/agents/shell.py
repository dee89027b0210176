"""The shell adapter: a subtask that carries a command (argv), for deterministic steps.

Formatting, running a generator, a migration script: ``subtask.command`` runs as an argv list
(never through a shell; write ``["sh", "-c", "..."]`` yourself if you need one) in the task's
working directory, through :func:`run_process` (own process group, capped output, heartbeats, the
group ended on cancel). Exit 0 is success, with stdout as the output and, in a git worktree, the
files it changed; a non-zero exit is an ``agent`` error carrying the tail of stderr. A subtask
without a command is a non-retryable ``validation`` error (it was routed to the wrong agent).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.agents.changes import changes_since, snapshot
from taskorch.agents.outcome import clean_text, tail
from taskorch.agents.process import OUTPUT_CAP_BYTES, agent_environment, run_process
from taskorch.domain.errors import AgentError
from taskorch.domain.retry import ErrorClass

TEXT_LIMIT = 20_000


class ShellAdapter:
    def __init__(
        self,
        *,
        name: str = "shell",
        env: Mapping[str, str] | None = None,
        heartbeat_s: float = 1.0,
        output_cap: int = OUTPUT_CAP_BYTES,
    ) -> None:
        self._name = name
        self.env = dict(env or {})
        self.heartbeat_s = heartbeat_s
        self.output_cap = output_cap

    @property
    def name(self) -> str:
        return self._name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        command = task.subtask.command
        if not command:
            raise AgentError(
                f"subtask {task.subtask.key} has no command for the shell agent {self.name}; "
                "give it a command (argv list) or route it to a coding agent",
                error_class=ErrorClass.VALIDATION.value,
                retryable=False,
            )
        before = await snapshot(task.workdir, heartbeat)
        process = await run_process(
            list(command),
            heartbeat=heartbeat,
            cwd=task.workdir,
            env=agent_environment(self.env),
            heartbeat_s=self.heartbeat_s,
            output_cap=self.output_cap,
        )
        shown = shlex.join(command)
        if process.returncode != 0:
            said = process.stderr.strip() or process.stdout.strip() or "(no output)"
            raise AgentError(
                f"command {tail(shown, 200)} exited {process.returncode}: {tail(said, 1000)}",
                error_class=ErrorClass.AGENT.value,
            )
        data: dict[str, Any] = {
            "agent": self.name,
            "command": list(command),
            "exit_code": 0,
            "stderr": tail(process.stderr, TEXT_LIMIT),
            "output_truncated": process.truncated,
        }
        if before is not None:
            changes = await changes_since(before, heartbeat)
            data["changed_files"] = changes.changed_files
            data["commits"] = changes.commits
        return AgentResult(True, tail(clean_text(process.stdout), TEXT_LIMIT), data)

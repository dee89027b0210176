"""CLI agents: an agent's own non-interactive command, run in the subtask's git worktree.

A :class:`CliTemplate` is an argv list (never a shell command line). Placeholders are replaced
inside single argv elements, never split: ``{prompt}`` (the instructions), ``{workdir}`` and
``{scratch}`` (a temporary directory outside the worktree, removed afterwards, for files an agent
would otherwise drop into the worktree). A template either carries ``{prompt}`` or sends the prompt
on stdin. A prompt that starts with ``-`` gets a leading space when it is a whole argv element, so
the agent's option parser cannot read it as an option.

Built-in templates (:data:`TEMPLATES`), following ``shared/contracts/agent-clis.md``:

- ``claude-code``: ``claude -p PROMPT --output-format json --permission-mode acceptEdits`` (in
  ``-p`` mode edits are silently denied without a permission mode); its JSON report gives the
  final text, ``is_error``, tokens, cost and ``permission_denials`` (non-empty = failure).
- ``aider``: ``aider --message=PROMPT --yes-always`` plus the flags that keep the worktree clean
  and the run quiet (history files in ``{scratch}``; its repo-map cache, which it can only write
  into the worktree, is removed after the run); it commits its own edits; tokens and cost come
  from its "Tokens: ... Cost: ..." lines.
- ``goose``: ``goose run -t PROMPT``; ``codex``: ``codex exec --full-auto PROMPT`` (not checked
  against the real programs; success is judged from the worktree like the others).

Judging a run (exit codes don't say whether the work was done):

- non-zero exit, or the agent's own report says it failed: :class:`AgentError` classified from the
  output, or from the words of a structured report (Claude's ``result`` and API status, not its
  JSON's numbers) (auth → non-retryable ``auth``, rate limit → ``rate_limit``, ...; else ``agent``);
- Claude's ``permission_denials`` non-empty: ``agent`` error naming the denied tools;
- changes or new commits in the worktree: success;
- no change in a git worktree and the reply ends with a question: :class:`NeedsInputError`
  (without a worktree to look at, ``data["question"]`` is set and validation decides);
- exit 0 with no change, but the model API rejected the request (the API status in Claude's
  report is 400/404/413/422, or the reply starts with "API Error: 400 ..."): non-retryable
  ``validation`` error at once (the same request is rejected again);
- no change where changes are expected (``files_affected`` set, or an implementation, test or
  documentation subtask; ``require_changes`` overrides): a failed attempt (``agent``, retryable);
- otherwise (an audit, a plan, or no git worktree to look at): success only with a report of
  success: Claude's ``is_error: false``, or some output from agents that report nothing else.

A missing executable is a non-retryable ``dependency`` error naming it (from :func:`run_process`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.agents.changes import Changes, changes_since, remove_litter, snapshot
from taskorch.agents.cli_reports import AgentReport, ReportFormat, parse_report
from taskorch.agents.outcome import (
    NeedsInputError,
    classify_failure,
    model_rejection,
    tail,
    waiting_question,
)
from taskorch.agents.process import (
    OUTPUT_CAP_BYTES,
    ProcessResult,
    agent_environment,
    run_process,
)
from taskorch.domain.errors import AgentError, ConfigError
from taskorch.domain.plan import WorkerType
from taskorch.domain.retry import ErrorClass

PROMPT = "{prompt}"
SCRATCH = "{scratch}"
WORKDIR = "{workdir}"
TEXT_LIMIT = 20_000
"""Characters of output kept in a result (the tail)."""
CHANGING_WORK = frozenset({WorkerType.IMPLEMENTATION, WorkerType.TEST, WorkerType.DOCUMENTATION})


@dataclass(frozen=True, slots=True)
class CliTemplate:
    name: str
    argv: tuple[str, ...]
    prompt_on_stdin: bool = False
    report: ReportFormat = "text"
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the inherited environment."""
    litter: tuple[str, ...] = ()
    """Glob patterns of the agent's own state it leaves at the worktree's top (caches), removed
    after a run when new and untracked (:func:`~taskorch.agents.changes.remove_litter`)."""

    def __post_init__(self) -> None:
        if not self.argv or not self.argv[0]:
            raise ConfigError(f"agent template {self.name!r} needs a command (argv[0])")
        if "{" in self.argv[0]:
            raise ConfigError(f"agent template {self.name!r}: argv[0] cannot hold a placeholder")
        has_prompt = any(PROMPT in part for part in self.argv)
        if has_prompt == self.prompt_on_stdin:
            raise ConfigError(
                f"agent template {self.name!r} must either carry {PROMPT} in one argv element "
                "or send the prompt on stdin, not both and not neither"
            )

    @classmethod
    def custom(
        cls,
        argv: Sequence[str],
        *,
        name: str = "custom",
        prompt_on_stdin: bool | None = None,
        report: ReportFormat = "text",
        env: Mapping[str, str] | None = None,
    ) -> CliTemplate:
        """A template from an argv list; without ``{prompt}`` in it the prompt goes on stdin."""
        stdin = (
            prompt_on_stdin
            if prompt_on_stdin is not None
            else not any(PROMPT in part for part in argv)
        )
        return cls(name, tuple(argv), stdin, report, dict(env or {}))

    @property
    def uses_scratch(self) -> bool:
        return any(SCRATCH in part for part in self.argv)

    def render(self, prompt: str, workdir: Path | None, scratch: Path | None) -> list[str]:
        values = {WORKDIR: str(workdir or ""), SCRATCH: str(scratch or "")}
        argv: list[str] = []
        for part in self.argv:
            if part == PROMPT:
                argv.append(" " + prompt if prompt.startswith("-") else prompt)
                continue
            # one pass, so a placeholder inside the prompt is never expanded
            pieces = part.split(PROMPT)
            for key, value in values.items():
                pieces = [piece.replace(key, value) for piece in pieces]
            argv.append(prompt.join(pieces))
        return argv


CLAUDE_CODE = CliTemplate(
    "claude-code",
    ("claude", "-p", PROMPT, "--output-format", "json", "--permission-mode", "acceptEdits"),
    report="claude-json",
    env={"DISABLE_AUTOUPDATER": "1"},
)
AIDER = CliTemplate(
    "aider",
    (
        "aider",
        f"--message={PROMPT}",
        "--yes-always",
        "--no-gitignore",
        "--no-check-update",
        "--analytics-disable",
        "--no-show-release-notes",
        "--no-pretty",
        "--no-fancy-input",
        f"--chat-history-file={SCRATCH}/chat.md",
        f"--input-history-file={SCRATCH}/input.txt",
    ),
    report="aider",
    # the repo map's cache: aider has no option to put it elsewhere, and --no-gitignore means
    # nothing ignores it
    litter=(".aider.tags.cache.v*",),
)
GOOSE = CliTemplate("goose", ("goose", "run", "-t", PROMPT))
CODEX = CliTemplate("codex", ("codex", "exec", "--full-auto", PROMPT))
TEMPLATES: dict[str, CliTemplate] = {t.name: t for t in (CLAUDE_CODE, AIDER, GOOSE, CODEX)}


def template(name: str) -> CliTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise ConfigError(f"unknown CLI agent {name!r}; known: {known}, or a custom argv") from None


class CliAgentAdapter:
    def __init__(
        self,
        agent: CliTemplate | str,
        *,
        name: str | None = None,
        executable: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        require_changes: bool | None = None,
        heartbeat_s: float = 1.0,
        output_cap: int = OUTPUT_CAP_BYTES,
    ) -> None:
        base = template(agent) if isinstance(agent, str) else agent
        if executable:
            base = replace(base, argv=(executable, *base.argv[1:]))
        self.template = replace(base, argv=(*base.argv, *extra_args))
        self._name = name or base.name
        self.env = dict(env or {})
        self.require_changes = require_changes
        self.heartbeat_s = heartbeat_s
        self.output_cap = output_cap

    @property
    def name(self) -> str:
        return self._name

    def expects_changes(self, task: AgentTask) -> bool:
        if self.require_changes is not None:
            return self.require_changes
        return bool(task.subtask.files_affected) or task.subtask.worker_type in CHANGING_WORK

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        prompt = task.instructions.strip()
        if not prompt:
            raise AgentError(
                f"subtask {task.subtask.key} has no instructions for {self.name}",
                error_class=ErrorClass.VALIDATION.value,
                retryable=False,
            )
        before = await snapshot(task.workdir, heartbeat)
        scratch = (
            Path(tempfile.mkdtemp(prefix="taskorch-agent-")) if self.template.uses_scratch else None
        )
        try:
            process = await run_process(
                self.template.render(prompt, task.workdir, scratch),
                heartbeat=heartbeat,
                cwd=task.workdir,
                stdin=prompt if self.template.prompt_on_stdin else None,
                env=agent_environment(self.template.env, self.env),
                heartbeat_s=self.heartbeat_s,
                output_cap=self.output_cap,
            )
        finally:
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
        if before is not None and self.template.litter:
            await remove_litter(before, self.template.litter, heartbeat)
        changes = await changes_since(before, heartbeat) if before is not None else None
        report = parse_report(self.template.report, process.stdout)
        return self.judge(task, process, report, changes)

    def judge(
        self,
        task: AgentTask,
        process: ProcessResult,
        report: AgentReport,
        changes: Changes | None,
    ) -> AgentResult:
        try:
            return self._verdict(task, process, report, changes)
        except AgentError as error:
            raise error.with_usage(report.tokens_in, report.tokens_out, report.cost_usd) from None

    def _verdict(
        self,
        task: AgentTask,
        process: ProcessResult,
        report: AgentReport,
        changes: Changes | None,
    ) -> AgentResult:
        data: dict[str, Any] = {
            "agent": self.name,
            "exit_code": process.returncode,
            "stdout": tail(process.stdout, TEXT_LIMIT),
            "stderr": tail(process.stderr, TEXT_LIMIT),
            "output_truncated": process.truncated,
            **report.extra,
        }
        if changes is not None:
            data["changed_files"] = changes.changed_files
            data["commits"] = changes.commits
        if process.returncode != 0 or report.ok is False:
            said = report.text or process.stderr.strip() or process.stdout.strip()
            evidence = process.stdout if report.evidence is None else report.evidence
            error_class, retryable = classify_failure(f"{process.stderr}\n{evidence}")
            how = f"exited {process.returncode}" if process.returncode else "reported an error"
            raise AgentError(
                f"{self.name} {how}: {tail(said, 500) or '(no output)'}",
                error_class=error_class.value,
                retryable=retryable,
            )
        if report.permission_denials:
            denied = ", ".join(sorted(set(report.permission_denials)))
            raise AgentError(
                f"{self.name} was denied permission for: {denied}; allow these tools "
                "(--permission-mode / --allowedTools) or change the instructions",
                error_class=ErrorClass.AGENT.value,
            )
        result = AgentResult(
            True,
            tail(report.text, TEXT_LIMIT),
            data,
            report.tokens_in,
            report.tokens_out,
            report.cost_usd,
        )
        if changes is not None and changes.any:
            return result
        rejected = model_rejection(report.text, report.extra.get("api_error_status"))
        if rejected is not None:
            raise AgentError(
                f"{self.name} exited 0 but {rejected}; the same request is rejected again, so it "
                "is not retried: fix the instructions or the agent's model settings",
                error_class=ErrorClass.VALIDATION.value,
                retryable=False,
            )
        question = waiting_question(report.text)
        if question is not None:
            if changes is not None:
                raise NeedsInputError(self.name, question)
            data["question"] = question  # no worktree to judge by: validation decides
        if changes is not None and self.expects_changes(task):
            raise AgentError(
                f"{self.name} exited 0 but changed nothing in {task.workdir}: "
                f"{tail(report.text, 300) or '(no output)'}",
                error_class=ErrorClass.AGENT.value,
            )
        if report.ok or (report.ok is None and report.text):
            return result
        raise AgentError(
            f"{self.name} exited 0 without a result or any change",
            error_class=ErrorClass.AGENT.value,
        )

"""Validation of a workflow's merged work: the test command and the working-spec checks.

- :func:`run_test_command` runs the configured test command (an argv list, never a shell) in the
  workflow's worktree through :func:`taskorch.agents.process.run_process` (own process group, the
  whole group ended on timeout). No command configured: ``skipped``, and the summary says so. A
  timeout or a missing executable is a failure with its reason.
- :func:`working_spec_check` compares what each subtask changed with what it declared
  (``files_affected``): files outside the declared scope are flagged per subtask; file and line
  budgets per subtask are enforced; a file changed by two subtasks where not both declared it is
  flagged as an undeclared overlap. A subtask that declared no files has no scope to check.
- :class:`ValidationReport` puts them together: passed when the tests did not fail and no finding
  is blocking. Scope and overlap findings are warnings unless ``strict_scope``; budget findings
  block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from taskorch.agents.base import Heartbeat
from taskorch.agents.outcome import tail
from taskorch.agents.process import run_process
from taskorch.domain.errors import AgentError
from taskorch.domain.models import JSONDict
from taskorch.domain.overlap import in_scope, normalise_path
from taskorch.domain.working_spec import DEFAULT_MAX_FILES

DEFAULT_TEST_TIMEOUT_S = 600.0
DEFAULT_MAX_LINES = 1000
"""Lines (added plus removed) one subtask may change."""
OUTPUT_TAIL_CHARS = 4000


class TestStatus(StrEnum):
    __test__ = False  # not a pytest test class

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class TestRun:
    __test__ = False

    status: TestStatus
    argv: list[str]
    returncode: int | None = None
    duration_s: float = 0.0
    output_tail: str = ""
    reason: str = ""
    """Why it failed or was skipped, in words."""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """Passed or skipped: nothing failed."""
        return self.status is not TestStatus.FAILED

    @property
    def summary(self) -> str:
        command = " ".join(self.argv)
        if self.status is TestStatus.SKIPPED:
            return f"tests skipped: {self.reason}"
        if self.status is TestStatus.PASSED:
            return f"tests passed: {command} ({self.duration_s:.1f} s)"
        return f"tests failed: {command}: {self.reason}"

    def to_json(self) -> JSONDict:
        return {
            "status": self.status.value,
            "argv": list(self.argv),
            "returncode": self.returncode,
            "duration_s": round(self.duration_s, 3),
            "reason": self.reason,
            "timed_out": self.timed_out,
            "output_tail": self.output_tail,
        }


class FindingKind(StrEnum):
    OUT_OF_SCOPE = "out_of_scope"
    UNDECLARED_OVERLAP = "undeclared_overlap"
    FILE_BUDGET = "file_budget"
    LINE_BUDGET = "line_budget"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    subtask: str | None
    message: str
    files: list[str] = field(default_factory=list)
    blocking: bool = False

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> JSONDict:
        return {
            "kind": self.kind.value,
            "subtask": self.subtask,
            "message": self.message,
            "files": list(self.files),
            "blocking": self.blocking,
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    test: TestRun
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.test.ok and not any(finding.blocking for finding in self.findings)

    @property
    def output_tail(self) -> str:
        return self.test.output_tail

    @property
    def summary(self) -> str:
        blocking = sum(1 for finding in self.findings if finding.blocking)
        warnings = len(self.findings) - blocking
        parts = [self.test.summary]
        if blocking:
            parts.append(f"{blocking} blocking finding(s)")
        if warnings:
            parts.append(f"{warnings} warning(s)")
        verdict = "validation passed" if self.passed else "validation failed"
        return f"{verdict}: " + "; ".join(parts)

    def to_json(self) -> JSONDict:
        return {
            "passed": self.passed,
            "summary": self.summary,
            "test": self.test.to_json(),
            "findings": [finding.to_json() for finding in self.findings],
        }


def _no_heartbeat() -> None:
    return None


async def run_test_command(
    argv: Sequence[str] | None,
    cwd: Path,
    timeout_s: float = DEFAULT_TEST_TIMEOUT_S,
    *,
    heartbeat: Heartbeat = _no_heartbeat,
    env: Mapping[str, str] | None = None,
    tail_chars: int = OUTPUT_TAIL_CHARS,
) -> TestRun:
    """Run the test command in ``cwd``; never raises for a failing, missing or slow command."""
    if not argv:
        return TestRun(TestStatus.SKIPPED, [], reason="no test command is configured")
    command = list(argv)
    if not await asyncio.to_thread(cwd.is_dir):
        return TestRun(TestStatus.FAILED, command, reason=f"working directory {cwd} does not exist")
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            result = await run_process(command, heartbeat=heartbeat, cwd=cwd, env=env)
    except TimeoutError:
        return TestRun(
            TestStatus.FAILED,
            command,
            duration_s=time.monotonic() - started,
            reason=f"timed out after {timeout_s:g} s (the command's process group was ended)",
            timed_out=True,
        )
    except AgentError as exc:
        return TestRun(
            TestStatus.FAILED,
            command,
            duration_s=time.monotonic() - started,
            reason=exc.message.replace("agent executable", "test command"),
        )
    output = result.stdout
    if result.stderr:
        output = f"{output}\n{result.stderr}" if output else result.stderr
    passed = result.returncode == 0
    return TestRun(
        TestStatus.PASSED if passed else TestStatus.FAILED,
        command,
        returncode=result.returncode,
        duration_s=time.monotonic() - started,
        output_tail=tail(output, tail_chars),
        reason="" if passed else f"exit code {result.returncode}",
    )


def working_spec_check(
    declared: Mapping[str, Sequence[str]],
    actual: Mapping[str, Sequence[str]],
    *,
    max_files: int | None = DEFAULT_MAX_FILES,
    max_lines: int | None = DEFAULT_MAX_LINES,
    lines_changed: Mapping[str, int] | None = None,
    strict_scope: bool = False,
) -> list[Finding]:
    """Findings for each subtask (key) of ``actual`` against its ``declared`` files.

    ``lines_changed`` gives lines added plus removed per subtask for the line budget (a subtask
    it leaves out is not checked); ``None`` budgets are off.
    """
    findings: list[Finding] = []
    changed = {
        key: sorted({normalise_path(path) for path in paths} - {""})
        for key, paths in actual.items()
    }
    for key, files in changed.items():
        scope = [entry for entry in declared.get(key, []) if normalise_path(entry)]
        outside = [path for path in files if scope and not in_scope(path, scope)]
        if outside:
            findings.append(
                Finding(
                    FindingKind.OUT_OF_SCOPE,
                    key,
                    f"subtask {key} changed files outside its declared scope "
                    f"({', '.join(scope)}): {', '.join(outside)}",
                    outside,
                    blocking=strict_scope,
                )
            )
        if max_files is not None and len(files) > max_files:
            findings.append(
                Finding(
                    FindingKind.FILE_BUDGET,
                    key,
                    f"subtask {key} changed {len(files)} files, more than the budget of "
                    f"{max_files}",
                    files,
                    blocking=True,
                )
            )
        lines = (lines_changed or {}).get(key)
        if max_lines is not None and lines is not None and lines > max_lines:
            findings.append(
                Finding(
                    FindingKind.LINE_BUDGET,
                    key,
                    f"subtask {key} changed {lines} lines, more than the budget of {max_lines}",
                    blocking=True,
                )
            )
    findings.extend(_undeclared_overlaps(declared, changed, strict_scope))
    return findings


def _undeclared_overlaps(
    declared: Mapping[str, Sequence[str]], changed: Mapping[str, list[str]], strict: bool
) -> list[Finding]:
    writers: dict[str, list[str]] = {}
    for key, files in changed.items():
        for path in files:
            writers.setdefault(path, []).append(key)
    findings: list[Finding] = []
    for path, keys in sorted(writers.items()):
        if len(keys) < 2:
            continue
        undeclared = [key for key in keys if not in_scope(path, declared.get(key, []))]
        if undeclared:
            findings.append(
                Finding(
                    FindingKind.UNDECLARED_OVERLAP,
                    None,
                    f"{path} was changed by {', '.join(keys)}, not declared by "
                    f"{', '.join(undeclared)}: they could have run at the same time",
                    [path],
                    blocking=strict,
                )
            )
    return findings

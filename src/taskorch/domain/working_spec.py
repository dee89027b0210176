"""The working spec a plan must meet before any agent runs on it.

After execution, :func:`taskorch.runtime.validation.working_spec_check` compares what each
subtask changed with what it declared. Some plans break the spec before anything runs: a subtask
that declares a file outside the repository (an absolute path, ``..`` above the root, a home
folder), inside git's own ``.git`` folder, or more files than one subtask may change. Running them
would spend an agent's time on work that validation must reject, so the pipeline rejects such a
plan at decomposition: the workflow is cancelled with the reason, and nothing is dispatched.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from taskorch.domain.errors import WorkingSpecError
from taskorch.domain.plan import Plan, PlanSubtask

DEFAULT_MAX_FILES = 10
"""Files one subtask may change (the plan allows 3 declared; tests and the like come on top)."""

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass(frozen=True, slots=True)
class SpecViolation:
    subtask: str
    problem: str

    def __str__(self) -> str:
        return f"subtask {self.subtask} {self.problem}"


def outside_repository(path: str) -> bool:
    """Whether a declared path names something outside the repository's work tree."""
    text = path.strip().replace("\\", "/")
    if text.startswith(("/", "~")) or _WINDOWS_DRIVE.match(path.strip()):
        return True
    return posixpath.normpath(text or ".").split("/")[0] == ".."


def in_git_folder(path: str) -> bool:
    parts = posixpath.normpath(path.strip().replace("\\", "/") or ".").split("/")
    return ".git" in parts


def _violations_of(subtask: PlanSubtask, max_files: int | None) -> list[SpecViolation]:
    found: list[SpecViolation] = []
    if not subtask.title.strip():
        found.append(SpecViolation(subtask.subtask_id, "has no title"))
    outside = [p for p in subtask.files_affected if outside_repository(p)]
    if outside:
        shown = ", ".join(outside)
        found.append(
            SpecViolation(subtask.subtask_id, f"declares files outside the repository: {shown}")
        )
    internal = [p for p in subtask.files_affected if p not in outside and in_git_folder(p)]
    if internal:
        shown = ", ".join(internal)
        found.append(SpecViolation(subtask.subtask_id, f"declares files inside .git: {shown}"))
    if max_files is not None and len(subtask.files_affected) > max_files:
        found.append(
            SpecViolation(
                subtask.subtask_id,
                f"declares {len(subtask.files_affected)} files, more than the budget of "
                f"{max_files} one subtask may change",
            )
        )
    return found


def spec_violations(
    plan: Plan, *, max_files: int | None = DEFAULT_MAX_FILES
) -> list[SpecViolation]:
    """What in ``plan`` breaks the working spec, subtask by subtask (empty when it holds)."""
    return [v for subtask in plan.subtasks for v in _violations_of(subtask, max_files)]


def check_working_spec(plan: Plan, *, max_files: int | None = DEFAULT_MAX_FILES) -> None:
    """Raise :class:`WorkingSpecError` naming every violation, if there is one."""
    violations = spec_violations(plan, max_files=max_files)
    if violations:
        listed = "; ".join(str(v) for v in violations)
        raise WorkingSpecError(
            f"invalid working spec, rejected before execution: {listed}. "
            "Fix the plan's files_affected and submit the task again"
        )

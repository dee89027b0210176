"""Every error taskorch raises on purpose derives from :class:`TaskorchError`.

The tree::

    TaskorchError
    ├── ConfigError                 a setting or configuration value is invalid
    ├── InputError                  a user-supplied value is invalid (empty title, bad priority)
    ├── NotFoundError               an id names nothing in the store
    ├── StateError
    │   ├── InvalidTransitionError  the state machine forbids from -> to
    │   └── StaleStateError         the stored state is not the one the writer expected
    ├── PlanError                   a plan breaks a rule
    │   ├── UnknownDependencyError
    │   ├── SelfDependencyError
    │   ├── CycleError
    │   └── TooManyStagesError
    ├── StoreError                  the database failed (permanent: retrying repeats it)
    │   ├── DatabaseUnavailableError  transient: unreachable, connection lost, deadlock, busy, full
    │   └── MigrationError
    ├── PlannerError                the planner (heuristic or an LLM provider) failed
    ├── AgentError                  an agent attempt failed; says whether and when to retry
    │   └── NeedsInputError         the agent stopped to ask a human instead of working
    └── WorkspaceError              the git workspace failed
        ├── GitError                a git command failed
        ├── MergeConflictError      a merge conflicted (names the files)
        └── HostError               this host cannot do the work (repository out of reach, ...)

Each class's docstring is its default message. Messages are one line that names the bad input and,
where there is one, what to do about it: the CLI prints them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class TaskorchError(Exception):
    """taskorch failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(TaskorchError):
    """A configuration value is invalid."""


class InputError(TaskorchError):
    """An input value is invalid."""


class NotFoundError(TaskorchError):
    """No such record."""


class StateError(TaskorchError):
    """A state change was refused."""


class InvalidTransitionError(StateError):
    """The state machine does not allow this transition."""

    def __init__(self, kind: str, from_state: str, to_state: str) -> None:
        self.kind = kind
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(f"illegal {kind} transition: {from_state} -> {to_state}")


class StaleStateError(StateError):
    """The stored state changed under the writer."""

    def __init__(self, what: str, expected: str, found: str | None) -> None:
        self.expected = expected
        self.found = found
        shown = found if found is not None else "missing"
        super().__init__(f"{what} is {shown}, expected {expected}; it was changed concurrently")


class PlanError(TaskorchError):
    """The plan is invalid."""


class WorkingSpecError(TaskorchError):
    """The plan breaks the working spec (a declared file outside the repository, over the file
    budget): the workflow is cancelled before any agent runs."""


class UnknownDependencyError(PlanError):
    def __init__(self, node: str, dependency: str) -> None:
        self.node = node
        self.dependency = dependency
        super().__init__(f"subtask {node!r} depends on unknown subtask {dependency!r}")


class SelfDependencyError(PlanError):
    def __init__(self, node: str) -> None:
        self.node = node
        super().__init__(f"subtask {node!r} depends on itself")


class CycleError(PlanError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


class TooManyStagesError(PlanError):
    def __init__(self, stages: int, limit: int) -> None:
        self.stages = stages
        self.limit = limit
        super().__init__(
            f"plan needs {stages} stages, more than the limit of {limit}; "
            "split the requirement into smaller tasks"
        )


class StoreError(TaskorchError):
    """The database failed."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached.

    Transient: the same work may succeed if tried again (a dropped or terminated connection, a
    server restarting, a serialization failure or deadlock, SQLite busy past its timeout, a full
    disk). The backends raise it for those and plain :class:`StoreError` for the rest; the
    loops that must outlive an outage retry it (``store/outage.py``)."""


class MigrationError(StoreError):
    """The database schema could not be migrated."""


class PlannerError(TaskorchError):
    """The planner failed."""


class AgentError(TaskorchError):
    """An agent attempt failed.

    ``error_class`` is one of the classes the recovery manager knows (network, timeout, rate_limit,
    service_unavailable, auth, dependency, resource, validation, agent). ``retryable`` False
    means no retry helps; ``retry_after_s`` is the agent's own hint (a Retry-After header).
    Tokens and cost are what the failed attempt spent, when the agent reported them.
    """

    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None

    def __init__(
        self,
        message: str,
        *,
        error_class: str = "agent",
        retryable: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        self.error_class = error_class
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def with_usage(
        self, tokens_in: int | None, tokens_out: int | None, cost_usd: float | None
    ) -> AgentError:
        """This error, carrying what the attempt spent (a failed attempt is paid for too)."""
        self.tokens_in, self.tokens_out, self.cost_usd = tokens_in, tokens_out, cost_usd
        return self


class NeedsInputError(AgentError):
    """The agent stopped to ask a human something instead of doing the work.

    Not retryable (the same prompt asks the same question): the subtask needs a person or
    clearer instructions. ``question`` is the agent's last line.
    """

    def __init__(self, agent: str, question: str) -> None:
        self.question = question
        super().__init__(
            f"agent {agent} is waiting for human input: {question!r}; "
            "answer it in the instructions or make the subtask more specific",
            error_class="agent",
            retryable=False,
        )


class WorkspaceError(TaskorchError):
    """The git workspace failed."""


class GitError(WorkspaceError):
    """A git command failed."""

    def __init__(self, args: Sequence[str], cwd: Path, returncode: int, stderr: str) -> None:
        self.git_args = list(args)
        self.cwd = cwd
        self.returncode = returncode
        self.stderr = stderr
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else "no message"
        super().__init__(f"git {' '.join(args)} failed in {cwd} (exit {returncode}): {detail}")


class MergeConflictError(WorkspaceError):
    """A merge conflicted."""

    def __init__(self, what: str, files: Sequence[str]) -> None:
        self.files = list(files)
        super().__init__(f"{what} conflicts in: {', '.join(self.files) or '(unknown files)'}")


class HostError(WorkspaceError):
    """This host cannot do the work: the repository is out of its reach (a path it does not have,
    a URL it cannot fetch) or a program it lacks. Not the agent's failure: another host may."""

"""The simulated agent for git worktrees: labelled, committed changes, so the whole path from plan
to merged branch runs offline.

It behaves like :class:`taskorch.agents.sim.SimAgent` (durations, failure rates, heartbeats), then
writes into ``task.workdir`` (the subtask's worktree) and commits:

- for each declared file in ``files_affected`` (plain paths inside the worktree; globs and
  directories are skipped): conflict markers resolved by keeping both sides, then one line
  appended, creating the file and its directories, in the
  file's comment syntax so code stays valid (a new ``.json`` file gets a small labelled object; an
  existing one is left alone, as JSON has no comments);
- when no declared file could be written: a transcript ``.taskorch-sim/<key>.md`` (under
  ``.taskorch-sim/<workflow>/`` where the same transcript is already there, so running the same
  plan again still makes a change).

What it writes depends only on the subtask (key, title, instructions), not on the workflow (its
id is in the commit message): workflows that run the same plan from the same base commit make
identical changes, so they land on the base branch one after another without conflicts. (Ones
that start from different points can still conflict there, as real work would.)

Every line, file, commit and result says "simulated". Commits are made as
``taskorch simulated agent <sim@taskorch.localhost>``, unsigned, without hooks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

from taskorch.agents import captured
from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.agents.sim import SimAgent, SimBehaviour
from taskorch.domain.errors import AgentError

SIM_DIR = ".taskorch-sim"
IDENTITY = ("taskorch simulated agent", "sim@taskorch.localhost")
GIT_FINISH_S = 60.0
"""How long a cancelled run waits for its git command to end."""

_HASH = {
    ".py",
    ".sh",
    ".bash",
    ".rb",
    ".pl",
    ".r",
    ".yml",
    ".yaml",
    ".toml",
    ".cfg",
    ".ini",
    ".conf",
    ".tf",
    ".mk",
    ".dockerfile",
    ".env",
    ".ps1",
    ".nix",
    ".cmake",
}
_HASH_NAMES = {
    "Dockerfile",
    "Makefile",
    "makefile",
    "Procfile",
    ".gitignore",
    ".dockerignore",
    "Gemfile",
    "Rakefile",
    "requirements.txt",
    "CODEOWNERS",
}
_SLASH = {
    ".js",
    ".jsx",
    ".ts",
    ".tsx",
    ".mjs",
    ".cjs",
    ".go",
    ".java",
    ".kt",
    ".kts",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".hpp",
    ".cs",
    ".rs",
    ".swift",
    ".scala",
    ".dart",
    ".php",
    ".proto",
    ".groovy",
    ".gradle",
    ".zig",
}
_DASH = {".sql", ".lua", ".hs", ".elm", ".ada"}
_MARKUP = {".md", ".markdown", ".html", ".htm", ".xml", ".svg", ".vue", ".svelte"}
_BLOCK = {".css", ".scss", ".less"}


class SimWorktreeAgent:
    """Simulated agent that leaves a labelled, committed change in the subtask's worktree."""

    def __init__(self, behaviour: SimBehaviour | None = None, *, name: str = "sim") -> None:
        self._sim = SimAgent(behaviour, name=name)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        workdir = task.workdir
        if workdir is None:
            raise AgentError(
                f"simulated agent {self.name}: subtask {task.subtask.key} has no worktree "
                "(task.workdir is None)",
                error_class="validation",
                retryable=False,
            )
        if not workdir.is_dir():
            raise AgentError(
                f"simulated agent {self.name}: worktree {workdir} does not exist",
                error_class="resource",
                retryable=False,
            )
        await self._sim.run(task, heartbeat)  # duration, failures, heartbeats
        try:
            written = _write(workdir, task)  # (one small file: no thread hop)
        except OSError as exc:
            raise AgentError(
                f"simulated agent {self.name} could not write in {workdir}: {exc}",
                error_class="resource",
                retryable=False,
            ) from exc
        await _git(workdir, heartbeat, "add", "--", *written)
        subject = f"simulated: {task.subtask.key}: {_one_line(task.subtask.title)}"
        body = (
            f"Written by taskorch's simulated agent {self.name}; no real agent ran.\n\n"
            f"Taskorch-Simulated: true\nTaskorch-Workflow: {task.subtask.workflow_id}\n"
            f"Taskorch-Subtask: {task.subtask.key}"
        )
        said = await _git(workdir, heartbeat, "commit", "--no-verify", "-m", subject, "-m", body)
        commit = _committed(said) or (await _git(workdir, heartbeat, "rev-parse", "HEAD")).strip()
        return AgentResult(
            success=True,
            output=(
                f"simulated: {task.subtask.key} done by simulated agent {self.name}; "
                f"wrote {', '.join(written)}; committed {commit[:12]}"
            ),
            data={"files": written, "commit": commit, "simulated_by": self.name},
            simulated=True,
        )


_COMMITTED = re.compile(r"\[\S+(?: [^\]]+)? ([0-9a-f]{40}|[0-9a-f]{64})\] ")
"""``git commit``'s first line, ``[<branch> <commit>] <subject>`` (``core.abbrev=no``: the
whole id; ``detached HEAD``, ``(root-commit)`` between)."""


def _committed(said: str) -> str | None:
    """The commit ``git commit`` says it made (no ``rev-parse`` after it), None when it says
    otherwise."""
    found = _COMMITTED.match(said)
    return found[1] if found else None


def label(task: AgentTask, agent: str = "sim") -> str:
    subtask = task.subtask
    return (
        f"simulated change by taskorch's simulated agent {agent} (not real work): "
        f"subtask {subtask.key}: {_one_line(subtask.title)}"
    )


def _write(workdir: Path, task: AgentTask) -> list[str]:
    written: list[str] = []
    for entry in task.subtask.files_affected:
        relative = _safe_relative(entry)
        if relative is None:
            continue
        target = workdir / relative
        if target.is_dir():
            continue
        if _append_labelled(target, label(task)):
            written.append(relative.as_posix())
    if not written:
        written.append(_write_transcript(workdir, task))
    return written


def _write_transcript(workdir: Path, task: AgentTask) -> str:
    """The transcript at ``.taskorch-sim/<key>.md``; where an earlier workflow already left that
    very transcript (the same plan run again), at ``.taskorch-sim/<workflow>/<key>.md``, so a
    repeated run still changes something and does not fail with nothing to commit."""
    text = _transcript(task)
    relative = PurePosixPath(SIM_DIR, f"{task.subtask.key}.md")
    path = workdir / relative
    if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == text:
        relative = PurePosixPath(SIM_DIR, task.subtask.workflow_id, f"{task.subtask.key}.md")
        path = workdir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return relative.as_posix()


def _safe_relative(entry: str) -> PurePosixPath | None:
    """A declared plain file path inside the worktree, or None (globs, directories, escapes)."""
    text = entry.strip().replace("\\", "/")
    if not text or text.endswith("/") or any(char in text for char in "*?["):
        return None
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] == (".git",):
        return None
    parts = [part for part in path.parts if part != "."]
    return PurePosixPath(*parts) if parts else None


def _append_labelled(target: Path, text: str) -> bool:
    suffix = target.suffix.lower()
    if suffix == ".json":
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"simulated": True, "note": text}, indent=2) + "\n")
        return True
    line = _comment(target.name, suffix, text)
    target.parent.mkdir(parents=True, exist_ok=True)
    existing = _resolved(target.read_bytes()) if target.exists() else b""
    if target.exists():
        target.write_bytes(existing)
    separator = b"" if not existing or existing.endswith(b"\n") else b"\n"
    with target.open("ab") as handle:
        handle.write(separator + line.encode() + b"\n")
    return True


_MARKERS = (b"<<<<<<< ", b"=======", b">>>>>>> ")


def _resolved(content: bytes) -> bytes:
    """A file left with git's conflict markers (a fix-up that merged its base in), resolved the
    simple way: both sides kept, markers dropped."""
    if b"<<<<<<< " not in content:
        return content
    lines = content.splitlines(keepends=True)
    return b"".join(line for line in lines if not line.rstrip(b"\r\n").startswith(_MARKERS))


def _comment(name: str, suffix: str, text: str) -> str:
    if suffix in _HASH or name in _HASH_NAMES:
        return f"# {text}"
    if suffix in _SLASH:
        return f"// {text}"
    if suffix in _DASH:
        return f"-- {text}"
    if suffix in _MARKUP:
        return f"<!-- {text} -->"
    if suffix in _BLOCK:
        return f"/* {text} */"
    return text


def _transcript(task: AgentTask) -> str:
    subtask = task.subtask
    instructions = "\n".join(f"> {line}" for line in task.instructions.strip().splitlines())
    return (
        f"# Simulated transcript: {subtask.key}\n\n"
        "This file was written by taskorch's simulated agent; no real agent ran and no real "
        "work was done.\n\n"
        f"- subtask: {subtask.key}: {_one_line(subtask.title)}\n"
        f"- owner: {subtask.assigned_to.value} / {subtask.worker_type.value}\n"
        f"- declared files: {', '.join(subtask.files_affected) or '(none)'}\n"
        f"- success criteria: {_one_line(subtask.success_criteria) or '(none)'}\n\n"
        f"## Instructions (as given)\n\n{instructions or '> (none)'}\n\n"
        "## Result\n\nsimulated: done.\n"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


_DROPPED = frozenset({"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"})
_AGENT_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": IDENTITY[0],
    "GIT_AUTHOR_EMAIL": IDENTITY[1],
    "GIT_COMMITTER_NAME": IDENTITY[0],
    "GIT_COMMITTER_EMAIL": IDENTITY[1],
    "LC_ALL": "C",
}


async def _git(workdir: Path, heartbeat: Heartbeat, *args: str) -> str:
    env = captured.environment(_DROPPED, _AGENT_GIT_ENV)
    # Git straight, not through run_process's guard (a Python process per command, ten times
    # the cost of the git command): these are short git commands of taskorch's own, not an
    # agent's program whose tree must die with the worker.
    try:
        found = await captured.run(
            ("git", "-c", "commit.gpgsign=false", "-c", "core.abbrev=no", *args),
            cwd=workdir,
            env=env,
            timeout_s=GIT_FINISH_S,
        )
    except FileNotFoundError:
        raise AgentError(
            "simulated agent: git is not installed or not on PATH",
            error_class="dependency",
            retryable=False,
        ) from None
    except TimeoutError:
        raise AgentError(
            f"simulated agent: git {args[0]} did not finish within {GIT_FINISH_S:g} s",
            error_class="timeout",
        ) from None
    heartbeat()
    if found.returncode != 0:
        detail = (
            found.stderr.decode(errors="replace") or found.stdout.decode(errors="replace")
        ).strip()
        lines = detail.splitlines()
        raise AgentError(
            f"simulated agent: git {args[0]} failed in {workdir}: "
            f"{lines[-1] if lines else 'exit ' + str(found.returncode)}",
            error_class="agent",
            retryable=False,
        )
    return found.stdout.decode(errors="replace")

"""What an agent left in a git worktree: changed files and new commits since a snapshot.

Exit codes don't tell whether an agent did the work (see the agent-CLI contract); the worktree
does. :func:`snapshot` records HEAD and the dirty files before the run, :func:`changes_since`
compares after it: files changed in new commits plus files whose uncommitted state changed
(new, modified, deleted, or reverted). Paths are relative to the repository root. Git runs through
:func:`run_process` (argv only, ``GIT_OPTIONAL_LOCKS=0`` so a status never takes the index lock
the agent may need). Outside a git repository (or without git) there is no snapshot: ``None``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from taskorch.agents.base import Heartbeat
from taskorch.agents.process import run_process
from taskorch.domain.errors import AgentError

_Signature = tuple[int, int]
_GONE: _Signature = (-1, -1)


@dataclass(frozen=True, slots=True)
class Snapshot:
    top: Path
    head: str | None
    dirty: dict[str, _Signature]
    """Uncommitted paths with (size, mtime_ns) of the file, ``(-1, -1)`` when it is gone."""


@dataclass(frozen=True, slots=True)
class Changes:
    changed_files: list[str]
    commits: list[str]
    """New commits, oldest first."""
    head: str | None

    @property
    def any(self) -> bool:
        return bool(self.changed_files or self.commits)


async def snapshot(workdir: Path | None, heartbeat: Heartbeat) -> Snapshot | None:
    if workdir is None or not await asyncio.to_thread(workdir.is_dir):
        return None
    try:
        top = await _git(workdir, heartbeat, "rev-parse", "--show-toplevel")
    except AgentError:
        return None
    if top is None:
        return None
    root = Path(top.strip())
    return Snapshot(root, await _head(root, heartbeat), await _dirty(root, heartbeat))


async def changes_since(before: Snapshot, heartbeat: Heartbeat) -> Changes:
    top = before.top
    head = await _head(top, heartbeat)
    commits: list[str] = []
    committed: set[str] = set()
    if head is not None and head != before.head:
        span = f"{before.head}..{head}" if before.head else head
        listed = await _git(top, heartbeat, "rev-list", "--reverse", span)
        commits = (listed or "").split()
        if before.head:
            names = await _git(top, heartbeat, "diff", "--name-only", "-z", before.head, head)
        else:
            names = await _git(top, heartbeat, "ls-tree", "-r", "--name-only", "-z", head)
        committed = {n for n in (names or "").split("\0") if n}
    dirty = await _dirty(top, heartbeat)
    changed = set(committed)
    changed |= {path for path, sig in dirty.items() if before.dirty.get(path) != sig}
    changed |= {path for path in before.dirty if path not in dirty}
    return Changes(sorted(changed), commits, head)


async def remove_litter(
    before: Snapshot, patterns: Sequence[str], heartbeat: Heartbeat
) -> list[str]:
    """Remove the agent's own state it left at the top of the worktree (e.g. Aider's repo-map
    cache): entries matching ``patterns`` that are new since ``before`` and hold nothing git
    tracks. Left there, they would count as the agent's work and be committed with it."""
    dirty = await _dirty(before.top, heartbeat)
    new = {path.split("/", 1)[0] for path in dirty if path not in before.dirty}
    removed: list[str] = []
    for name in sorted(new):
        if not any(fnmatchcase(name, pattern) for pattern in patterns):
            continue
        if any(path == name or path.startswith(f"{name}/") for path in before.dirty):
            continue  # it was there before the run: not ours to remove
        if await _git(before.top, heartbeat, "ls-files", "-z", "--", name):
            continue
        await asyncio.to_thread(_remove, before.top / name)
        removed.append(name)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


async def _head(top: Path, heartbeat: Heartbeat) -> str | None:
    out = await _git(top, heartbeat, "rev-parse", "--verify", "-q", "HEAD")
    if out is None:
        return None
    return out.strip() or None


async def _dirty(top: Path, heartbeat: Heartbeat) -> dict[str, _Signature]:
    out = await _git(top, heartbeat, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries = (out or "").split("\0")
    dirty: dict[str, _Signature] = {}
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            index += 1  # the rename's source path follows
        dirty[path] = _signature(top / path)
    return dirty


def _signature(path: Path) -> _Signature:
    try:
        stat = path.stat()
    except OSError:
        return _GONE
    return (stat.st_size, stat.st_mtime_ns)


async def _git(cwd: Path, heartbeat: Heartbeat, *args: str) -> str | None:
    """Git's stdout, or None when it exits non-zero."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    result = await run_process(
        ["git", "-c", "core.quotepath=off", *args], heartbeat=heartbeat, cwd=cwd, env=env
    )
    return result.stdout if result.returncode == 0 else None

"""Lock files a killed git process left behind, found and removed.

Git takes a lock by creating ``<file>.lock`` and renaming it over the file when done; a git killed
in between (kill -9 of a worker, a power cut) leaves the lock, and every later git command that
needs the file fails ("Unable to create '.../index.lock': File exists") until someone removes it.

A lock is stale when its owner is gone: on Linux, no live git process works in the repository
(its working directory, ``-C`` directory or ``GIT_DIR`` inside the repository's git directory or
one of its checkouts, read from ``/proc``) and the lock is older than :data:`LINUX_STALE_AFTER_S`
(a git that is just starting may not show in ``/proc`` under its final directory yet; for a
long-lived ``update-ref --stdin`` session, :mod:`ref_sessions`, the age alone decides: its locks
live for a transaction's milliseconds); elsewhere, when it is older than
:data:`OTHER_STALE_AFTER_S`. taskorch's own lock files (``taskorch-*.lock``, held by ``flock``,
which the kernel releases with its holder) are never touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from taskorch.runtime import ref_sessions
from taskorch.runtime.worktree_admin import checkout_of_record

log = logging.getLogger(__name__)

LINUX_STALE_AFTER_S = 3.0
OTHER_STALE_AFTER_S = 600.0
_TOP_LOCKS = (
    "index.lock",
    "HEAD.lock",
    "ORIG_HEAD.lock",
    "packed-refs.lock",
    "config.lock",
    "shallow.lock",
)
_WORKTREE_LOCKS = ("index.lock", "HEAD.lock", "ORIG_HEAD.lock")
_PROC = Path("/proc")


def git_dir_of(repo: Path) -> Path | None:
    """The common git directory of a repository given by its checkout or as a bare repository;
    None when ``repo`` is neither."""
    dot_git = repo / ".git"
    if dot_git.is_dir():
        return dot_git
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return repo
    return None


def lock_files(git_dir: Path) -> list[Path]:
    """The git lock files present in ``git_dir`` (refs and its worktrees' admin directories
    included)."""
    found = [git_dir / name for name in _TOP_LOCKS]
    found += (git_dir / "refs").rglob("*.lock") if (git_dir / "refs").is_dir() else []
    admin = git_dir / "worktrees"
    for entry in admin.iterdir() if admin.is_dir() else []:
        found += [entry / name for name in _WORKTREE_LOCKS]
        found += (entry / "refs").rglob("*.lock") if (entry / "refs").is_dir() else []
    return sorted(path for path in found if path.is_file())


def repository_places(git_dir: Path) -> list[Path]:
    """Where a git process working on this repository runs: its git directory, its main
    checkout and the checkouts of its worktrees."""
    places = [git_dir]
    if git_dir.name == ".git":
        places.append(git_dir.parent)
    admin = git_dir / "worktrees"
    for entry in admin.iterdir() if admin.is_dir() else []:
        # (None for one whose adding was killed, its gitdir empty: read as "." it was this
        # process's own folder, and any git working below it kept every lock "young")
        checkout = checkout_of_record(entry)
        if checkout is not None:
            places.append(checkout)
    return [_real(place) for place in places]


@dataclass(frozen=True, slots=True)
class LiveGit:
    """A live git process and the directories it works in (cwd, ``-C`` and ``GIT_DIR``)."""

    pid: int
    command: str
    places: tuple[Path, ...]

    def works_in(self, places: Iterable[Path]) -> bool:
        return any(_inside(busy, place) for busy in self.places for place in places)


def live_gits() -> list[LiveGit] | None:
    """The live git processes of this host, or None where ``/proc`` cannot tell (not Linux)."""
    if not (_PROC / "self" / "cwd").exists():
        return None
    found: list[LiveGit] = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            git = _git_of(entry)
            if git is not None:
                found.append(git)
    return found


def _git_of(proc: Path) -> LiveGit | None:
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        if not argv or not _is_git(argv[0].decode(errors="replace")):
            return None
        if [arg.decode(errors="replace") for arg in argv[1:3]] == list(ref_sessions.MARK):
            return None  # (an update-ref session: it holds no lock between its transactions)
        cwd = Path(os.readlink(proc / "cwd"))
    except OSError:  # gone meanwhile, or another user's process
        return None
    places = [cwd]
    args = [arg.decode(errors="replace") for arg in argv if arg]
    places += [cwd / args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-C"]
    places += [cwd / arg.removeprefix("--git-dir=") for arg in args if arg.startswith("--git-dir=")]
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        environ = []
    for item in environ:
        if item.startswith((b"GIT_DIR=", b"GIT_WORK_TREE=", b"GIT_COMMON_DIR=")):
            places.append(cwd / item.split(b"=", 1)[1].decode(errors="replace"))
    command = " ".join(args[:3])  # (no further: a URL or a message may follow)
    return LiveGit(int(proc.name), command, tuple(_real(place) for place in places))


def _is_git(program: str) -> bool:
    name = Path(program).name
    return name == "git" or name.startswith("git-")


def orphaned_locks(repo: Path, *, now: float | None = None) -> tuple[list[Path], list[Path]]:
    """``(stale, young)``: the lock files of ``repo`` whose owner is gone, and those that may be
    but cannot be judged yet: too young, or a live git works in the repository now (its own
    lock, or one a killed process left beside it: judged again once it is gone)."""
    git_dir = git_dir_of(repo)
    if git_dir is None:
        return [], []
    locks = lock_files(git_dir)
    if not locks:
        return [], []
    live = live_gits()
    if live is None:
        after_s = OTHER_STALE_AFTER_S
    else:
        places = repository_places(git_dir)
        if any(git.works_in(places) for git in live):
            return [], locks
        after_s = LINUX_STALE_AFTER_S
    moment = time.time() if now is None else now
    stale = [lock for lock in locks if _age_s(lock, moment) > after_s]
    young = [lock for lock in locks if lock not in stale] if live is not None else []
    return stale, young


def why_kept(repo: Path) -> str:
    """Why ``repo``'s lock files are not judged stale now: the live gits working in it, or
    their age."""
    git_dir = git_dir_of(repo)
    live = live_gits()
    if git_dir is None or live is None:
        return "they cannot be judged here"
    places = repository_places(git_dir)
    busy = [f"pid {git.pid} ({git.command})" for git in live if git.works_in(places)]
    if busy:
        return "live git processes work in the repository: " + ", ".join(busy)
    return f"they are younger than {LINUX_STALE_AFTER_S:g} s (or dated in the future)"


def stale_locks(repo: Path, *, now: float | None = None) -> list[Path]:
    """The lock files of ``repo`` whose owner is gone (see the module's docstring)."""
    return orphaned_locks(repo, now=now)[0]


def clear_stale_locks_now(repos: Iterable[Path]) -> list[Path]:
    """Remove the stale git lock files of ``repos``, one log line each; the files removed."""
    removed: list[Path] = []
    for repo in dict.fromkeys(repos):
        for lock in stale_locks(repo):
            try:
                lock.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot remove stale git lock %s: %s", lock, exc.strerror)
                continue
            log.warning("removed stale git lock %s (the git process that took it is gone)", lock)
            removed.append(lock)
    return removed


async def clear_stale_locks(repos: Iterable[Path], *, wait_young: bool = False) -> list[Path]:
    """:func:`clear_stale_locks_now` in a thread; with ``wait_young``, locks that no live git
    owns but are too young to judge are waited for (a few seconds) and removed too; those still
    left then get a line saying why."""
    repos = list(repos)
    removed = await asyncio.to_thread(clear_stale_locks_now, repos)
    if wait_young:
        removed += await _clear_young(repos)
    return removed


async def _clear_young(repos: list[Path]) -> list[Path]:
    removed: list[Path] = []
    deadline = time.monotonic() + 4 * LINUX_STALE_AFTER_S  # (a clock-skewed mtime: give up)
    while repos:
        repos = [r for r in repos if (await asyncio.to_thread(orphaned_locks, r))[1]]
        if repos and time.monotonic() >= deadline:
            # (a live git may have ended since it was seen: what it left is stale now)
            removed += await asyncio.to_thread(clear_stale_locks_now, repos)
            await asyncio.to_thread(_say_why_kept, repos)
            break
        if repos:
            await asyncio.sleep(LINUX_STALE_AFTER_S / 3)
            removed += await asyncio.to_thread(clear_stale_locks_now, repos)
    return removed


def _say_why_kept(repos: list[Path]) -> None:
    for repo in repos:
        young = orphaned_locks(repo)[1]
        if young:
            names = ", ".join(lock.name for lock in young)
            log.warning("left git locks %s in %s: %s", names, repo, why_kept(repo))


async def wait_for_stale_locks(repo: Path, *, timeout_s: float = 30.0) -> bool:
    """Remove ``repo``'s stale lock files, waiting (up to ``timeout_s``) for young ones to grow
    old enough to judge and for live git processes to end; True when none is left."""
    deadline = time.monotonic() + timeout_s
    while True:
        await clear_stale_locks([repo])
        git_dir = git_dir_of(repo)
        if git_dir is None or not await asyncio.to_thread(lock_files, git_dir):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)


def _age_s(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path

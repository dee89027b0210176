"""A workflow's worktree folders in its mirror: made (from a spare when there is one), kept aside
as spares once merged, and removed. Only folders under the workflow's root are ever touched.

A spare is a merged subtask's worktree moved to ``<root>/spare/`` (:mod:`worktree_move`). The next
subtask of the workflow starts from it (moved back, ``checkout -f -B``, ``clean -ffdx``, the last
skipped for a spare whose subtask's final commit left no file outside git, ignored ones
included): as fresh as a new worktree, nothing untracked or ignored left, but only the files that
differ are written, where ``worktree add`` and ``worktree remove`` write and delete the whole
tree. Whatever does not go to plan (a failed move, a kill half-way) falls back to removing the
folder and adding anew.

A workflow's spares outlive it in the host's pool for its repository (``pool``, a folder beside
the workflows', see :mod:`spare_pools`): at its clean-up up to :data:`POOL_SIZE` are moved there
instead of being deleted, and a workflow with no spare of its own starts its first subtask from
one. A batch of one-subtask workflows then checks out the few files that changed between two
workflows, where each of its subtasks wrote and deleted the whole tree (``worktree add``'s cost
grows with the repository: 125 ms for 800 files here, against 23 ms for the ``checkout``). A
pooled spare holds no work (its subtask was merged, its branch deleted); it is taken and given
back under the repository's admin lock, so workers of one host never share one.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from pathlib import Path

from taskorch.runtime import git as g
from taskorch.runtime import spare_pools
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.worktree_move import move_checkout

PRISTINE = ".pristine"
"""The end of a spare's name that says it needs no ``clean``."""

POOL_SIZE = 4
"""Spares a host keeps for a repository between workflows: enough for the workflows a few workers
start while others end, few enough that an idle host holds at most this many checkouts."""


class WorktreeFolders:
    """The worktrees of ``repo`` under ``root`` (one workflow's). Every method but
    :meth:`may_hold_work` expects the caller to hold the repository's admin lock."""

    def __init__(self, repo: Path, root: Path, pool: Path | None = None) -> None:
        self.repo = repo
        self.root = root
        self.spares = root / "spare"
        self.pool = pool
        """The host's spares for ``repo`` between workflows (None: kept by none)."""

    async def add(self, path: Path, branch: str, start: str) -> None:
        """A worktree at ``path`` on ``branch`` (made or reset to ``start``): a spare when there
        is one (the workflow's own first, then the pool's), else a new one."""
        # (small folders, under the admin lock: no thread hop)
        spares = [self.spares / name for name in _listing(self.spares)]
        if self.pool is not None:
            spares += [self.pool / name for name in _listing(self.pool)]
        if spares:
            path.parent.mkdir(parents=True, exist_ok=True)
        for spare in spares:
            if not await _move(self.repo, spare, path):
                await self.remove(spare, None)
                continue
            # As fresh as a new one: the branch's files, nothing untracked or ignored left (a
            # pristine spare had none; checkout removes what it tracked that start does not).
            reset = await g.git(path, "checkout", "-q", "-f", "-B", branch, start, check=False)
            if reset.ok and (
                spare.name.endswith(PRISTINE)
                or (await g.git(path, "clean", "-ffdxq", check=False)).ok
            ):
                return
            await self.remove(path, branch)
            break
        await g.git(self.repo, "worktree", "add", "-q", "-B", branch, str(path), start)

    def give_spares_to_pool(self) -> None:
        """Move the workflow's spares into the pool, up to :data:`POOL_SIZE` there (the rest go
        with the workflow's folder). No git process: renames and one small file each
        (:mod:`worktree_move`)."""
        if self.pool is None:
            return
        spares = _listing(self.spares)
        room = POOL_SIZE - len(_listing(self.pool)) if spares else 0
        if room <= 0:
            return
        self.pool.mkdir(parents=True, exist_ok=True)
        spare_pools.note_filled(self.pool, self.repo)
        for name in spares[:room]:
            pooled = f"{os.urandom(4).hex()}{PRISTINE if name.endswith(PRISTINE) else ''}"
            try:
                move_checkout(self.spares / name, self.pool / pooled)
            except OSError:
                break  # (it goes with the workflow's folder)

    async def spare(self, path: Path, *, pristine: bool = False) -> bool:
        """Keep the merged subtask's worktree at ``path`` as a spare (``pristine``: it was just
        seen to hold no file that is not committed, ignored ones included); False when there is
        none or it could not be moved (then the caller removes it)."""
        if not _folder_made(path, self.spares):
            return False
        spare = self.spares / f"{path.name}-{os.urandom(3).hex()}{PRISTINE if pristine else ''}"
        return await _move(self.repo, path, spare)

    async def remove(self, path: Path, branch: str | None) -> None:
        """Remove the worktree at ``path`` and any that has ``branch`` checked out (ours only)."""
        prune = False
        for entry in await g.worktrees(self.repo):
            if not (same_path(entry.path, path) or (branch is not None and entry.branch == branch)):
                continue
            if not self._ours(entry.path):
                raise WorkspaceError(
                    f"branch {branch} is checked out in {entry.path}, outside taskorch's "
                    "worktrees; check out another branch there"
                )
            remove = ("worktree", "remove", "--force", "--force", str(entry.path))
            prune = not (await g.git(self.repo, *remove, check=False)).ok or prune
        if self._ours(path) and _there(path):
            await asyncio.to_thread(shutil.rmtree, path, True)
            prune = True
        if prune:
            await g.git(self.repo, "worktree", "prune")

    def may_hold_work(self, entry: g.WorktreeEntry) -> bool:
        """A usable worktree that is not a spare (a spare's work is merged)."""
        return usable(entry) and not (is_under(entry.path, self.spares) or self.pooled(entry.path))

    def pooled(self, path: Path) -> bool:
        """Whether ``path`` is a spare in the host's pool (no workflow's, holding no work)."""
        return self.pool is not None and is_under(path, self.pool)

    def _ours(self, path: Path) -> bool:
        return is_under(path, self.root) or self.pooled(path)


def _folder_made(path: Path, spares: Path) -> bool:
    """Whether ``path`` is a folder, ``spares`` made if so (a stat and a folder: in the loop's
    thread, as a hop to a thread cost more)."""
    if not path.is_dir():
        return False
    spares.mkdir(parents=True, exist_ok=True)
    return True


def _there(path: Path) -> bool:
    return path.exists()  # (a stat: in the loop's thread)


async def _move(repo: Path, source: Path, destination: Path) -> bool:
    """``worktree move``, without its process where :func:`move_checkout` can (a rename and a
    small file, in the loop's thread: a hop to a thread cost more)."""
    if move_checkout(source, destination):
        return True
    moved = await g.git(repo, "worktree", "move", str(source), str(destination), check=False)
    return moved.ok


def _listing(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:  # no spares yet
        return []


def usable(entry: g.WorktreeEntry) -> bool:
    return not entry.prunable and entry.path.is_dir()


@functools.lru_cache(maxsize=4096)
def _real_absolute(path: Path) -> Path:
    """``path`` with its symbolic links resolved, remembered: every worktree of a mirror is
    compared with a workflow's folder at each clean-up, and a worktree's folder is one taskorch
    made (a real folder, which stays one), so a path resolves the same each time."""
    return path.resolve()


def is_under(path: Path, root: Path) -> bool:
    return _real(path).is_relative_to(_real(root))


def same_path(a: Path, b: Path) -> bool:
    return _real(a) == _real(b)


def _real(path: Path) -> Path:
    return _real_absolute(path) if path.is_absolute() else path.resolve()

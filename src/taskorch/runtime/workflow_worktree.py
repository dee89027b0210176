"""The workflow worktree ``<worktrees>/<wf>/main``: the workflow branch checked out for a test
command to run in (merges need no checkout), made when missing and set to the branch's files as
they are now before each use.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from taskorch.runtime import git as g
from taskorch.runtime.worktree_folders import WorktreeFolders, same_path, usable


class WorkflowWorktree:
    """The worktree at ``path`` on the workflow branch ``branch``, one of the workflow's
    ``folders``. The caller holds the workflow lock."""

    def __init__(self, folders: WorktreeFolders, branch: str, path: Path) -> None:
        self.repo = folders.repo
        self.folders = folders
        self.branch = branch
        self.path = path
        self._checked_out = False
        """Whether the workflow worktree was seen on its branch by this object."""
        self._gitdir: Path | None = None

    async def check_out(self) -> Path:
        """The workflow worktree on the workflow branch, made when missing, with the branch's
        files as they are now (merges move the branch, not the files; a test run may leave
        files behind)."""
        branch, path = self.branch, self.path
        if not self._checked_out or not await asyncio.to_thread(path.is_dir):
            async with g.admin_lock(self.repo):
                holder = next((e for e in await g.worktrees(self.repo) if e.branch == branch), None)
                if not (holder and same_path(holder.path, path) and usable(holder)):
                    await self.folders.remove(path, branch)
                    await g.git(self.repo, "worktree", "add", "-q", str(path), branch)
                    self._gitdir = None
            self._checked_out = True
        await self._reset()
        return path

    def forget(self) -> None:
        """The worktree was removed (a clean-up): the next :meth:`check_out` looks afresh."""
        self._checked_out = False

    async def _reset(self) -> None:
        """The workflow worktree is taskorch's own: a merge left half-done, or files a test run
        left behind, are cleared before the next merge."""
        cwd = self.path
        if self._gitdir is None:
            self._gitdir = Path(await g.out(cwd, "rev-parse", "--absolute-git-dir"))
        merging = await asyncio.to_thread((self._gitdir / "MERGE_HEAD").exists)
        if merging or await g.is_dirty(cwd):
            if merging:
                await g.git(cwd, "merge", "--abort", check=False)
            await g.git(cwd, "reset", "-q", "--hard", "HEAD")
            await g.git(cwd, "clean", "-fdq")

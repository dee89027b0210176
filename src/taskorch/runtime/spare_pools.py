"""The host's pools of spare worktrees, one per repository: where a workflow's spares wait for the
next workflow's first subtask (see :mod:`taskorch.runtime.worktree_folders`), under the worktrees
folder, so a spare moves in and out by a rename.

A pool serves the workflows of a run; when the engine shuts down, the pools this process filled
are emptied (the folders removed, their worktree records forgotten): an idle host keeps no
checkout of taskorch's. A kill leaves a pool as it was; the next run on the repository takes its
spares, and empties it at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
from pathlib import Path

_filled: dict[Path, Path] = {}
"""Pool -> its repository, for the pools this process moved spares into."""


def pool_for(worktrees: Path, repo: Path) -> Path:
    """The pool of ``repo``'s spares under the worktrees folder ``worktrees`` (absolute, its
    links resolved; a spare is a worktree of one repository), named so that no workflow's folder
    can be (``.spare``)."""
    digest = hashlib.sha1(os.fsencode(repo.absolute())).hexdigest()[:12]
    return worktrees / ".spare" / digest


def note_filled(pool: Path, repo: Path) -> None:
    _filled[pool] = repo


async def empty_all() -> None:
    """Remove the spares of every pool this process filled (each under its repository's admin
    lock, so no workflow is taking one meanwhile); a repository that is gone is skipped."""
    if not _filled:
        return
    # (here, not above: a command that ran no workflow loads no git code)
    from taskorch.domain.errors import TaskorchError
    from taskorch.runtime import git as g
    from taskorch.runtime import worktree_admin

    while _filled:
        pool, repo = _filled.popitem()
        with contextlib.suppress(TaskorchError, OSError):
            async with g.admin_lock(repo):
                await asyncio.to_thread(shutil.rmtree, pool, True)
                if not await asyncio.to_thread(worktree_admin.forget_gone, repo, pool):
                    await g.git(repo, "worktree", "prune")

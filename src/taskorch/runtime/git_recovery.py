"""What a killed taskorch process can leave in git, set right at start-up and on resume: stale
lock files (:mod:`taskorch.runtime.gitlocks`) in the repositories this host works in, and a base
branch moved half-way in the user's checkout (:mod:`taskorch.runtime.basemove`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from taskorch.runtime.basemove import finish_moves, journaled_repos
from taskorch.runtime.gitlocks import clear_stale_locks


def owned_repositories(home: Path) -> list[Path]:
    """The repositories taskorch keeps under ``home``: its mirrors and scratch repositories
    (their worktrees' admin directories live inside them)."""
    found: list[Path] = []
    for folder in (home / "mirrors", home / "repos"):
        if folder.is_dir():
            found += sorted(entry for entry in folder.iterdir() if entry.is_dir())
    return found


async def recover_git_state(home: Path, local_repos: Iterable[Path] = ()) -> list[Path]:
    """Remove stale git lock files from taskorch's repositories and the users' ``local_repos``,
    then finish (or roll back) base-branch moves a kill cut short. The lock files removed."""
    repos = await asyncio.to_thread(owned_repositories, home)
    repos += [*local_repos, *await asyncio.to_thread(journaled_repos, home)]
    removed = await clear_stale_locks(repos, wait_young=True)
    await finish_moves(home)
    return removed

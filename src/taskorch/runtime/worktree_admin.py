"""A repository's linked worktrees as its own files record them, read and forgotten without a git
process: the clean-up at each workflow's end needs both, and ``worktree list`` and ``worktree
prune`` were two of a one-subtask workflow's ~33 git processes.

Git keeps one folder per linked worktree, ``<common dir>/worktrees/<id>/``, holding ``gitdir``
(the path of the checkout's ``.git`` file, absolute; relative to the folder with git 2.48's
``worktree.useRelativePaths``) and ``HEAD`` (``ref: refs/heads/<branch>``, or a commit when
detached). ``worktree list`` reads exactly these; ``worktree prune`` deletes the folders whose
checkout is gone. Anything unusual (a folder without a readable ``gitdir`` or ``HEAD``, a
symbolic ref that is not a branch, a branch whose commit cannot be read from the ref files)
returns None, and the caller asks git.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from taskorch.runtime import ref_files
from taskorch.runtime.git import WorktreeEntry
from taskorch.runtime.worktree_folders import is_under


def linked_worktrees(
    repo: Path, wanted: Callable[[Path, str | None], bool] | None = None
) -> list[WorktreeEntry] | None:
    """The linked worktrees of ``repo`` (its main checkout, or the bare repository itself, is
    not among them), as ``worktree list`` gives them; None when git must be asked. With
    ``wanted`` (a checkout's folder and branch name: kept?), only those it keeps, whose tips
    alone are read."""
    records = _records(repo)
    if records is None:
        return None
    entries = []
    for record in records:
        recorded = _recorded(record)
        if recorded is None:
            return None
        checkout, head, branch = recorded
        if wanted is not None and not wanted(checkout, branch):
            continue
        entry = _entry(repo, checkout, head, branch)
        if entry is None:
            return None
        entries.append(entry)
    return entries


def forget_gone(repo: Path, root: Path) -> bool:
    """Delete the records of ``repo``'s worktrees under ``root`` whose checkout is gone (what
    ``worktree prune`` does for them; a locked one stays); False when a record could not be
    read (then only ``worktree prune`` can tell whether it is one of them)."""
    records = _records(repo)
    if records is None:
        return False
    whole = True
    for record in records:
        checkout = checkout_of_record(record)
        if checkout is None:
            whole = False
        elif is_under(checkout, root) and not _in_use(record, checkout):
            shutil.rmtree(record, ignore_errors=True)
    return whole


def _records(repo: Path) -> list[Path] | None:
    common = ref_files.common_dir(repo)
    if common is None:
        return None
    try:
        return sorted(entry for entry in (common / "worktrees").iterdir() if entry.is_dir())
    except FileNotFoundError:
        return []  # (no linked worktree yet)
    except OSError:
        return None


def checkout_of_record(record: Path) -> Path | None:
    """The folder of the worktree whose record is ``record`` (its ``gitdir`` without the
    ``/.git``); None when the record does not name one."""
    try:
        gitdir = (record / "gitdir").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not gitdir.endswith(".git"):
        return None  # (empty: an add killed half-way)
    return Path(os.path.normpath(Path(record, gitdir))).parent


def _in_use(record: Path, checkout: Path) -> bool:
    return (checkout / ".git").exists() or (record / "locked").exists()


def _recorded(record: Path) -> tuple[Path, str, str | None] | None:
    """A worktree's folder, ``HEAD`` and branch (None: detached), as its record says."""
    checkout = checkout_of_record(record)
    try:
        head = (record / "HEAD").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if checkout is None:
        return None
    if ref_files.is_object_id(head):
        return checkout, head, None
    ref = head.removeprefix("ref: ")
    if ref == head or not ref.startswith("refs/heads/"):
        return None
    return checkout, ref, ref.removeprefix("refs/heads/")


def _entry(repo: Path, checkout: Path, head: str, branch: str | None) -> WorktreeEntry | None:
    prunable = not (checkout / ".git").exists()
    if branch is None:
        return WorktreeEntry(checkout, head, None, prunable=prunable)
    tip = ref_files.read_refs(repo, (head,))
    if tip is None:
        return None
    return WorktreeEntry(checkout, tip.get(head), branch, prunable=prunable)

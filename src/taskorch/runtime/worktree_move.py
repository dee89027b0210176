"""A linked worktree moved to another folder without a git process: what ``git worktree move``
does, for the spares a workflow's subtasks start from (two moves per subtask, each a process).

``worktree move`` renames the checkout's folder and then rewrites the one place that names it,
``<common dir>/worktrees/<id>/gitdir``; the checkout's own ``.git`` file names the record, which
does not move. This does the same, in the same order (so a kill between the two leaves what git's
own move would: a record naming the old place, which ``worktree repair`` mends). Only the plain
case is done here; anything else (a relative ``.git`` file or record, as git 2.48's
``worktree.useRelativePaths`` writes them; a locked worktree; one with submodules; a destination
that exists; a record that does not name the source) answers False, and the caller asks git.
"""

from __future__ import annotations

import os
from pathlib import Path

_PREFIX = "gitdir: "


def move_checkout(source: Path, destination: Path) -> bool:
    """Move the linked worktree at ``source`` to ``destination`` (absolute paths, ``destination``
    absent, its parent present); False, with nothing changed, when git must do it."""
    record = _record_of(source)
    if record is None or destination.exists() or not destination.parent.is_dir():
        return False
    if (record / "locked").exists() or (record / "modules").exists():
        return False
    os.rename(source, destination)
    _write_replacing(record / "gitdir", f"{_real(destination)}/.git\n")
    return True


def _record_of(checkout: Path) -> Path | None:
    """The record (``worktrees/<id>``) of the linked worktree at ``checkout`` when its ``.git``
    file and the record's ``gitdir`` name each other by absolute paths; else None."""
    try:
        text = (checkout / ".git").read_text()
    except (OSError, UnicodeDecodeError):
        return None  # (no checkout there, or a main checkout's .git folder)
    if not text.startswith(_PREFIX) or not os.path.isabs(text[len(_PREFIX) :].strip()):
        return None
    record = Path(text[len(_PREFIX) :].strip())
    try:
        named = (record / "gitdir").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return record if named == f"{_real(checkout)}/.git" else None


def _real(folder: Path) -> str:
    """``folder`` as git writes it in a record: its parent's real path (git's ``realpath``), so
    the two name one place however the caller spelled it."""
    return os.path.join(os.path.realpath(folder.parent), folder.name)


def _write_replacing(path: Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all (a reader never sees it half-written)."""
    fresh = path.with_name(f"{path.name}.{os.getpid()}.new")
    fresh.write_text(text)
    os.replace(fresh, path)

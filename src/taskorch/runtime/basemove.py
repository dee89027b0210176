"""Moving a base branch that the user has checked out, so that a kill at any point leaves the
user's checkout either as it was or in a state taskorch recognises and finishes.

The merge commit is computed elsewhere without a checkout (``merge-tree``/``commit-tree``); here
the branch moves by one atomic ref update (``update-ref <ref> <new> <old>``) and the clean checkout
holding it follows with a two-tree ``read-tree -m -u <old> <new>``, which touches only the paths
that differ between the two commits. Before anything is touched, an intent journal
``{repo, checkout, branch, old, new}`` is written (under the per-repository lock the caller holds);
it is removed once the checkout is up to date.

A journal found later (the process was killed) is finished or rolled back:

- branch still at ``old``: nothing was touched (the ref moves before the checkout): dropped;
- branch at ``new`` and every difference of the checkout is a path changed between ``old`` and
  ``new`` whose content (index and file) is ``old``'s or ``new``'s: the checkout is brought to
  ``new`` (stale git lock files of the dead process removed first);
- anything else is the user's own work: the checkout is not touched and the merge is refused
  with the usual one line (commit or stash, then merge again).

Test pause points (:mod:`taskorch.runtime.faults`): ``base-merge:journal`` (journal written,
nothing moved), ``base-merge:ref`` (branch moved, checkout not yet), ``base-merge:checkout``
(checkout updated, journal not yet removed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from taskorch.runtime import git as g
from taskorch.runtime.faults import pause_point
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.gitlocks import wait_for_stale_locks

log = logging.getLogger(__name__)

_ZERO = "0" * 40


@dataclass(frozen=True, slots=True)
class BaseMove:
    """The intent journal of one move of a checked-out base branch."""

    repo: str
    checkout: str
    branch: str
    old: str
    new: str


def repo_digest(repo: Path) -> str:
    return hashlib.sha1(str(repo).encode()).hexdigest()[:16]


def repo_lock_path(home: Path, repo: Path) -> Path:
    """The per-repository lock every merge into ``repo``'s base branch holds."""
    return home / "locks" / f"repo-{repo_digest(repo)}.lock"


def journal_path(home: Path, repo: Path) -> Path:
    return home / "base-moves" / f"{repo_digest(repo)}.json"


def dirty_refusal(branch: str, checkout: Path) -> WorkspaceError:
    return WorkspaceError(
        f"base branch {branch!r} has uncommitted changes in {checkout}; "
        "commit or stash them, then merge again"
    )


async def move_checked_out(
    home: Path, repo: Path, checkout: Path, branch: str, old: str, new: str, message: str
) -> None:
    """Move ``branch`` from ``old`` to ``new`` and bring the clean ``checkout`` holding it along.

    The caller holds the per-repository lock and has checked the checkout clean. If the checkout
    cannot follow (a change of the user's raced in, an untracked file in the way), the branch is
    put back and a one-line :class:`WorkspaceError` is raised.
    """
    move = BaseMove(str(repo), str(checkout), branch, old, new)
    journal = journal_path(home, repo)
    _write_journal(journal, move)  # (a small file and its fsync, ~0.2 ms: no thread hop)
    await pause_point("base-merge:journal")
    ref = f"refs/heads/{branch}"
    try:
        await update_ref_past_stale_locks(repo, "-m", message, ref, new, old)
    except g.GitError:  # the branch moved meanwhile (a commit of the user's): nothing touched
        await asyncio.to_thread(journal.unlink, missing_ok=True)
        raise
    await pause_point("base-merge:ref")
    result = await g.git(checkout, "read-tree", "-m", "-u", old, new, check=False)
    if not result.ok:
        # Files touched but unchanged are "not uptodate" to read-tree until the index is
        # refreshed; the caller's status refreshed it, unless it could not write it (a busy
        # index, GIT_OPTIONAL_LOCKS=0): then refreshed here, and once more.
        await g.git(checkout, "update-index", "-q", "--refresh", check=False)
        result = await g.git(checkout, "read-tree", "-m", "-u", old, new, check=False)
    if not result.ok:
        await g.git(repo, "update-ref", "-m", "taskorch: merge undone", ref, old, new)
        await asyncio.to_thread(journal.unlink, missing_ok=True)
        said = [line for line in result.stderr.splitlines() if line.strip()]
        reason = said[0].removeprefix("error: ") if said else f"exit {result.returncode}"
        raise WorkspaceError(
            f"base branch {branch!r} could not be updated in {checkout} ({reason}); "
            "commit, stash or move those files, then merge again"
        )
    await pause_point("base-merge:checkout")
    journal.unlink(missing_ok=True)  # (a small file's name: in the loop's thread, as it is read)


async def update_ref_past_stale_locks(repo: Path, *args: str) -> None:
    """``git update-ref ARGS`` in the user's ``repo``; refused for a lock file that a killed git
    left there (its owner gone: :func:`wait_for_stale_locks`), run once more after it is
    removed. Start-up recovery removes such files too; this covers one left after it looked."""
    result = await g.git(repo, "update-ref", *args, check=False)
    if not result.ok and ".lock" in result.stderr and await wait_for_stale_locks(repo):
        result = await g.git(repo, "update-ref", *args, check=False)
    if not result.ok:
        raise g.GitError(("update-ref", *args), repo, result.returncode, result.stderr)


async def finish_move(home: Path, repo: Path) -> None:
    """Finish or roll back the move a killed process left journaled for ``repo`` (the caller
    holds the per-repository lock). Raises the one-line refusal when the checkout holds changes
    of the user's; the journal then stays until they are committed or stashed."""
    journal = journal_path(home, repo)
    # Read in the loop's thread: a file that is not there, in microseconds, as a rule; a thread
    # hop was one more wait of every landing while the base is held.
    move = _read_journal(journal)
    if move is None:
        return
    checkout = Path(move.checkout)
    if await _finished_or_moot(move, checkout):
        await asyncio.to_thread(journal.unlink, missing_ok=True)
        return
    await wait_for_stale_locks(repo)
    blobs = await _changed_blobs(checkout, move.old, move.new)
    if not await _only_our_changes(checkout, blobs):
        if await _still_at_old(checkout, blobs):
            # The user's own changes on a checkout we had not touched yet: put the branch back
            # where it was, so what they see and commit is theirs alone (never a revert of ours).
            ref = f"refs/heads/{move.branch}"
            await g.git(repo, "update-ref", "-m", "taskorch: merge undone", ref, move.old, move.new)
            await asyncio.to_thread(journal.unlink, missing_ok=True)
        raise dirty_refusal(move.branch, checkout)
    await g.git(checkout, "read-tree", "--reset", "-u", move.new)
    if await g.is_dirty(checkout, untracked=False):  # pragma: no cover - defensive
        raise dirty_refusal(move.branch, checkout)
    log.warning(
        "finished moving %s in %s to %s (a process was killed half-way)",
        move.branch,
        checkout,
        move.new[:12],
    )
    await asyncio.to_thread(journal.unlink, missing_ok=True)


async def finish_moves(home: Path) -> None:
    """:func:`finish_move` for every journal under ``home`` (at start-up and on resume); a
    checkout holding the user's changes is left alone with one log line."""
    folder = home / "base-moves"
    names = await asyncio.to_thread(lambda: sorted(folder.glob("*.json")))
    for journal in names:
        move = await asyncio.to_thread(_read_journal, journal)
        if move is None:
            continue
        repo = Path(move.repo)
        try:
            async with g.file_lock(repo_lock_path(home, repo)):
                await finish_move(home, repo)
        except WorkspaceError as exc:
            log.warning("%s", exc.message)


def journaled_repos(home: Path) -> list[Path]:
    """The repositories with a move journaled under ``home``."""
    moves = [_read_journal(path) for path in sorted((home / "base-moves").glob("*.json"))]
    return [Path(move.repo) for move in moves if move is not None]


async def _finished_or_moot(move: BaseMove, checkout: Path) -> bool:
    """Whether the journal can simply go: the branch never moved (the checkout is touched only
    after it does), the checkout is gone or holds another branch now, or it is clean."""
    if not await asyncio.to_thread(Path(move.repo).is_dir):
        return True  # the repository is gone
    tip = await g.rev(Path(move.repo), f"refs/heads/{move.branch}")
    if tip != move.new:
        return True
    if not await asyncio.to_thread(checkout.is_dir):
        return True
    head = await g.git(checkout, "symbolic-ref", "-q", "HEAD", check=False)
    if head.stdout.strip() != f"refs/heads/{move.branch}":
        return True
    return not await g.is_dirty(checkout, untracked=False)


async def _only_our_changes(checkout: Path, blobs: dict[str, tuple[str, str]]) -> bool:
    """Whether every difference of the checkout from ``new`` is a path the move changes, holding
    ``old``'s or ``new``'s content (in the index and in the file)."""
    staged = await g.git(checkout, "diff-index", "--cached", "--raw", "-z", "--no-renames", "HEAD")
    for path, blob in _raw_entries(staged.stdout, side=1).items():
        if path not in blobs or blob not in blobs[path]:
            return False
    status = await g.git(
        checkout, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"
    )
    changed = {entry[3:]: entry[:2] for entry in status.stdout.split("\0") if len(entry) > 3}
    for path, code in changed.items():
        if path not in blobs and code != "??":  # (an untracked file of the user's: in no branch)
            return False
    files = [path for path in changed if path in blobs]
    found = await _file_blobs(checkout, files)
    return all(blob in blobs[path] for path, blob in zip(files, found, strict=True))


async def _still_at_old(checkout: Path, blobs: dict[str, tuple[str, str]]) -> bool:
    """Whether the index and the files of every path the move changes still hold ``old``'s
    content (the checkout was not touched yet)."""
    paths = sorted(blobs)
    listed = await g.git(checkout, "ls-files", "-s", "-z", "--", *paths) if paths else None
    index: dict[str, str] = {}
    for entry in listed.stdout.split("\0") if listed else []:
        if entry:
            fields, _, path = entry.partition("\t")
            index[path] = fields.split()[1]
    found = await _file_blobs(checkout, paths)
    return all(
        index.get(path, _ZERO) == blobs[path][0] and blob == blobs[path][0]
        for path, blob in zip(paths, found, strict=True)
    )


async def _changed_blobs(cwd: Path, old: str, new: str) -> dict[str, tuple[str, str]]:
    """Path -> its blobs in ``old`` and ``new`` (zeros where absent), for the changed paths."""
    raw = (await g.git(cwd, "diff-tree", "-r", "--raw", "-z", "--no-renames", old, new)).stdout
    before, after = _raw_entries(raw, side=0), _raw_entries(raw, side=1)
    return {path: (before[path], after[path]) for path in before}


def _raw_entries(raw: str, *, side: int) -> dict[str, str]:
    """Path -> blob of one side (0: source, 1: destination) of ``--raw -z`` diff output."""
    items = raw.split("\0")
    found: dict[str, str] = {}
    for head, path in zip(items[0::2], items[1::2], strict=False):
        fields = head.lstrip(":").split()
        if len(fields) >= 4:
            found[path] = fields[2 + side]
    return found


async def _file_blobs(checkout: Path, paths: list[str]) -> list[str]:
    """The blob each path's file would be (zeros for a missing file), filters applied."""
    present = [p for p in paths if await asyncio.to_thread((checkout / p).is_file)]
    hashed: dict[str, str] = {}
    if present:
        out = await g.out(checkout, "hash-object", "--", *present)
        hashed = dict(zip(present, out.split(), strict=True))
    return [hashed.get(path, _ZERO) for path in paths]


def _write_journal(path: Path, move: BaseMove) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    with partial.open("w") as handle:
        json.dump(asdict(move), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _read_journal(path: Path) -> BaseMove | None:
    try:
        data = json.loads(path.read_text())
        return BaseMove(**{key: str(data[key]) for key in BaseMove.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable journal %s", path)
        path.unlink(missing_ok=True)
        return None

"""A pull request's commits and diff stat read from loose objects, where git's ``log`` and
``diff --numstat`` would print exactly that: two processes less per pull request.

- The commits from the merge base to the head, oldest first (``git log --reverse
  --format=%H%x00%s start..head``), when every line down from the head is of loose commits and
  comes to the merge base: in the order git's walk takes them (the newest commit date first
  of the commits met, the first met on a tie), with their subjects as ``%s`` prints them. Git
  also reads a shallow boundary, grafts and replace refs, and may print in another encoding
  (``i18n.logOutputEncoding``, ``i18n.commitEncoding``): any of these sends it to git.
- The diff stat (``git diff --numstat --no-renames start head``), when every file is added or
  removed whole: a text file's lines are counted as git's diff counts them (a last line
  without a newline counts), a file with a NUL byte in its first 8,000 is binary as git finds
  it. A file changed in place is counted by git's diff, whose line matching this does not copy.

Attributes can make git count otherwise (``binary``, ``-diff``, a diff driver), so any attributes
file git could read sends the stat to git: a ``.gitattributes`` in a folder the diff walks (on
either side) or in the repository's checkout there, ``info/attributes``, ``core.attributesFile``,
the user's and the system's. So do ``diff.orderFile`` (another order), ``core.bigFileThreshold``
(larger files binary), a path git would print quoted, a symbolic link or a submodule, a blob not
loose or over :data:`MAX_BLOB` bytes.
"""

from __future__ import annotations

import heapq
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from taskorch.runtime import (
    commit_objects,
    git_attributes,
    loose_commits,
    loose_objects,
    ref_files,
)
from taskorch.runtime.loose_objects import Unreadable
from taskorch.runtime.workspace_records import CommitInfo, DiffStat, FileStat

WALK = 64
"""At most this many commits are read for one pull request's log."""

MAX_BLOB = 1 << 20
"""A larger file's lines are counted by git."""

_BINARY_SCAN = 8000
"""The bytes git looks at for a NUL (``buffer_is_binary``)."""

_FILE_MODES = {b"100644", b"100755"}
_QUOTED = {*range(0x20), ord('"'), ord("\\"), 0x7F}
"""Bytes for which git prints a path quoted (``core.quotepath=off``: not those over 0x7F)."""


async def commits(repo: Path, start: str, head: str) -> list[CommitInfo] | None:
    """The commits beyond ``start`` up to ``head``, oldest first, as ``git log --reverse``
    lists them; None where the loose commits do not say (one not loose, more than
    :data:`WALK`, or a line that does not come down to ``start``) or git would print their
    subjects in another encoding."""
    dirs = loose_objects.object_dirs(repo)
    if not dirs or loose_commits.history_as_written(repo) is None:
        return None
    if await _log_reencoded(repo):
        return None
    try:
        beyond = _beyond(dirs, start, head)
    except Unreadable:
        return None
    if beyond is None:
        return None
    if not beyond:
        return []
    return [CommitInfo(sha, beyond[sha].subject) for sha in _log_order(beyond, head)][::-1]


async def _log_reencoded(repo: Path) -> bool:
    """Whether ``git log`` would print in an encoding other than UTF-8 (``i18n.logOutputEncoding``,
    else ``i18n.commitEncoding``), or the configuration is unknown."""
    values = await commit_objects.configuration(repo)
    if values is None:
        return True
    encoding = values.get("i18n.logoutputencoding") or values.get("i18n.commitencoding") or "utf-8"
    return encoding.strip().lower() not in {"utf-8", "utf8"}


@dataclass(frozen=True, slots=True)
class _Commit:
    parents: list[str]
    date: int
    subject: str


def _beyond(dirs: list[Path], start: str, head: str) -> dict[str, _Commit] | None:
    """The commits of ``head``'s history outside ``start``'s, read down to ``start``, where
    every line down from ``head`` comes to it (then exactly ``start..head``)."""
    found: dict[str, _Commit] = {}
    todo = [] if head == start else [head]
    while todo:
        sha = todo.pop()
        if sha in found:
            continue
        if len(found) >= WALK:
            return None
        body = loose_objects.read_any(dirs, sha, b"commit")
        said = loose_objects.subject(body) if body is not None else None
        if body is None or said is None:
            return None
        parents = loose_objects.commit_fields(body)[1]
        if not parents:
            return None  # (a root: this line never comes to ``start``)
        found[sha] = _Commit(parents, _committed_at(body), said)
        todo += [parent for parent in parents if parent != start]
    return found


def _log_order(beyond: dict[str, _Commit], head: str) -> list[str]:
    """``git log``'s order (newest first) of the commits ``beyond``: its walk takes the newest
    commit date first of those it has met, the one met first on a tie; a commit's parents are
    met in their order. (What it meets in ``start``'s history only takes turns in between.)"""
    met = itertools.count()
    queue = [(-beyond[head].date, next(met), head)]
    seen = {head}
    order: list[str] = []
    while queue:
        sha = heapq.heappop(queue)[2]
        order.append(sha)
        for parent in beyond[sha].parents:
            if parent in beyond and parent not in seen:
                seen.add(parent)
                heapq.heappush(queue, (-beyond[parent].date, next(met), parent))
    return order


def _committed_at(body: bytes) -> int:
    """A commit's committer time in seconds as git's walk reads it (``parse_commit_date``):
    the digits after the last ``>`` of the ``committer`` line that follows the ``author`` line
    after the parents; 0 where the headers are not so."""
    lines = body.split(b"\n", 64)
    at = 1 + sum(
        1 for _ in itertools.takewhile(lambda line: line.startswith(b"parent "), lines[1:])
    )
    if len(lines) < at + 2 or not lines[at].startswith(b"author"):
        return 0
    committer = lines[at + 1]
    if not committer.startswith(b"committer"):
        return 0
    digits = re.match(rb"\D*(\d+)", committer.rpartition(b">")[2])
    return int(digits[1]) if b">" in committer and digits else 0


async def numstat(repo: Path, start: str, head: str) -> DiffStat | None:
    """``git diff --numstat --no-renames start head`` where every file is added or removed
    whole and no attributes apply; None otherwise (git counts)."""
    dirs = loose_objects.object_dirs(repo)
    if not dirs or await _attributes_elsewhere(repo):
        return None
    folders: list[dict[bytes, loose_objects.Entry]] = []
    try:
        one, other = (loose_objects.commit_tree(dirs, sha) for sha in (start, head))
        changes = loose_objects.tree_changes(dirs, one, other, folders)
        if any(b".gitattributes" in folder for folder in folders):
            return None
        if _attributes_in_checkout(repo, [change.path for change in changes]):
            return None
        stats = [_stat(dirs, change) for change in changes]
    except (Unreadable, OSError):
        return None
    return None if None in stats else DiffStat([s for s in stats if s is not None])


def _stat(dirs: list[Path], change: loose_objects.Change) -> FileStat | None:
    entry = change.new or change.old
    if (change.old and change.new) or entry is None or entry[0] not in _FILE_MODES:
        return None
    if _QUOTED.intersection(change.path):
        return None
    data = loose_objects.read_any(dirs, entry[1], b"blob")
    if data is None or len(data) > MAX_BLOB:
        return None
    path = change.path.decode(errors="replace")  # (as the caller decodes git's output)
    if b"\0" in data[:_BINARY_SCAN]:
        return FileStat(path, 0, 0, binary=True)
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return FileStat(path, lines, 0) if change.new else FileStat(path, 0, lines)


async def _attributes_elsewhere(repo: Path) -> bool:
    """Whether an attributes file outside the trees could apply (the repository's own, one the
    configuration names, the user's or the system's), a setting of :data:`_DIFF_SETTINGS` is
    made, or the configuration is unknown."""
    common = ref_files.common_dir(repo)
    values = await commit_objects.configuration(repo)
    if common is None or values is None or _DIFF_SETTINGS.intersection(values):
        return True
    return any(place.exists() for place in git_attributes.outside_the_trees(common))


_DIFF_SETTINGS = {"core.attributesfile", "diff.orderfile", "core.bigfilethreshold"}
"""Settings under which git may count, mark binary or order the files otherwise."""


def _attributes_in_checkout(repo: Path, paths: list[bytes]) -> bool:
    """Whether the repository's checkout (none for a bare one) holds a ``.gitattributes`` in
    a folder on the way to one of ``paths``: git reads those before the trees'."""
    if ref_files.common_dir(repo) == repo:
        return False  # (bare)
    return git_attributes.in_checkout(repo, paths)

"""taskorch's merge commits written as loose objects by taskorch itself, where ``git
commit-tree`` would write exactly that: one process less per merged subtask and per landing.

A commit object is ``tree``, ``parent`` lines, ``author`` and ``committer`` lines, an empty line
and the message; its id is the hash of ``commit <size>\\0`` and those bytes, its file their zlib
compression (:func:`loose_objects.write_file`). Who wrote it is git's own answer: ``git var -l``,
run as every taskorch git is (:mod:`taskorch.runtime.git`: taskorch's identity, never signed),
gives the identities ``commit-tree`` would take and the configuration; it is asked once per
repository and again after :data:`IDENTITY_S`. The time is now, in the local zone, unless
``GIT_AUTHOR_DATE`` / ``GIT_COMMITTER_DATE`` fix it (``git var`` then gives it). The tree and the
parents must be found where git would look (loose files, pack indexes, the alternates).

Where ``commit-tree`` would do more or other than this, git writes the commit as before: a
signature (``commit.gpgSign``, should taskorch's own ``false`` ever be overridden), an
``i18n.commitEncoding`` other than UTF-8 (an ``encoding`` header), a shared repository
(``core.sharedRepository``: git sets the group's permissions on what it writes), a configured
``core.fsync`` (git may flush loose objects to disk; by default it does not, nor does this), an
identity
``git var`` cannot give (the error is then ``commit-tree``'s own), a tree or a parent not found.
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskorch.runtime import git as g
from taskorch.runtime import loose_objects, ref_files
from taskorch.runtime.loose_objects import Unreadable

IDENTITY_S = 60.0
"""How long an answer of ``git var -l`` is used before it is asked again."""

_FALSE = {"false", "no", "off", "0", ""}
_PRIVATE = _FALSE | {"umask"}
"""``core.sharedRepository`` values under which git writes files as anyone's umask makes them."""
_TREE_OF = "^{tree}"


@dataclass(frozen=True, slots=True)
class _Who:
    """The author and committer as ``commit-tree`` would write them, without their time unless
    the environment fixed it."""

    author: str
    committer: str
    author_dated: bool
    committer_dated: bool


_identities: dict[Path, tuple[_Who | None, dict[str, str], float]] = {}
"""A repository's common folder -> who commits there (None: git writes), its configuration
(keys in lower case), and when that was read."""


async def write_commit(repo: Path, tree: str, parents: Sequence[str], message: str) -> str | None:
    """The id of the commit of ``tree`` (an id, or ``<commit>^{tree}``) on ``parents`` with
    ``message``, written into ``repo``'s objects; None where git must write it."""
    common = ref_files.common_dir(repo)
    if common is None:
        return None
    who = await _identity(repo, common)
    if who is None:
        return None
    try:
        return _write(loose_objects.object_dirs(repo) or [], who, tree, parents, message)
    except (Unreadable, OSError):
        return None


async def writes_allowed(repo: Path) -> bool:
    """Whether a loose object taskorch writes into ``repo`` is what git would write there (its
    configuration, global too, asks for no group permissions and no flush to disk): for the
    copies of :mod:`taskorch.runtime.loose_copy` as for the commits here."""
    common = ref_files.common_dir(repo)
    return common is not None and await _identity(repo, common) is not None


async def configuration(repo: Path) -> Mapping[str, str] | None:
    """``repo``'s configuration (global and system too; keys in lower case), as the ``git var
    -l`` this module reads says it; None where it could not be read."""
    common = ref_files.common_dir(repo)
    if common is None:
        return None
    await _identity(repo, common)
    known = _identities.get(common)
    return None if known is None or not known[1] else known[1]


async def configured(repo: Path, key: str) -> bool | None:
    """Whether ``repo``'s configuration sets ``key`` (lower case); None where it could not be
    read."""
    values = await configuration(repo)
    return None if values is None else key in values


async def _identity(repo: Path, common: Path) -> _Who | None:
    known = _identities.get(common)
    if known is not None and time.monotonic() - known[2] < IDENTITY_S:
        return known[0]
    said = await g.git(repo, "var", "-l", check=False)
    values = _values(said.stdout) if said.ok else {}
    who = _parse(values) if values else None
    _identities[common] = who, values, time.monotonic()
    return who


def _values(listing: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key if key.startswith("GIT_") else key.lower()] = value
    return values


def _parse(values: dict[str, str]) -> _Who | None:
    if values.get("commit.gpgsign", "false").strip().lower() not in _FALSE:
        return None
    if values.get("i18n.commitencoding", "utf-8").strip().lower() not in {"utf-8", "utf8"}:
        return None
    if values.get("core.sharedrepository", "false").strip().lower() not in _PRIVATE:
        return None  # (git gives its files and folders the group's permissions there)
    if "core.fsync" in values or "core.fsyncobjectfiles" in values:
        return None  # (git may flush a loose object to disk there; these files are not)
    author, committer = values.get("GIT_AUTHOR_IDENT"), values.get("GIT_COMMITTER_IDENT")
    if not author or not committer:
        return None
    author_dated = "GIT_AUTHOR_DATE" in os.environ  # (git is run with this environment)
    committer_dated = "GIT_COMMITTER_DATE" in os.environ
    return _Who(
        author if author_dated else _undated(author),
        committer if committer_dated else _undated(committer),
        author_dated,
        committer_dated,
    )


def _undated(ident: str) -> str:
    """``Name <email>`` of ``Name <email> <seconds> <zone>``."""
    return ident.rsplit(" ", 2)[0]


def _write(dirs: list[Path], who: _Who, tree: str, parents: Sequence[str], message: str) -> str:
    if not dirs:
        raise Unreadable
    if tree.endswith(_TREE_OF):
        tree = loose_objects.commit_tree(dirs, tree.removesuffix(_TREE_OF))
    for sha, kind in [(tree, b"tree"), *((parent, b"commit") for parent in parents)]:
        if not loose_objects.holds(dirs, sha, kind):
            raise Unreadable  # (commit-tree says which is missing)
    now = _now()
    author = who.author if who.author_dated else f"{who.author} {now}"
    committer = who.committer if who.committer_dated else f"{who.committer} {now}"
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
    text = "\n".join([*lines, f"author {author}", f"committer {committer}", "", message])
    content = (text if text.endswith("\n") else text + "\n").encode()
    data = b"commit %d\0" % len(content) + content
    digest = (hashlib.sha1 if len(tree) == 40 else hashlib.sha256)(data).hexdigest()
    loose_objects.write_file(dirs[0] / digest[:2], digest[2:], zlib.compress(data))
    return digest


def _now() -> str:
    """Seconds since the epoch and the local zone's offset, as git writes a commit's time."""
    seconds = time.time()
    offset = time.localtime(seconds).tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    return f"{int(seconds)} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"

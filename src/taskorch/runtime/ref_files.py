"""Branch look-ups read from a repository's files instead of a git process.

Every step of every subtask asks where a few branches are (the workflow's, the base, the
subtask's), in the mirror and in an origin on this disk: three ``for-each-ref`` runs per merged
subtask, each ~2 ms of CPU for git and the process. With git's default ``files`` ref storage a
branch is a loose file ``<common dir>/refs/heads/<name>`` holding its commit, or, once packed, a
line of ``packed-refs``; reading them is what ``for-each-ref`` does, without the process.

It reads the way git does: the loose file first, then ``packed-refs``. Git replaces either file
by renaming a finished lock file over it, so a read sees a whole old or a whole new file, and
``pack-refs`` writes ``packed-refs`` before it deletes the loose files. Anything unusual (a
reftable repository, a symbolic ref, a folder that is not a repository's top, a file that does not
parse) returns None and the caller asks git.

The files are read in the event loop's thread, without ``to_thread``: each read is a few
microseconds of a local file, as git's own would be, where a thread hand-off costs tens.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

OBJECT_ID = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?")
"""A commit (any object) id: SHA-1 or SHA-256."""


def is_object_id(name: str) -> bool:
    """Whether ``name`` is a full object id (not a ref name, not an abbreviation)."""
    return OBJECT_ID.fullmatch(name.encode()) is not None


_PLAIN_PATTERN = re.compile(r"refs/(?!.*\.\.)[^*?\[\\]+")
"""A pattern naming a ref or a folder of refs (no wildcard, no way out of the folder)."""

_common_dirs: dict[str, Path] = {}
_packed: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}


def read_refs(cwd: Path, names: tuple[str, ...]) -> dict[str, str] | None:
    """The commits of the refs ``names`` (full names under ``refs/``) that exist in the
    repository at ``cwd`` (its top folder, a linked worktree's or a bare one), or None when git
    must be asked."""
    common = common_dir(cwd)
    if common is None or not all(name.startswith("refs/") for name in names):
        return None
    found: dict[str, str] = {}
    packed: dict[str, str] | None = None
    for name in names:
        loose = _loose(common, name)
        if loose is None:
            return None
        if loose:
            found[name] = loose
            continue
        if packed is None:
            packed = _packed_refs(common)
            if packed is None or not (packed or (common / "refs").is_dir()):
                _common_dirs.pop(str(cwd), None)  # (gone: git says what happened)
                return None
        if name in packed:
            found[name] = packed[name]
    return found


def read_matching(cwd: Path, patterns: tuple[str, ...]) -> dict[str, str] | None:
    """The refs ``for-each-ref PATTERN...`` lists (a pattern names a ref or a folder of refs,
    ``refs/heads/main`` matching ``refs/heads/main/x`` too), or None when git must be asked.
    Loose files are read before ``packed-refs``: a ``pack-refs`` in between moved them there
    first, so nothing is missed."""
    common = common_dir(cwd)
    if common is None or not all(_PLAIN_PATTERN.fullmatch(p) for p in patterns):
        return None
    loose: dict[str, str] = {}
    for pattern in patterns:
        found = _loose_under(common, pattern.rstrip("/"))
        if found is None:
            return None
        loose.update(found)
    packed = _packed_refs(common)
    if packed is None:
        return None
    folders = tuple(p.rstrip("/") + "/" for p in patterns)
    matched = {n: sha for n, sha in packed.items() if n in patterns or n.startswith(folders)}
    return dict(sorted({**matched, **loose}.items()))


def _loose_under(common: Path, name: str) -> dict[str, str] | None:
    """The loose refs at ``name`` or under it (a folder); None when one cannot be read."""
    found: dict[str, str] = {}
    single = _loose(common, name)
    if single is None:
        return None
    if single:
        return {name: single}
    for folder, _, files in os.walk(common / name):
        for file in files:
            if file.endswith(".lock"):
                continue  # (a ref being written: the ref itself is still the old file, or none)
            ref = os.path.relpath(os.path.join(folder, file), common).replace(os.sep, "/")
            sha = _loose(common, ref)
            if sha is None:
                return None
            if sha:
                found[ref] = sha
    return found


def common_dir(cwd: Path) -> Path | None:
    """The git directory holding the refs of the repository whose top is ``cwd`` (None when it
    is not one, or its refs are not stored as files). Cached for absolute paths: a folder's
    repository does not change while taskorch uses it, and a folder that is not one is asked of
    git each time."""
    if not cwd.is_absolute():
        return _find_common_dir(cwd)  # (relative to a working directory that may change)
    key = str(cwd)
    if key not in _common_dirs:
        found = _find_common_dir(cwd)
        if found is None:
            return None
        _common_dirs[key] = found
    return _common_dirs[key]


def checkout_git_dir(worktree: Path) -> Path | None:
    """The git directory of a checkout as its ``.git`` names it (a file ``gitdir: PATH`` in a
    linked worktree, the directory itself in a main one), read without running git. None: not
    a checkout's top, or unreadable (ask git)."""
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return dot_git.absolute()
    try:
        text = dot_git.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    return (worktree / text.removeprefix("gitdir: ").strip()).absolute()


def _find_common_dir(cwd: Path) -> Path | None:
    git_dir = checkout_git_dir(cwd)
    if git_dir is None:
        if not ((cwd / "HEAD").is_file() and (cwd / "refs").is_dir()):
            return None
        git_dir = cwd  # a bare repository
    common = git_dir
    try:
        pointer = git_dir / "commondir"
        if pointer.is_file():
            common = (git_dir / pointer.read_text().strip()).resolve()
        config = (common / "config").read_text().lower()
    except (OSError, UnicodeDecodeError):
        return None
    if "refstorage" in config or not (common / "refs").is_dir():
        return None  # reftable: only git reads it
    return common


def _loose(common: Path, name: str) -> str | None:
    """The loose ref's commit, "" when there is no loose file, None when git must be asked."""
    try:
        with open(common / name, "rb") as file:
            data = file.read(200).strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        # (no file; refs/heads/a a file, so no refs/heads/a/b; refs/heads/a a folder of refs)
        return ""
    except OSError:
        return None
    return data.decode() if OBJECT_ID.fullmatch(data) else None  # (a symbolic ref: git)


def packed_under(common: Path, folder: str) -> bool | None:
    """Whether ``packed-refs`` lists a ref under ``folder`` (None: it cannot be read)."""
    packed = _packed_refs(common)
    return None if packed is None else any(name.startswith(folder) for name in packed)


def _packed_refs(common: Path) -> dict[str, str] | None:
    path = common / "packed-refs"
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = _packed.get(str(path))
            if cached is not None and cached[0] == signature:
                return cached[1]
            data = file.read()
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    refs: dict[str, str] = {}
    for line in data.splitlines():
        if not line or line[:1] in (b"#", b"^"):
            continue  # the header, a tag's peeled commit
        sha, _, name = line.partition(b" ")
        if not OBJECT_ID.fullmatch(sha) or not name:
            return None
        refs[name.decode(errors="surrogateescape")] = sha.decode()
    _packed[str(path)] = signature, refs
    return refs

"""A small async git runner and the low-level facts the workspace needs from git.

Git runs as an argv list (``posix_spawn`` through :mod:`taskorch.agents.captured`, never a shell)
with a fixed environment: no terminal prompts (``GIT_TERMINAL_PROMPT=0``), no editor, C locale, no
optional index locks, and none of the inherited variables that would point git at another
repository (``GIT_DIR``, ``GIT_WORK_TREE``, ...). taskorch's own commits carry the identity
``taskorch <taskorch@localhost>`` (inherited ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` are dropped) and
are never signed. A git command that is cancelled is allowed to finish (they take milliseconds, and
a git killed mid-write leaves its lock files behind); one that runs past ``timeout_s`` is killed.
Ref transactions (:func:`update_refs`) go to one long-lived ``git update-ref --stdin`` per
repository instead (:mod:`taskorch.runtime.ref_sessions`), the same argv and environment.

Errors: :class:`WorkspaceError` (one line, names what is wrong), :class:`GitError` for a git
command that failed (command, directory, exit code, git's last message line) and
:class:`MergeConflictError` (the conflicting files).

Needs git 2.38 or newer (``merge-tree --write-tree``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from taskorch.agents import captured
from taskorch.domain.errors import GitError as GitError
from taskorch.domain.errors import InputError
from taskorch.domain.errors import MergeConflictError as MergeConflictError
from taskorch.domain.errors import WorkspaceError as WorkspaceError
from taskorch.runtime import ancestry, index_status, ref_files, ref_sessions, tracing
from taskorch.store.filelock import file_lock as file_lock

GIT_TIMEOUT_S = 120.0
MIN_GIT_VERSION = (2, 38)
IDENTITY = ("taskorch", "taskorch@localhost")

_DROPPED_ENV = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    }
)
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
    "GIT_OPTIONAL_LOCKS": "0",
    "LC_ALL": "C",
}
_SSH = "ssh -o BatchMode=yes"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(kind: str, value: str) -> str:
    """``value`` if it is safe as a branch-name part and a directory name, else InputError."""
    if not _NAME.fullmatch(value) or ".." in value or value.endswith((".lock", ".")):
        raise InputError(
            f"{kind} {value!r} cannot name a git branch: use letters, digits, '.', '_' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return value


@dataclass(frozen=True, slots=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str
    data: bytes = b""
    """stdout as it came, for a run that asked for bytes (a pack); ``stdout`` is empty then."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True, slots=True)
class WorktreeEntry:
    path: Path
    head: str | None
    branch: str | None
    """Short branch name (``refs/heads/`` removed), None when detached."""
    bare: bool = False
    prunable: bool = False


def _env() -> Mapping[str, str]:
    env = captured.environment(_DROPPED_ENV, _GIT_ENV)
    # ssh asks for a password on the terminal whatever GIT_TERMINAL_PROMPT says: never wait on
    # one (keys come from the ssh agent or the user's ssh configuration).
    return env if "GIT_SSH_COMMAND" in env else {**env, "GIT_SSH_COMMAND": _SSH}


async def git(
    cwd: Path,
    *args: str,
    check: bool = True,
    timeout_s: float = GIT_TIMEOUT_S,
    stdin: str | bytes | None = None,
    binary: bool = False,
) -> GitResult:
    """Run ``git <args>`` in ``cwd`` (``stdin``: its input); raise :class:`GitError` on a non-zero
    exit when ``check``. With ``binary`` stdout is kept as bytes (:attr:`GitResult.data`)."""
    with tracing.span(f"git {_subcommand(args)}") as notes:  # a workflow's only, when tracing
        result = await _run_git(
            cwd, *args, check=check, timeout_s=timeout_s, stdin=stdin, binary=binary
        )
        notes.set("git.exit_code", result.returncode)
        return result


def _subcommand(args: tuple[str, ...]) -> str:
    """``fetch`` of ``-C dir -c k=v fetch origin``."""
    rest = iter(args)
    for arg in rest:
        if arg in ("-c", "-C"):
            next(rest, None)
        elif not arg.startswith("-"):
            return arg
    return "?"


_OPTIONS = (
    "-c",
    "core.quotepath=off",
    "-c",
    "commit.gpgsign=false",
    "-c",
    f"user.name={IDENTITY[0]}",
    "-c",
    f"user.email={IDENTITY[1]}",
)


async def _run_git(
    cwd: Path,
    *args: str,
    check: bool,
    timeout_s: float,
    stdin: str | bytes | None = None,
    binary: bool = False,
) -> GitResult:
    argv = ["git", *_OPTIONS, *args]
    given = stdin.encode() if isinstance(stdin, str) else stdin
    async with _one_line_errors(cwd, args, timeout_s):
        found = await captured.run(argv, cwd=cwd, env=_env(), stdin=given, timeout_s=timeout_s)
    if found.returncode == 128 and b"cannot change to" in found.stderr:
        await _require_directory(cwd)  # (posix_spawn's git -C, where asyncio's chdir failed)
    text = "" if binary else found.stdout.decode(errors="replace")
    result = GitResult(
        found.returncode,
        text,
        found.stderr.decode(errors="replace"),
        found.stdout if binary else b"",
    )
    if check and not result.ok:
        raise GitError(args, cwd, result.returncode, result.stderr or result.stdout)
    return result


@contextlib.asynccontextmanager
async def _one_line_errors(
    cwd: Path, args: tuple[str, ...], timeout_s: float
) -> AsyncIterator[None]:
    """A git run's start and time-out failures as one line each: a folder that does not exist,
    git not installed, ``git args`` past ``timeout_s``."""
    try:
        yield
    except FileNotFoundError as exc:
        await _require_directory(cwd)
        raise WorkspaceError("git is not installed or not on PATH; taskorch needs git") from exc
    except TimeoutError:
        raise WorkspaceError(
            f"git {' '.join(args)} did not finish within {timeout_s:g} s in {cwd}"
        ) from None


async def _require_directory(cwd: Path) -> None:
    if not await asyncio.to_thread(cwd.is_dir):
        raise WorkspaceError(f"directory does not exist: {cwd}")


async def out(cwd: Path, *args: str) -> str:
    """Git's stdout without the trailing newline; GitError on failure."""
    return (await git(cwd, *args)).stdout.rstrip("\n")


async def succeeds(cwd: Path, *args: str) -> bool:
    return (await git(cwd, *args, check=False)).ok


async def rev(cwd: Path, name: str) -> str | None:
    """The commit ``name`` points to, or None when it names nothing."""
    result = await git(cwd, "rev-parse", "--verify", "-q", f"{name}^{{commit}}", check=False)
    if not result.ok:
        return None
    return result.stdout.strip() or None


async def refs(cwd: Path, *names: str) -> dict[str, str]:
    """The commits of the branches ``names`` (full ref names, ``refs/heads/...``) that exist,
    read from the repository's files where they can be (:mod:`ref_files`), else by one
    ``for-each-ref`` instead of one ``rev-parse`` each."""
    read = ref_files.read_refs(cwd, names)
    if read is not None:
        return read
    listed = await out(cwd, "for-each-ref", "--format=%(objectname) %(refname)", *names)
    found: dict[str, str] = {}
    for line in listed.splitlines():
        sha, _, name = line.partition(" ")
        found[name] = sha
    return {name: found[name] for name in names if name in found}


async def update_refs(
    cwd: Path, moves: Mapping[str, tuple[str | None, str | None]], *, check: bool = True
) -> bool:
    """Move the refs ``moves`` (full name -> (new commit or None to delete, the commit it must
    have now or None for "whatever it is"; all zeros: "must not exist")) in one transaction:
    all of them or none. False (with ``check``: a GitError) when one was not as expected.

    No admin lock is needed, branches included: ``update-ref`` reads no worktree's files (unlike
    ``branch -d`` or ``worktree add``), and holding that lock here queued every ref move of a
    host behind its slowest worktree add."""
    lines = [
        f"{'delete' if new is None else 'update'} {name}{f' {new}' if new else ''}"
        f"{f' {old}' if old else ''}"
        for name, (new, old) in moves.items()
    ]
    if not lines:
        return True
    with tracing.span("git update-ref") as notes:
        result = await _run_update_ref(cwd, "\n".join(lines) + "\n", timeout_s=GIT_TIMEOUT_S)
        notes.set("git.exit_code", result.returncode)
    if check and not result.ok:
        raise GitError(("update-ref", "--stdin"), cwd, result.returncode, result.stderr)
    return result.ok


_NO_NEW_REFLOGS = ("-c", "core.logAllRefUpdates=false")
"""For :func:`update_refs`: taskorch's branches come and go with their workflows, and in a user's
repository each one's reflog was a file and a folder made and removed again (on a file system
that reuses freed inodes slowly, a tenth of a workflow's CPU went to making files). A reflog that
exists, the base branch's, is still written."""


async def _run_update_ref(cwd: Path, moves: str, *, timeout_s: float) -> GitResult:
    """``git update-ref --stdin`` of the lines ``moves`` in ``cwd``: one transaction on the
    repository's long-lived session (:mod:`taskorch.runtime.ref_sessions`), or a process of its
    own where there are no pidfds. (The seam where tests and the benchmark look in.)"""
    if not captured.supported():
        return await _run_git(
            cwd, *_NO_NEW_REFLOGS, "update-ref", "--stdin", stdin=moves, check=False,
            timeout_s=timeout_s,
        )  # fmt: skip
    argv = [
        "git", *ref_sessions.MARK, "-C", str(cwd), *_OPTIONS, *_NO_NEW_REFLOGS,
        "update-ref", "--stdin",
    ]  # fmt: skip
    async with _one_line_errors(cwd, ("update-ref", "--stdin"), timeout_s):
        done = await ref_sessions.transact(cwd, argv, _env(), moves, timeout_s)
    return GitResult(done.returncode, "", done.stderr)


async def copy_objects(
    source: Path, target: Path, tips: Iterable[str], known: Iterable[str]
) -> None:
    """Copy into the repository ``target`` what ``source`` holds of the commits ``tips`` beyond
    ``known`` (commits both have, with their history): ``pack-objects`` here piped into
    ``unpack-objects`` there, the part of a push or fetch that moves objects, without its
    transport. The copies are loose objects, as a small push leaves them; unreferenced, gc
    collects them."""
    revs = "".join(f"{tip}\n" for tip in tips) + "".join(f"^{sha}\n" for sha in known)
    pack = ("pack-objects", "--revs", "--stdout", "-q")
    packed = await git(source, *pack, stdin=revs, binary=True)
    await git(target, "unpack-objects", "-q", stdin=packed.data)


async def is_ancestor(cwd: Path, ancestor: str, descendant: str) -> bool:
    """Whether ``descendant`` contains ``ancestor`` in the repository at ``cwd`` (False when it
    lacks either). A yes about two commit ids is remembered (:mod:`taskorch.runtime.ancestry`),
    and what is remembered is not asked again."""
    if ancestry.known(ancestor, descendant):
        return True
    if not await succeeds(cwd, "merge-base", "--is-ancestor", ancestor, descendant):
        return False
    ancestry.note(ancestor, descendant)
    return True


async def is_dirty(worktree: Path, *, untracked: bool = True) -> bool:
    if index_status.clean(worktree, untracked=untracked):  # (git's files say so: no process)
        return False
    mode = "all" if untracked else "no"
    status = await out(worktree, "status", "--porcelain", f"--untracked-files={mode}")
    return bool(status.strip())


async def status_paths(worktree: Path) -> list[str]:
    """Paths with uncommitted changes (modified, staged, deleted, untracked; renames as both)."""
    raw = (
        await git(
            worktree,
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        )
    ).stdout
    return sorted({entry[3:] for entry in raw.split("\0") if len(entry) > 3})


async def diff_names(cwd: Path, *revs: str) -> list[str]:
    raw = (await git(cwd, "diff", "--name-only", "--no-renames", "-z", *revs)).stdout
    return [name for name in raw.split("\0") if name]


async def worktrees(cwd: Path) -> list[WorktreeEntry]:
    raw = (await git(cwd, "worktree", "list", "--porcelain", "-z")).stdout
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for item in [*raw.split("\0"), ""]:
        if item:
            key, _, value = item.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch")
            entries.append(
                WorktreeEntry(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    bare="bare" in fields,
                    prunable="prunable" in fields,
                )
            )
        fields = {}
    return entries


async def branches(cwd: Path, prefix: str) -> dict[str, str]:
    """Branches under ``prefix`` (a ref-path prefix ending in "/"): short name -> commit."""
    found = await matching_refs(cwd, f"refs/heads/{prefix}")
    return {ref.removeprefix("refs/heads/"): sha for ref, sha in found.items()}


async def matching_refs(cwd: Path, *patterns: str) -> dict[str, str]:
    """Full name -> commit of the refs ``for-each-ref`` lists for ``patterns`` (refs, or folders
    of refs), read from the repository's files where they can be (:mod:`ref_files`)."""
    read = ref_files.read_matching(cwd, patterns)
    if read is not None:
        return read
    listed = await out(cwd, "for-each-ref", "--format=%(objectname) %(refname)", *patterns)
    return {name: sha for sha, _, name in (line.partition(" ") for line in listed.splitlines())}


_checked_version: tuple[int, int] | None = None


async def require_version(cwd: Path) -> None:
    """WorkspaceError unless git is at least :data:`MIN_GIT_VERSION` (checked once)."""
    global _checked_version
    if _checked_version is not None:
        return
    text = await out(cwd, "version")
    match = re.search(r"(\d+)\.(\d+)", text)
    found = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if found < MIN_GIT_VERSION:
        need = ".".join(map(str, MIN_GIT_VERSION))
        raise WorkspaceError(f"taskorch needs git {need} or newer, found {text.strip()!r}")
    _checked_version = found


_common_dirs: dict[Path, Path] = {}


async def common_dir(repo: Path) -> Path:
    """The repository's common git directory (shared by all its worktrees)."""
    if repo not in _common_dirs:
        found = await out(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
        _common_dirs[repo] = Path(found)
    return _common_dirs[repo]


@contextlib.asynccontextmanager
async def admin_lock(repo: Path) -> AsyncIterator[None]:
    """The lock for changing a repository's worktrees and branches.

    Git reads every worktree's administrative files when it adds, removes, lists or prunes a
    worktree, or creates or deletes a branch; one that another process is just creating makes it
    fail ("failed to read .git/worktrees/<name>/commondir"). The lock lives in the repository's
    common git directory, so every taskorch process on this host shares it.
    """
    async with file_lock(await common_dir(repo) / "taskorch-admin.lock"):
        yield

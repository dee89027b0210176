"""A workflow's repository as every host sees it: its origin (a local path or a git URL) and this
host's mirror of it.

Each host keeps one bare mirror per origin under ``<home>/mirrors/`` and cuts its worktrees from
there; what it commits reaches the origin only by ``git push``. Pushes that move a branch name the
value they expect it to have (``--force-with-lease=<ref>:<sha>``), so two hosts that merge at once
cannot overwrite each other: the later push is refused, refetches and tries again.

Credentials come from git's own configuration (ssh agent, credential helpers). A URL that carries a
password is refused: it would be stored in the database and shown in every status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from taskorch.domain.errors import HostError, InputError
from taskorch.runtime import commit_objects, loose_copy, tracing
from taskorch.runtime import git as g
from taskorch.runtime.git import GitResult, WorkspaceError

REMOTE = "origin"
FETCH_RETRY_S = (0.2, 0.5, 1.0)
"""Pauses before a failed fetch is tried again (then the last failure is the answer)."""
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+:(?!//)")
_SCHEMES = ("file", "ssh", "git", "http", "https", "git+ssh", "ssh+git")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a workflow's code lives: ``url`` is what git is given (an absolute path or a URL)."""

    url: str

    @property
    def path(self) -> Path | None:
        """The local path, for an origin given as a path (not as a URL)."""
        return None if is_url(self.url) else Path(self.url)

    @property
    def slug(self) -> str:
        """A directory name for this origin's mirror: readable, and unique by its digest."""
        tail = self.url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
        name = re.sub(r"[^A-Za-z0-9._-]", "-", tail).strip(".-")[:40] or "repo"
        return f"{name}-{hashlib.sha1(self.url.encode()).hexdigest()[:12]}"


def is_url(text: str) -> bool:
    """Whether ``text`` names a repository by URL (``scheme://`` or scp-like ``host:path``)."""
    if "://" in text:
        return True
    return bool(_SCP_LIKE.match(text)) and "/" not in text.split(":", 1)[0]


def parse_origin(text: str) -> Origin:
    """The origin a user named: a URL as given (checked), or a path made absolute."""
    text = text.strip()
    if not text:
        raise InputError("repository is empty: give a path or a git URL")
    if not is_url(text):
        return Origin(str(Path(text).expanduser().absolute()))
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in _SCHEMES:
            raise InputError(
                f"repository URL {text!r} has an unknown scheme {parts.scheme!r}: use file://, "
                "ssh://, git://, https:// or a local path"
            )
        if parts.password is not None:
            raise InputError(
                "repository URL carries a password: remove it and let git supply it "
                "(a credential helper or an ssh key)"
            )
    return Origin(text)


async def remote_base(origin: Origin, cwd: Path, base_branch: str | None = None) -> str:
    """The base branch of a URL origin: ``base_branch`` if the remote has it, else its HEAD."""
    listed = await _git_remote(cwd, "ls-remote", "--symref", origin.url, "HEAD", "refs/heads/*")
    heads = set()
    head_branch: str | None = None
    for line in listed.stdout.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            head_branch = line[5:].split("\t", 1)[0].removeprefix("refs/heads/")
        elif "\trefs/heads/" in line:
            heads.add(line.split("\trefs/heads/", 1)[1])
    if base_branch is not None:
        if base_branch not in heads:
            raise WorkspaceError(f"base branch {base_branch!r} does not exist in {origin.url}")
        return base_branch
    if head_branch is None or head_branch not in heads:
        if not heads:
            raise WorkspaceError(
                f"repository {origin.url} has no branches yet; push a first commit"
            )
        raise WorkspaceError(f"repository {origin.url} has no HEAD branch; name the base branch")
    return head_branch


async def mirror(home: Path, origin: Origin) -> Path:
    """This host's bare mirror of ``origin`` (created on first use; safe across processes).

    Fetched branches live under ``refs/remotes/origin/``; ``refs/heads/`` holds what this host
    works on, so a fetch never touches a branch a worktree has checked out.
    """
    path = home / "mirrors" / f"{origin.slug}.git"
    lock = home / "locks" / f"mirror-{origin.slug}.lock"
    if (path / "config").exists():  # (a stat: no thread hop)
        if path not in _settled:  # (a mirror an earlier taskorch made: brought up to date)
            async with g.file_lock(lock):
                await _settle(path, origin)
        return path
    async with g.file_lock(lock):
        if not await asyncio.to_thread((path / "config").exists):
            partial = path.with_name(path.name + ".new")
            await asyncio.to_thread(partial.mkdir, parents=True, exist_ok=True)
            await g.git(partial, "init", "-q", "--bare")
            await g.git(partial, "config", f"remote.{REMOTE}.url", origin.url)
            fetch = f"+refs/heads/*:refs/remotes/{REMOTE}/*"
            await g.git(partial, "config", f"remote.{REMOTE}.fetch", fetch)
            if origin.path is not None:  # agents commit as the repository says, as before
                for key in ("user.name", "user.email"):
                    found = await g.git(origin.path, "config", "--get", key, check=False)
                    if found.ok and found.stdout.strip():
                        await g.git(partial, "config", key, found.stdout.strip())
            await _settle(partial, origin)
            await asyncio.to_thread(partial.rename, path)
    _settled.add(path)
    return path


_settled: set[Path] = set()
"""Mirrors this process has seen set up as :func:`_settle` says."""


async def _settle(mirror: Path, origin: Origin) -> None:
    """A mirror's settings: no gc (racing a worktree add), no maintenance process after every
    commit made in its worktrees (``maintenance.auto``: a whole git process per agent commit,
    and with gc off it had nothing to do), and an origin on this disk's objects read in place
    (:func:`_borrow`). Idempotent: a mirror an earlier taskorch made gets what it lacks."""
    config = await asyncio.to_thread((mirror / "config").read_text)
    if "[maintenance]" not in config:
        await g.git(mirror, "config", "gc.auto", "0")
        await g.git(mirror, "config", "maintenance.auto", "false")
    if origin.path is not None and not borrows(mirror):
        await _borrow(mirror, origin.path)
    _settled.add(mirror)


_ALTERNATES = Path("objects", "info", "alternates")
_borrowing: set[Path] = set()
"""Mirrors seen to borrow their origin's objects (:func:`borrows`)."""


def borrows(mirror: Path) -> bool:
    """Whether the mirror reads its origin's objects in place (an origin on this disk: see
    :func:`_borrow`), so that what the origin's branches hold needs no copy into it."""
    if mirror not in _borrowing:
        try:
            listed = (mirror / _ALTERNATES).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return False
        if not listed.strip():
            return False
        _borrowing.add(mirror)
    return True


async def _borrow(mirror: Path, origin: Path) -> None:
    """Let ``mirror`` read the objects of ``origin``, a repository on this disk, where they lie:
    git's alternates, as ``clone --shared`` sets them up. Every landing of a batch moved the
    origin's base, and every next workflow's first step copied those commits into the mirror
    (two processes) before it could cut a worktree from them. The mirror's own objects stay its
    own (its gc is off and, with alternates, packs only its own), and what it makes still goes
    to the origin by copy: the origin never depends on the mirror. The origin's history stays
    readable as long as the origin keeps it: its branches hold the base and the workflow
    branches the mirror works on, and git prunes nothing reachable, nor anything younger than
    two weeks unless told to."""
    objects = await g.out(origin, "rev-parse", "--path-format=absolute", "--git-path", "objects")
    target = mirror / _ALTERNATES
    partial = target.with_name("alternates.new")

    def write() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(f"{objects}\n")
        partial.replace(target)  # (whole or not at all, for the gits running there)

    await asyncio.to_thread(write)


def mirror_lock(repo: Path) -> contextlib.AbstractAsyncContextManager[None]:
    """The lock for talking to the origin from this mirror: fetches and pushes of the
    workflows of one host update the same remote-tracking refs (``refs/remotes/origin/main``),
    and two at once fail ("cannot lock ref")."""
    return g.file_lock(repo / "taskorch-remote.lock")


async def fetch(repo: Path, *patterns: str) -> None:
    """Fetch the origin's branches ``patterns`` (names or ``prefix/*``) into
    ``refs/remotes/origin/``; branches gone there are pruned here. The caller holds
    :func:`mirror_lock`."""
    specs = [f"+refs/heads/{p}:refs/remotes/{REMOTE}/{p}" for p in patterns]
    for pause_s in FETCH_RETRY_S:
        try:
            await _git_remote(repo, "fetch", "-q", "--no-tags", "--prune", REMOTE, *specs)
            return
        except HostError:
            # A worktree whose creation a kill cut short has a HEAD of zeros, and fetch's
            # connectivity check fails on it ("bad object worktrees/<name>/HEAD"); the origin
            # may be mid-push from another host. Clear the first; a moment later, try again.
            async with g.admin_lock(repo):  # no worktree add of ours is half-way now
                await asyncio.to_thread(drop_unborn_worktrees, repo)
            await asyncio.sleep(pause_s)
    await _git_remote(repo, "fetch", "-q", "--no-tags", "--prune", REMOTE, *specs)


def drop_unborn_worktrees(repo: Path) -> list[Path]:
    """Remove the worktrees of ``repo`` whose ``git worktree add`` was killed before it ended
    (HEAD still the placeholder of zeros): their checkouts are incomplete and hold no work. A
    mirror's worktrees are all taskorch's own. The caller holds the admin lock, so no add in
    progress looks the same. Returns the checkouts removed."""
    removed = []
    admin = repo / "worktrees"
    for entry in sorted(admin.iterdir()) if admin.is_dir() else []:
        try:
            head = (entry / "HEAD").read_text().strip()
        except OSError:
            head = ""
        if head.startswith("ref: ") or (head and head.strip("0")):
            continue
        try:
            checkout = Path((entry / "gitdir").read_text().strip()).parent
        except OSError:
            checkout = None
        if checkout is not None and checkout.is_dir():
            shutil.rmtree(checkout, ignore_errors=True)
            removed.append(checkout)
        shutil.rmtree(entry, ignore_errors=True)
    return removed


async def remote_tip(repo: Path, branch: str) -> str | None:
    """The origin's ``branch`` as last fetched."""
    return await g.rev(repo, f"refs/remotes/{REMOTE}/{branch}")


async def push(repo: Path, updates: dict[str, str | None], expected: dict[str, str | None]) -> bool:
    """Set the origin's branches to ``updates`` (branch -> commit, None deletes) in one atomic
    push, each only if it still has the ``expected`` value (None: must not exist). False when
    the origin moved meanwhile (refetch and try again); a :class:`HostError` when it cannot be
    reached."""
    if not updates:
        return True
    args = ["push", "-q", "--porcelain", "--atomic", "--no-verify"]
    for branch in updates:
        ref = f"refs/heads/{branch}"
        args.append(f"--force-with-lease={ref}:{expected.get(branch) or ''}")
    args.append(REMOTE)
    args += [f"{sha or ''}:refs/heads/{branch}" for branch, sha in updates.items()]
    async with mirror_lock(repo):
        # A push that succeeds also moves the remote-tracking refs it maps to (the mirror's fetch
        # refspec): what was pushed is what the next step sees, without a fetch.
        result = await g.git(repo, *args, check=False, timeout_s=g.GIT_TIMEOUT_S)
    if result.ok:
        return True
    text = result.stdout + result.stderr
    if any(word in text for word in ("stale info", "fetch first", "non-fast-forward", "atomic")):
        return False
    raise _host_error("push to", repo, result)


async def move_in_place(
    repo: Path,
    origin: Path,
    updates: Mapping[str, str | None],
    expected: Mapping[str, str | None],
    *,
    beyond: str | None = None,
    here: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> bool:
    """:func:`push` for an origin on this host's disk: its branches are moved in place, in one
    transaction leased the same way, and the mirror's remote-tracking refs follow. The origin
    must have every commit of ``updates`` (a branch made at its own base, deletions), or, with
    ``beyond`` (a commit it has), is first given what they hold beyond it
    (:func:`~taskorch.runtime.git.copy_objects`): a push here is six processes and more, this
    three. (The origin's own hooks do not run, as for any change made in place.) ``here``: moves
    of the mirror's own refs (see :func:`~taskorch.runtime.git.update_refs`) made with the
    tracking refs', in one transaction."""
    known = next((sha for sha in [*updates.values(), *expected.values()] if sha), "0" * 40)
    absent = "0" * len(known)  # (SHA-1 or SHA-256)
    moves = {f"refs/heads/{b}": (sha, expected.get(b) or absent) for b, sha in updates.items()}
    if beyond is not None:
        # Copied first: update-ref refuses a commit the origin does not have. Should the lease
        # fail below, the copies are unreferenced objects, for gc.
        # (As loose object files when the mirror's are all it takes: no process.)
        tips = [sha for sha in updates.values() if sha]
        with tracing.span("objects copied") as notes:
            as_files = await commit_objects.writes_allowed(origin) and await asyncio.to_thread(
                loose_copy.copy, repo, origin, tips, [beyond]
            )
            notes.set("taskorch.copied_as", "loose files" if as_files else "pack")
            if not as_files:
                await g.copy_objects(repo, origin, tips, [beyond])
    async with mirror_lock(repo):
        if not await g.update_refs(origin, moves, check=False):
            return False
        tracking = {f"refs/remotes/{REMOTE}/{b}": (sha, None) for b, sha in updates.items()}
        await g.update_refs(repo, {**tracking, **(here or {})})
    return True


async def _git_remote(cwd: Path, *args: str) -> GitResult:
    result = await g.git(cwd, *args, check=False)
    if not result.ok:
        raise _host_error(args[0], cwd, result)
    return result


def _host_error(what: str, cwd: Path, result: GitResult) -> HostError:
    text = result.stderr or result.stdout
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # git's own reason is its first fatal/error line; what follows is advice.
    said = [line for line in lines if line.startswith(("fatal:", "error:"))]
    detail = (said or lines or [f"exit {result.returncode}"])[0]
    return HostError(f"git {what} failed from {cwd}: {detail}")

"""A workflow's branch ``taskorch/<wf>/main`` as this host sees it: made from the base branch,
changed under the workflow's locks, and, with an origin, following the origin's: the base and
workflow branches read there (fetched, or copied in from an origin on this disk) before each step
that reads them, and the origin's branches moved or kept from here.

Without an origin the workflow's repository is its own: nothing is fetched or pushed, and a sync
reads the branches where they are. See :mod:`taskorch.runtime.remote` for the mirror itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from taskorch.domain.errors import HostError
from taskorch.runtime import git as g
from taskorch.runtime import remote
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.remote import Origin
from taskorch.runtime.repository import check_repository

# The workspace's warnings, under the logger name they have always had (a log filter or a
# ``DEBUG`` part may name it).
log = logging.getLogger("taskorch.runtime.workspace")

PUSH_TRIES = 20
"""Merges redone after the origin moved under them before the step gives up (a host error)."""

Exclusive = Callable[[str], AbstractAsyncContextManager[None]]


class WorkflowBranch:
    """The branch of workflow ``workflow_id`` (a checked name) in ``repo`` (with an ``origin``:
    this host's mirror of it), made from ``base_branch`` (None: the branch checked out in
    ``repo``, resolved by :meth:`start`); its locks under ``home``, and ``exclusive`` (a lock
    held across hosts) for merges."""

    def __init__(
        self,
        repo: Path,
        workflow_id: str,
        base_branch: str | None,
        *,
        home: Path,
        origin: Origin | None,
        exclusive: Exclusive | None,
    ) -> None:
        self.repo = repo
        self.origin = origin
        self._exclusive = exclusive
        self.workflow_id = workflow_id
        self.home = home
        self.namespace = f"taskorch/{workflow_id}/"
        self.workflow_branch = f"{self.namespace}main"
        self._base = base_branch
        self._started = False
        self._made_at: str | None = None
        """The base's commit this object made the workflow branch at, until a subtask starts
        (see :meth:`fresh_start`)."""
        self._seen: tuple[dict[str, str], dict[str, str]] | None = None
        """A local origin's base and workflow branches at this object's last :meth:`sync`, and
        the mirror's refs that followed them."""

    @property
    def local_origin(self) -> Path | None:
        """The origin's folder when it is a repository on this host's disk (None: no origin, or
        one reached by URL): where its branches can be read and moved in place."""
        return self.origin.path if self.origin is not None else None

    @property
    def base_branch(self) -> str:
        if self._base is None:
            raise WorkspaceError("the base branch is not resolved yet; call start() first")
        return self._base

    async def start(self) -> None:
        """Create the workflow branch (from the base branch); idempotent."""
        if self._started:
            return
        if self._base is None:
            _, self._base = await check_repository(self.repo, require_clean=False)
        branch = self.workflow_branch
        async with self.lock():
            if self.origin is not None:
                await self._publish_workflow_branch()
            else:
                async with g.admin_lock(self.repo):
                    if await g.rev(self.repo, f"refs/heads/{branch}") is None:
                        await g.git(self.repo, "branch", branch, f"refs/heads/{self._base}")
        self._started = True

    def forget(self) -> None:
        """The branch may be gone (a clean-up deleted it): the next :meth:`start` makes sure of
        it again."""
        self._started = False

    async def synced(self, *, follow_base: bool = True) -> dict[str, str]:
        """:meth:`sync` for a caller that holds no lock: the branch started first, the workflow
        lock taken for it."""
        await self.start()
        async with self.lock():
            return await self.sync(follow_base=follow_base)

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """The workflow lock: coroutines and processes on this host that change the workflow's
        git state take turns."""
        async with g.file_lock(self.home / "locks" / f"{self.workflow_id}.lock"):
            yield

    @contextlib.asynccontextmanager
    async def merging(self, key: str | None = None) -> AsyncIterator[None]:
        """One merger at a time, across hosts, for this workflow (or for ``key``)."""
        if self._exclusive is None:
            yield
            return
        async with self._exclusive(key or f"merge:{self.workflow_id}"):
            yield

    async def sync(
        self, *extra: str, full: bool = False, ask_origin: bool = True, follow_base: bool = True
    ) -> dict[str, str]:
        """With an origin: fetch its base branch and this workflow's branches, and let the local
        base and workflow branches follow them (the caller holds the workflow lock). Returns the
        local refs afterwards (full names -> commits, those that exist): the base and workflow
        branches, the origin's workflow branch as fetched, and ``extra``.

        An origin on this host's disk is first read directly (one ``for-each-ref`` there): when
        its base and workflow branches are where this mirror last saw them, the fetch (a few
        processes) is skipped, and where they are as this object's last sync left them, the
        mirror is not read either (its branches follow the origin's: they moved only if those
        did); ``full`` fetches anyway (the workflow's other branches too); without
        ``ask_origin`` the mirror's view is taken as it is (a step whose push is leased on what
        it read). Without ``follow_base`` (a step that reads the workflow branch alone) a local
        origin whose base alone moved is not copied in: a batch's every landing moved it, and
        every other workflow's next step copied that in; the base may then be behind in what is
        returned."""
        base, branch = f"refs/heads/{self.base_branch}", f"refs/heads/{self.workflow_branch}"
        if self.origin is None:
            return await g.refs(self.repo, base, branch, *extra)
        base_remote = f"refs/remotes/{remote.REMOTE}/{self.base_branch}"
        branch_remote = f"refs/remotes/{remote.REMOTE}/{self.workflow_branch}"
        wanted = (base_remote, branch_remote, base, branch, *extra)
        async with remote.mirror_lock(self.repo):
            there = None
            if ask_origin and not full and self.origin.path is not None:
                # (unreadable: the fetch says why, as a host error)
                with contextlib.suppress(WorkspaceError):
                    there = await g.refs(self.origin.path, base, branch)
            if there is not None and not extra and self._seen:
                last = self._seen[0]
                if last == there or (not follow_base and last.get(branch) == there.get(branch)):
                    return dict(self._seen[1])
            # One look-up for all the refs: this runs before every step of every subtask.
            found = await g.refs(self.repo, *wanted)
            seen = (found.get(base_remote), found.get(branch_remote))
            wanted_now = None
            if there is not None:
                wanted_now = (there.get(base) if follow_base else seen[0], there.get(branch))
            moved = wanted_now != seen
            if (ask_origin or full) and moved and not await self._copy_in(there, found):
                await remote.fetch(self.repo, self.base_branch, f"{self.namespace}*")
                found = await g.refs(self.repo, *wanted)
            if found.get(base_remote) is None:
                raise HostError(f"the origin {self.origin.url} has no branch {self.base_branch}")
            follow = self._following(found)
            if follow:
                await g.update_refs(self.repo, {ref: (sha, None) for ref, sha in follow.items()})
                found.update(follow)
        if there is not None and (there.get(base), there.get(branch)) == (
            found.get(base_remote),
            found.get(branch_remote),
        ):  # (not when the origin moved again during a fetch: the next sync looks afresh)
            self._seen = there, {ref: found[ref] for ref in wanted[:4] if ref in found}
        return found

    def _following(self, found: dict[str, str]) -> dict[str, str]:
        """The moves that make the local base and workflow branches follow the origin's as
        ``found`` has them (merges move the workflow branch, never a checkout: the workflow
        worktree catches up when it is used, see
        :meth:`~taskorch.runtime.workspace.Workspace.refresh`)."""
        follow = {}
        for name in (self.base_branch, self.workflow_branch):
            tip = found.get(f"refs/remotes/{remote.REMOTE}/{name}")
            if tip is not None and found.get(f"refs/heads/{name}") != tip:
                follow[f"refs/heads/{name}"] = tip
        return follow

    async def _copy_in(self, there: dict[str, str] | None, found: dict[str, str]) -> bool:
        """What a fetch of the base and workflow branches does, from an origin on this disk that
        only moved them forward: the commits beyond the mirror's copies of them copied in
        (unless the mirror reads the origin's objects in place: :func:`remote.borrows`) and
        the mirror's tracking refs moved, leased on their old values (at most two processes
        and a ref transaction where a fetch is five and three times the CPU). False, nothing
        moved, when it cannot say (a
        branch gone there, history rewritten, a race): then the fetch, which prunes, does it.
        ``found`` (the mirror's refs) is updated. ``there``: the origin's base and workflow
        branches as just read on this disk (None: it is not on this disk)."""
        local = self.local_origin
        if there is None or local is None:
            return False
        moves: dict[str, tuple[str | None, str | None]] = {}
        tips, had = [], []
        for name in (self.base_branch, self.workflow_branch):
            theirs = there.get(f"refs/heads/{name}")
            mine = f"refs/remotes/{remote.REMOTE}/{name}"
            ours = found.get(mine)
            if theirs is None and ours is not None:
                return False  # deleted there: the fetch prunes it
            if theirs is not None and theirs != ours:
                moves[mine] = (theirs, ours or "0" * 40)  # (zeros: must not exist yet)
                tips.append(theirs)
            if ours is not None:
                had.append(ours)
        if not moves or not had:
            return False
        if not remote.borrows(self.repo):
            try:
                await g.copy_objects(local, self.repo, tips, had)
            except g.GitError:
                return False
        after = {**found, **{ref: sha for ref, (sha, _) in moves.items() if sha}}
        follow = self._following(after)  # (in the same transaction)
        if not await g.update_refs(
            self.repo, {**moves, **{ref: (sha, None) for ref, sha in follow.items()}}, check=False
        ):
            return False
        found.update({**after, **follow})
        return True

    def workflow_tip_in(self, found: dict[str, str]) -> str:
        """The workflow branch's commit in refs read by :meth:`sync`."""
        tip = found.get(f"refs/heads/{self.workflow_branch}")
        if tip is None:
            raise WorkspaceError(f"{self.workflow_branch} does not exist in {self.repo}")
        return tip

    async def tips(self, branch: str) -> tuple[str, str | None]:
        """The workflow branch's commit and ``branch``'s (None: no such branch), in one look-up."""
        workflow, other = f"refs/heads/{self.workflow_branch}", f"refs/heads/{branch}"
        found = await g.refs(self.repo, workflow, other)
        if workflow not in found:
            raise WorkspaceError(f"{self.workflow_branch} does not exist in {self.repo}")
        return found[workflow], found.get(other)

    async def fresh_start(self, workflow_tip: str) -> str:
        """Where the workflow's first subtask starts: the base as it is now when the workflow
        branch is still where this object made it (``workflow_tip``, the base of then: nothing
        of its own on it yet), else ``workflow_tip``. A batch's workflows are made when they are
        planned; by the last one's turn the base has moved once per landing, and every step
        that compares a workflow with the base (the pull request's merge base, the conflict
        check, the landing's merge) walked back across all of them, at a cost that grew with
        the batch. The branch moves on the origin leased on ``workflow_tip``: where another
        host moved it first, its tip stands. Asked once per object; the caller holds the
        workflow lock."""
        made_at, self._made_at = self._made_at, None
        if made_at is None or made_at != workflow_tip:
            return workflow_tip
        found = await self.sync()  # (the base followed: the worktree is cut from it)
        base_tip, now = found.get(f"refs/heads/{self.base_branch}"), self.workflow_tip_in(found)
        if now != workflow_tip or base_tip is None or base_tip == now:
            return now
        branch = self.workflow_branch
        here: dict[str, tuple[str | None, str | None]] = {
            f"refs/heads/{branch}": (base_tip, workflow_tip)
        }
        if await self.move_on_origin({branch: base_tip}, {branch: workflow_tip}, here=here):
            return base_tip
        return self.workflow_tip_in(await self.sync())

    async def _publish_workflow_branch(self) -> None:
        """The workflow branch on the origin, created from its base branch when missing (by
        whichever host gets there first); the local one follows it."""
        branch = self.workflow_branch
        for _ in range(PUSH_TRIES):
            found = await self.sync()
            if f"refs/remotes/{remote.REMOTE}/{branch}" in found:  # the local one follows it
                return
            base_tip = found[f"refs/heads/{self.base_branch}"]
            made: dict[str, str | None] = {branch: base_tip}
            here: dict[str, tuple[str | None, str | None]] = {
                f"refs/heads/{branch}": (base_tip, None)
            }
            if await self.move_on_origin(made, {branch: None}, here=here):  # (at its own base)
                self._made_at = base_tip
                return
        raise HostError(f"could not create {self.workflow_branch} on {self.origin}")

    async def move_on_origin(
        self,
        updates: dict[str, str | None],
        expected: dict[str, str | None],
        *,
        beyond: str | None = None,
        here: dict[str, tuple[str | None, str | None]] | None = None,
    ) -> bool:
        """Set the origin's branches to ``updates``, each only from its ``expected`` value (see
        :func:`remote.push`); an origin on this host's disk is changed in place
        (:func:`remote.move_in_place`, given the objects beyond ``beyond`` first). Then the
        mirror's refs move as ``here`` says. False when the origin moved meanwhile (nothing
        moved here)."""
        local = self.local_origin
        if local is not None:
            return await remote.move_in_place(
                self.repo, local, updates, expected, beyond=beyond, here=here
            )
        if not await remote.push(self.repo, updates, expected):
            return False
        if here:
            await g.update_refs(self.repo, here)
        return True

    async def keep_on_origin(self, branch: str) -> None:
        """A subtask whose merge conflicted: its branch goes to the origin, so its work is not
        only on this host's disk."""
        tip = await g.rev(self.repo, f"refs/heads/{branch}")
        if tip is None:
            return
        push = ("push", "-q", "--no-verify", "-f", remote.REMOTE, f"{tip}:refs/heads/{branch}")
        try:
            async with remote.mirror_lock(self.repo):
                await g.git(self.repo, *push)
        except WorkspaceError as exc:  # the work stays here, on its branch
            log.warning("could not keep %s on the origin: %s", branch, exc.message)

    async def keep_on_origin_as(self, name: str, tip: str) -> None:
        """Kept work is not left on this host's disk alone: the branch goes to the origin too."""
        if self.origin is None:
            return
        try:
            if not await remote.push(self.repo, {name: tip}, {name: None}):
                log.warning("could not keep %s on the origin: the name is taken", name)
        except WorkspaceError as exc:
            log.warning("could not keep %s on the origin: %s", name, exc.message)

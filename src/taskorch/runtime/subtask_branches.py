"""A workflow's subtask branches ``taskorch/<wf>/sub/<key>`` and their worktrees
``<worktrees>/<wf>/subtasks/<key>``: a subtask's worktree started from the workflow branch, its
work committed, a best-of-N candidate's work adopted as the subtask's or dropped, a merged
subtask's worktree kept as a spare and its branch deleted.

Work an earlier attempt left that is not in the workflow branch is never dropped: it is kept on
``taskorch/<wf>/kept/<key>/<n>`` first, on the origin too.
"""

from __future__ import annotations

from pathlib import Path

from taskorch.runtime import git as g
from taskorch.runtime import remote
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.repository import commit_all as commit_worktree
from taskorch.runtime.repository import commit_all_and_look
from taskorch.runtime.workflow_branch import WorkflowBranch
from taskorch.runtime.worktree_folders import WorktreeFolders, same_path


class SubtaskBranches:
    """The subtask branches of the workflow whose branch is ``workflow``, their worktrees among
    its ``folders``."""

    def __init__(self, workflow: WorkflowBranch, folders: WorktreeFolders) -> None:
        self._workflow = workflow
        self.repo = workflow.repo
        self.namespace = workflow.namespace
        self.folders = folders
        self.pristine: set[str] = set()
        """Subtasks whose worktree held nothing uncommitted, ignored files included, when last
        committed: kept as a spare, it needs no ``clean`` before its next use."""

    def branch(self, key: str) -> str:
        return f"{self.namespace}sub/{g.check_name('subtask key', key)}"

    def worktree(self, key: str) -> Path:
        return self.folders.root / "subtasks" / g.check_name("subtask key", key)

    async def existing_worktree(self, key: str) -> Path:
        path = self.worktree(key)
        if not path.is_dir():
            raise WorkspaceError(f"subtask {key} has no worktree at {path}; prepare it first")
        return path

    async def prepare(self, key: str, workflow_tip: str, tip: str | None) -> Path:
        """The subtask's worktree on its branch, starting at ``workflow_tip`` (``tip``: the
        branch's commit, None when there is no branch yet).

        An existing worktree on the branch that already starts there is reused as it is.
        Otherwise it is recreated; work an earlier attempt left that is not in the workflow
        branch is first kept on ``taskorch/<wf>/kept/<key>/<n>`` (uncommitted changes committed),
        never dropped. The caller holds the workflow lock.
        """
        branch, path = self.branch(key), self.worktree(key)
        holder = None
        if tip is not None:
            async with g.admin_lock(self.repo):
                entries = await g.worktrees(self.repo)
            holder = next(
                (e for e in entries if e.branch == branch and self.folders.may_hold_work(e)),
                None,
            )
            if holder is not None:
                message = f"taskorch: unfinished work of subtask {key}"
                tip = await commit_worktree(holder.path, message) or tip
                if tip == workflow_tip and same_path(holder.path, path):
                    return path
        kept = None
        async with g.admin_lock(self.repo):
            if tip is not None and not await g.is_ancestor(self.repo, tip, workflow_tip):
                kept = await self._keep(key, tip)
            # (a stat in the loop's thread: a hop here held every host's worktree adds longer)
            if holder is not None or tip is not None or path.exists():
                await self.folders.remove(path, branch)
            await self.folders.add(path, branch, workflow_tip)
        if kept is not None and tip is not None:
            # (outside the admin lock: it fetches)
            await self._workflow.keep_on_origin_as(kept, tip)
        return path

    async def commit(self, key: str, path: Path, message: str) -> str | None:
        """Everything left uncommitted in the subtask's worktree at ``path`` committed (the new
        commit, or None when there was nothing to commit), and whether it is left pristine
        noted."""
        commit, pristine = await commit_all_and_look(path, message)
        if pristine:
            self.pristine.add(key)
        else:
            self.pristine.discard(key)
        return commit

    async def adopt(self, key: str, candidate: str, chosen: str) -> None:
        """Point the subtask's branch at the candidate's commit ``chosen`` (work an earlier
        attempt left on it is kept first, as :meth:`prepare` keeps it) and remove the
        candidate's worktree and branch. The caller holds the workflow lock."""
        branch = self.branch(key)
        workflow_tip, tip = await self._workflow.tips(branch)
        kept = None
        async with g.admin_lock(self.repo):
            earlier = tip is not None and tip != chosen
            if earlier and not await g.is_ancestor(self.repo, str(tip), workflow_tip):
                kept = await self._keep(key, str(tip))
            await self.folders.remove(self.worktree(key), branch)
            await g.git(self.repo, "branch", "-f", branch, chosen)
        if kept is not None and tip is not None:
            await self._workflow.keep_on_origin_as(kept, tip)
        await self.drop_candidate(candidate)

    async def drop_candidate(self, candidate: str) -> None:
        """Remove a candidate's worktree and branch: a loser's work is not wanted (a winner's
        is on the subtask's branch by now). Idempotent."""
        branch = self.branch(candidate)
        async with g.admin_lock(self.repo):
            await self.folders.remove(self.worktree(candidate), branch)
            await g.git(self.repo, "branch", "-D", "-q", branch, check=False)

    async def drop_merged(
        self, key: str, merged_tip: str | None = None, *, delete_branch: bool = False
    ) -> None:
        """Remove a merged subtask's worktree and, with ``delete_branch``, its branch: only while
        it is still at ``merged_tip``, the commit the merge contains (an atomic ``update-ref -d``
        with the old value)."""
        branch, path = self.branch(key), self.worktree(key)
        pristine = key in self.pristine
        self.pristine.discard(key)
        async with g.admin_lock(self.repo):
            if not await self.folders.spare(path, pristine=pristine):
                await self.folders.remove(path, branch)
            if not delete_branch or merged_tip is None:
                return
            delete = ("update-ref", "-d", f"refs/heads/{branch}", merged_tip)
            deleted = await g.git(self.repo, *delete, check=False)
            # (one git run, not a look-up first: a branch that is gone is what we want)
            if not deleted.ok and await g.rev(self.repo, f"refs/heads/{branch}") is not None:
                raise g.GitError(delete, self.repo, deleted.returncode, deleted.stderr)

    async def _keep(self, key: str, tip: str) -> str:
        taken = set(await g.branches(self.repo, f"{self.namespace}kept/{key}/"))
        if self._workflow.origin is not None:
            # Those other hosts kept are taken too (fetched with the workflow's branches).
            kept_there = f"refs/remotes/{remote.REMOTE}/{self.namespace}kept/{key}/"
            listed = await g.out(self.repo, "for-each-ref", "--format=%(refname)", kept_there)
            prefix = f"refs/remotes/{remote.REMOTE}/"
            taken |= {ref.removeprefix(prefix) for ref in listed.splitlines()}
        number = 1
        while f"{self.namespace}kept/{key}/{number}" in taken:
            number += 1
        name = f"{self.namespace}kept/{key}/{number}"
        await g.git(self.repo, "branch", name, tip)
        return name

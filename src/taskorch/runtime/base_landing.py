"""Where the workflow branch meets the base branch: the files a merge of the two would conflict
in, the base branch merged into a fix-up worktree (conflicts left for an agent to resolve), the
workflow branch landed on the base branch (with an origin, on the origin's), and whether the base
branch contains it, a fact of the repository, not a row.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from taskorch.domain.errors import HostError
from taskorch.runtime import git as g
from taskorch.runtime import remote
from taskorch.runtime.repository import (
    merge_into_base,
    merge_without_checkout,
    merged_tree,
    tips,
)
from taskorch.runtime.workflow_branch import PUSH_TRIES, WorkflowBranch
from taskorch.runtime.workspace_records import BaseMerge


class BaseLanding:
    """The base branch of the workflow whose branch is ``workflow``."""

    def __init__(self, workflow: WorkflowBranch) -> None:
        self._workflow = workflow
        self.repo = workflow.repo
        self.origin = workflow.origin
        self.workflow_branch = workflow.workflow_branch

    @property
    def base_branch(self) -> str:
        return self._workflow.base_branch

    async def conflicts(self) -> list[str]:
        """Files where merging the workflow branch into the base branch would conflict (computed
        by ``merge-tree``, nothing checked out, unless the remembered facts say one contains the
        other: :func:`merged_tree`): where an origin on this disk has both branches as they are
        now, else in the mirror once it has fetched them."""
        where = self._workflow.local_origin
        if where is None:
            await self._workflow.synced()
            where = self.repo
        base, branch = f"refs/heads/{self.base_branch}", f"refs/heads/{self.workflow_branch}"
        base_tip, head = await tips(where, base, branch)
        return (await merged_tree(where, base_tip, head))[1]

    async def merge_into(self, path: Path) -> None:
        """The base branch merged into the worktree at ``path`` without committing, conflicts
        left in the files (the caller holds the workflow lock)."""
        if await g.rev(path, "MERGE_HEAD") is not None:
            return  # merged in by an earlier attempt: its resolution goes on
        base = f"refs/heads/{self.base_branch}"
        if await g.is_ancestor(path, base, "HEAD"):
            return
        merge = ("merge", "--no-ff", "--no-commit", "--no-verify", base)
        result = await g.git(path, *merge, check=False)
        if not result.ok and not await g.diff_names(path, "--diff-filter=U"):
            raise g.GitError(merge, path, result.returncode, result.stderr or result.stdout)

    async def land(self) -> BaseMerge:
        """The workflow branch landed on the base branch (with an origin: on the origin's)."""
        message = f"taskorch: merge workflow {self._workflow.workflow_id} ({self.workflow_branch})"
        if self.origin is None:
            return await merge_into_base(
                self.repo, self.workflow_branch, self.base_branch, message, home=self._workflow.home
            )
        await self._workflow.start()
        local = self.origin.path
        for _ in range(PUSH_TRIES):
            async with self._workflow.merging(f"base:{self.origin.url}"), self._workflow.lock():
                if local is not None:
                    # A local repository: merged where its base branch may be checked out (a
                    # push there is refused; its checkout must be clean), from the branches as
                    # it has them. The mirror is not synced first: that copied every earlier
                    # landing's commits in while the base was held, one landing at a time.
                    return await merge_into_base(
                        local,
                        self.workflow_branch,
                        self.base_branch,
                        message,
                        home=self._workflow.home,
                    )
                await self._workflow.sync()
                merged = await self._land_remotely(message)
                if merged is not None:
                    return merged
        raise HostError(
            f"could not push the merge of {self.workflow_branch} into {self.base_branch}: the "
            f"origin's {self.base_branch} moved {PUSH_TRIES} times in a row"
        )

    async def _land_remotely(self, message: str) -> BaseMerge | None:
        """The merge computed in the mirror (no checkout) and pushed with a lease; None when the
        origin's base moved meanwhile."""
        base, branch = self.base_branch, self.workflow_branch
        head, base_tip = await tips(self.repo, f"refs/heads/{branch}", f"refs/heads/{base}")
        if await g.is_ancestor(self.repo, head, base_tip):
            return BaseMerge(base, base_tip, fast_forward=False, already_merged=True)
        if await g.is_ancestor(self.repo, base_tip, head):
            new = head
        else:
            new = await merge_without_checkout(self.repo, branch, base, base_tip, head, message)
        if not await remote.push(self.repo, {base: new}, {base: base_tip}):
            return None
        await g.git(self.repo, "update-ref", f"refs/heads/{base}", new)
        return BaseMerge(base, new, fast_forward=new == head, already_merged=False)

    async def contains_workflow(self, from_url: str | None) -> str | None:
        """The base branch's commit when it contains the workflow branch, else None (read from
        ``from_url`` when given)."""
        base, branch = f"refs/heads/{self.base_branch}", f"refs/heads/{self.workflow_branch}"
        local = self._workflow.local_origin if from_url is None else None
        if local is not None:
            # A repository on this disk holds both commits: asked there, no fetch needed.
            there = await g.refs(local, base, branch)
            head, tip = there.get(branch), there.get(base)
            if head is None or tip is None or not await g.is_ancestor(local, head, tip):
                return None
            return tip
        found = await self._workflow.synced()
        head, base_tip = found.get(branch), found.get(base)
        if from_url is not None:
            ref = f"refs/taskorch/checked/{self._workflow.workflow_id}"
            spec = f"+refs/heads/{self.base_branch}:{ref}"
            async with remote.mirror_lock(self.repo):
                fetched = await g.git(
                    self.repo, "fetch", "-q", "--no-tags", from_url, spec, check=False
                )
            if not fetched.ok:
                raise HostError(
                    f"cannot read {self.base_branch} of {from_url}: {fetched.stderr.strip()}"
                )
            base_tip = await g.rev(self.repo, ref)
            await g.git(self.repo, "update-ref", "-d", ref, check=False)
        if head is None or base_tip is None:
            return None
        return base_tip if await g.is_ancestor(self.repo, head, base_tip) else None


async def files_with_markers(path: Path) -> list[str]:
    """Files of the worktree at ``path`` that still hold conflict markers."""
    changed = await g.status_paths(path)
    return [name for name in changed if await asyncio.to_thread(_has_markers, path / name)]


def _has_markers(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            text = handle.read(4_000_000)
    except OSError:  # a directory or a file gone: nothing to resolve there
        return False
    return any(line.startswith((b"<<<<<<< ", b">>>>>>> ")) for line in text.splitlines())

"""Every route by which work used to go missing under a ``merged`` workflow, run again: each now
either lands the work on the repository's base branch or fails loudly (issue 13)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fakes.origins import bare_origin, files_on, git, tip, url
from taskorch.agents.base import AgentAdapter
from taskorch.agents.registry import AgentSpec
from taskorch.cli.worker import _default_agent
from taskorch.domain.models import NewTask
from taskorch.engine import OrchestrationEngine
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.settings import Settings


@contextlib.asynccontextmanager
async def engine_at(
    home: Path, host: str | None = None, database_url: str | None = None
) -> AsyncIterator[OrchestrationEngine]:
    settings = Settings(taskorch_home=home, taskorch_host_name=host, database_url=database_url)
    async with open_engine(settings) as engine:
        yield engine


async def add(engine: OrchestrationEngine, text: str, **metadata: str) -> int:
    task = await engine.add_task(NewTask.create(text, text, metadata=metadata or None))
    return task.id


async def test_the_default_worker_does_the_git_work_of_a_delivering_workflow(
    tmp_path: Path,
) -> None:
    """Was: ``serve --agent sim`` + ``taskorch worker`` ended ``merged`` with 0 commits."""
    origin = bare_origin(tmp_path)
    async with engine_at(tmp_path / "home") as engine:
        task_id = await add(engine, "Update README.md with install notes")
        worker = engine.create_worker({None: _default_agent(engine, "sim", 0.0, None)})
        running = asyncio.create_task(worker.run())
        try:  # the workflow is driven here; its subtasks run on the separate worker
            status = await engine.process_task(task_id, options={"repo": url(origin)})
        finally:
            worker.stop()
            await running
    assert status.state == "merged"
    assert status.workflow.result is not None
    assert status.workflow.result["base_commit"] == tip(origin)
    assert "install notes" in git(origin, "show", "main:README.md")


async def test_a_worker_that_cannot_reach_the_repository_leaves_it_to_another(
    tmp_path: Path,
) -> None:
    """Was: a worker without the repository path burnt the subtask's attempts on it."""
    repo = tmp_path / "shared"
    shutil.copytree(bare_origin(tmp_path / "o"), repo / ".git")
    git(repo, "config", "core.bare", "false")
    git(repo, "checkout", "-q", "main")
    async with engine_at(tmp_path / "home-a") as engine:
        task_id = await add(engine, "Add CONTRIBUTING.md with review rules")
        options = {"agent": "sim", "repo": str(repo)}
        [workflow] = await engine.start_workflows([task_id], options=options)
        pipeline = engine.pipeline()
        await pipeline.advance(workflow.id)  # planned, its subtask queued
        hidden = tmp_path / "elsewhere"
        repo.rename(hidden)  # this "host" cannot see the repository now
        stranded = engine.create_worker({None: _default_agent(engine, "sim", 0.0, None)})
        await asyncio.wait_for(stranded.run(once=True), 60)
        tried = [s for s in await engine.store.list_subtasks(workflow.id) if s.attempts]
        assert tried
        for subtask in tried:
            [attempt] = await engine.store.list_attempts(subtask.id)
            assert attempt.error_class == "host"
            assert "does not appear to be a git repository" in (attempt.error_message or "")
            assert subtask.status.value == "queued"  # not failed: another host may take it
        assert workflow.id in stranded._avoided()

        hidden.rename(repo)  # a host that has it
        async with engine_at(tmp_path / "home-b") as other:
            able = other.create_worker({None: _default_agent(other, "sim", 0.0, None)})
            await asyncio.wait_for(able.run(once=True), 60)
            agents: dict[str | None, AgentAdapter] = {
                None: _default_agent(engine, "sim", 0.0, None)
            }
            final = await asyncio.wait_for(engine.resume([workflow.id], agents=agents), 120)
    assert final[0].state == "merged"
    assert "CONTRIBUTING.md" in git(repo, "ls-tree", "--name-only", "main")


async def test_one_workflow_that_cannot_merge_does_not_stop_a_batch(tmp_path: Path) -> None:
    """Was: an error at one workflow's merge escaped ``batch``, leaving the others processing."""
    good = bare_origin(tmp_path / "good")
    dirty = tmp_path / "dirty"
    dirty.mkdir()
    git(dirty, "init", "-q", "-b", "main")
    (dirty / "README.md").write_text("# dirty\n")
    git(dirty, "add", "README.md")
    git(dirty, "commit", "-q", "-m", "first")
    async with engine_at(tmp_path / "home") as engine:
        ids = [
            await add(engine, "Add docs/install.md with setup steps", repo=url(good)),
            await add(engine, "Add docs/usage.md with examples", repo=str(dirty)),
            await add(engine, "Add docs/faq.md with answers", repo=url(good)),
        ]
        (dirty / "README.md").write_text("# edited by hand, not committed\n")
        pool = await agents_for_run(engine, "sim")
        statuses = await engine.process_batch(ids, agents=pool, options={"agent": "sim"})
    by_task = {s.task.id: s for s in statuses}
    assert by_task[ids[0]].state == by_task[ids[2]].state == "merged"
    stuck = by_task[ids[1]]
    assert stuck.state == "validation_passed"  # where it stands; cancel or resume it
    assert "uncommitted changes" in stuck.workflow.metadata["stalled"]["reason"]
    assert {"docs/install.md", "docs/faq.md"} <= set(files_on(good))


async def test_two_workflows_that_edit_one_file_both_merge_the_second_after_a_fixup(
    tmp_path: Path,
) -> None:
    origin = bare_origin(tmp_path)
    options = {"agent": "sim", "repo": url(origin), "merge_policy": "approve"}
    async with engine_at(tmp_path / "home") as engine:
        ids = [
            await add(engine, "Update README.md with install notes"),
            await add(engine, "Update README.md with usage examples"),
        ]
        pool = await agents_for_run(engine, "sim")
        first, second = await engine.process_batch(ids, agents=pool, options=options)
        assert (first.state, second.state) == ("validation_passed", "validation_passed")
        assert (first.waiting_for, second.waiting_for) == ("approval", "approval")
        assert (await engine.approve_workflow(first.workflow.id)).state == "merged"

        after = await engine.approve_workflow(second.workflow.id)
        assert after.state == "processing"  # the merge conflicted: a fix-up round runs
        [final] = await engine.resume([second.workflow.id], agents=pool)
    assert final.state == "merged"
    assert final.workflow.metadata["merge_base_fixups"] == ["fix-1"]
    readme = git(origin, "show", "main:README.md")
    assert "install notes" in readme
    assert "usage examples" in readme
    assert "<<<<<<<" not in readme


async def test_a_validated_workflow_can_be_cancelled_and_the_base_is_untouched(
    tmp_path: Path,
) -> None:
    origin = bare_origin(tmp_path)
    before = tip(origin)
    options = {"agent": "sim", "repo": url(origin), "merge_policy": "approve"}
    async with engine_at(tmp_path / "home") as engine:
        task_id = await add(engine, "Update README.md with install notes")
        pool = await agents_for_run(engine, "sim")
        status = await engine.process_task(task_id, agents=pool, options=options)
        assert status.state == "validation_passed"
        cancelled = await engine.cancel_workflow(status.workflow.id)
    assert cancelled.state == "cancelled"
    assert tip(origin) == before
    branch = f"taskorch/{status.workflow.id}/main"
    assert "install notes" in git(origin, "show", f"{branch}:README.md")  # kept, not lost


@pytest.mark.parametrize("state", ["pr_created", "validation_running", "validation_failed"])
async def test_cancel_works_in_every_state_after_processing(tmp_path: Path, state: str) -> None:
    from taskorch.domain.states import WorkflowState as W

    origin = bare_origin(tmp_path)
    async with engine_at(tmp_path / "home") as engine:
        task_id = await add(engine, "Update README.md with install notes")
        [workflow] = await engine.start_workflows([task_id], options={"repo": url(origin)})
        path = [W.NLP_PARSING, W.TASK_DECOMPOSITION, W.DEPENDENCY_RESOLUTION]
        path += [W.AGENT_ASSIGNMENT, W.PROCESSING, W.PR_CREATED, W.VALIDATION_RUNNING]
        path += [W.VALIDATION_FAILED] if state == "validation_failed" else []
        current = W.PENDING
        for target in path[: path.index(W(state)) + 1]:
            await engine.store.transition_workflow(workflow.id, current, target)
            current = target
        assert (await engine.cancel_workflow(workflow.id)).state == "cancelled"


async def test_an_agentapi_server_gets_work_only_from_the_host_whose_files_it_sees(
    tmp_path: Path,
) -> None:
    """Was: an agentapi server on another machine was sent paths it could not open."""
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    async with engine_at(tmp_path / "a", "host-a", database) as host_a:
        local = await host_a.add_agent(AgentSpec(name="local", url="http://127.0.0.1:9"))
        shared = await host_a.add_agent(AgentSpec(name="shared", url="http://agents.internal:3284"))
        pinned = await host_a.add_agent(
            AgentSpec(name="pinned", url="http://agents.internal:3285", host="host-b")
        )
        assert local.agent.metadata["adapter"]["host"] == "host-a"  # loopback: this host's
        assert "host" not in shared.agent.metadata["adapter"]
        on_a = await host_a.agent_directory.pool("auto", lambda inner: inner)
    async with engine_at(tmp_path / "b", "host-b", database) as host_b:
        on_b = await host_b.agent_directory.pool("auto", lambda inner: inner)
    assert set(on_a) == {local.agent.id, shared.agent.id}
    assert set(on_b) == {shared.agent.id, pinned.agent.id}

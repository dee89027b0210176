"""Done means merged on as many hosts as you need (issue 13): two hosts, one PostgreSQL, the
repository only as a URL, three ``taskorch worker`` processes and a driving ``taskorch serve``, a
real file-editing CLI agent; the merged result checked in a fresh clone of the repository."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.origins import bare_origin
from taskorch.domain.models import AttemptOutcome, NewTask
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.store import Store, connector_for_url

from .hosts import (
    EDITOR_AGENT,
    Host,
    Lab,
    Proc,
    can_hide_folders,
    git,
    git_daemon,
    read_runs,
    requirement,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

DOMAINS = "development,security,inventory,cicd,docs"
WORKER_TYPES = "planner,implementation,test,audit,documentation,deploy"
DEADLINE_S = 600.0


@pytest.fixture
def lab(request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path) -> Iterator[Lab]:
    """Two hosts; ``request.param`` says how they reach the repository (``file`` or
    ``git-daemon``, where the bare repository is hidden from both)."""
    origin = bare_origin(tmp_path / "remote")
    isolated = can_hide_folders(tmp_path)
    a, b = Host("host-a", tmp_path / "host-a"), Host("host-b", tmp_path / "host-b")
    a.hidden, b.hidden = [b.root], [a.root]
    for host in (a, b):
        host.home.mkdir(parents=True)
        host.workdir.mkdir(parents=True)
    with repository_url(request.param, origin) as url:
        if request.param == "git-daemon":  # reachable through the daemon only
            for host in (a, b):
                host.hidden.append(origin.parent)
        lab = Lab(postgres_url, url, tmp_path, [a, b], isolated)
        (tmp_path / "editor.py").write_text(EDITOR_AGENT)
        try:
            yield lab
        finally:
            lab.stop_all()


@contextlib.contextmanager
def repository_url(kind: str, origin: Path) -> Iterator[str]:
    if kind == "file":
        yield origin.as_uri()
        return
    with git_daemon(origin.parent) as base:
        yield f"{base}/{origin.name}"


# Twelve over git daemon (the repository hidden from both hosts), eight over file://, to keep CI
# under its time (twenty passed the same in issue 13's runs): the two differ only in how git
# reaches the repository.
@pytest.mark.parametrize(("lab", "workflows"), [("file", 8), ("git-daemon", 12)], indirect=["lab"])
async def test_workflows_on_two_hosts_land_on_the_remote_base_branch(
    lab: Lab, workflows: int
) -> None:
    a = lab.hosts[0]
    register_editor(lab, a)
    task_ids = await add_tasks(lab, workflows)
    drive(lab, a)
    workers(lab)

    states = await wait_all_terminal(lab, task_ids)
    for proc in lab.processes:
        if proc.alive():
            assert proc.terminate() == 0, proc.output()[-2000:]

    assert Counter(states.values()) == Counter({"merged": workflows}), report(lab, states)
    subtasks = await merged_subtasks(lab)
    assert 3 * workflows <= len(subtasks) <= 6 * workflows
    assert_on_remote_base(lab, subtasks)
    runs = read_runs(lab.record)
    done = Counter((wf, key) for what, wf, key, _ in runs if what == "done")
    assert set(done) == set(subtasks), "every subtask's agent ran to completion"
    assert max(done.values()) == 1, [k for k, n in done.items() if n > 1]
    hosts = {host for what, _, _, host in runs if what == "done"}
    assert hosts == {"host-a", "host-b"}, "subtasks ran on both hosts"
    if not lab.isolated:
        pytest.skip("unshare --mount is not available: hosts were separate folders only")


# Over git daemon only (the stricter way: the repository is hidden from both hosts), to keep CI
# under its time: the file:// run passed the same (see the issue 13 note).
@pytest.mark.parametrize("lab", ["git-daemon"], indirect=True)
async def test_kill9_of_workers_and_driver_loses_nothing(lab: Lab) -> None:
    workflows, wanted_kills = 12, 10
    lab.agent_s, lab.lease_s = 0.5, 4.0
    a = lab.hosts[0]
    register_editor(lab, a)
    task_ids = await add_tasks(lab, workflows)
    driver = drive(lab, a)
    crew = workers(lab)
    rng = random.Random(13)
    kills = 0
    began = time.monotonic()
    while kills < wanted_kills and time.monotonic() - began < DEADLINE_S / 2:
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        if await all_terminal(lab, task_ids):
            break
        victims = [driver, *crew]
        victim = rng.choice(victims)
        victim.kill9()
        kills += 1
        # Resumed the documented way: the same command again (serve resumes unfinished
        # workflows; a worker takes over expired leases).
        if victim is driver:
            driver = drive(lab, a)
        else:
            index = crew.index(victim)
            crew[index] = restart_worker(lab, victim)
    assert kills == wanted_kills, f"the run ended after {kills} kills"

    states = await wait_all_terminal(lab, task_ids)
    assert Counter(states.values()) == Counter({"merged": workflows}), report(lab, states)
    subtasks = await merged_subtasks(lab)
    assert_on_remote_base(lab, subtasks)
    await assert_no_completed_subtask_ran_again(lab)


# --- the run --------------------------------------------------------------------------------


def register_editor(lab: Lab, host: Host) -> None:
    command = f"{sys.executable} {lab.root / 'editor.py'} {{prompt}}"
    lab.cli(
        host, "agents", "add", "editor", "--command", command, "--max-concurrency", "8",
        "--domains", DOMAINS, "--worker-types", WORKER_TYPES,
    )  # fmt: skip


async def add_tasks(lab: Lab, count: int) -> list[int]:
    async with Store(connector_for_url(lab.database_url)) as store:
        tasks = [
            await store.create_task(NewTask.create(requirement(i), requirement(i)))
            for i in range(count)
        ]
    return [t.id for t in tasks]


def drive(lab: Lab, host: Host) -> Proc:
    return lab.start(host, "serve", "serve", "--agent", "editor", "--port", "0",
                     "--concurrency", "1")  # fmt: skip


WORKER_ARGS = ("worker", "--agent", "registry", "--concurrency", "3")


def workers(lab: Lab) -> list[Proc]:
    a, b = lab.hosts
    return [lab.start(host, "worker", *WORKER_ARGS) for host in (a, b, b)]


def restart_worker(lab: Lab, old: Proc) -> Proc:
    host = next(h for h in lab.hosts if old.name.startswith(h.name))
    return lab.start(host, "worker", *WORKER_ARGS)


async def all_terminal(lab: Lab, task_ids: list[int]) -> bool:
    states = await workflow_states(lab)
    ended = [s.split(":", 1)[0] in _TERMINAL for s in states.values()]
    return len(states) == len(task_ids) and all(ended)


_TERMINAL = {s.value for s in WORKFLOW_TERMINAL}


async def workflow_states(lab: Lab) -> dict[str, str]:
    """Workflow id -> state; a failed one's carries its reason, an unfinished one its
    subtasks, for the report."""
    async with Store(connector_for_url(lab.database_url)) as store:
        states = {}
        for w in await store.list_workflows():
            state = w.status.value
            if state == "failed":
                state += f": {(w.result or {}).get('reason') or w.result} " + "; ".join(
                    str(v.get("summary")) for v in w.metadata.get("validations", [])
                )
            elif state not in _TERMINAL:
                subtasks = await store.list_subtasks(w.id)
                state += ": " + ", ".join(
                    f"{s.key}={s.status.value}/{s.attempts} {s.error or ''}" for s in subtasks
                )
                state += f" stalled={w.metadata.get('stalled')}"
            states[w.id] = state
        return states


async def wait_all_terminal(lab: Lab, task_ids: list[int]) -> dict[str, str]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if await all_terminal(lab, task_ids):
            return await workflow_states(lab)
        await asyncio.sleep(1.0)
    pytest.fail(
        "workflows still running after the deadline: " + report(lab, await workflow_states(lab))
    )


async def merged_subtasks(lab: Lab) -> set[tuple[str, str]]:
    async with Store(connector_for_url(lab.database_url)) as store:
        found = set()
        for workflow in await store.list_workflows():
            for sub in await store.list_subtasks(workflow.id):
                assert sub.status.value == "completed", (workflow.id, sub.key, sub.status)
                found.add((workflow.id, sub.key))
        return found


def assert_on_remote_base(lab: Lab, subtasks: set[tuple[str, str]]) -> None:
    """Every subtask's mark is on the repository's main, read from a fresh clone."""
    clone = lab.root / f"check-{time.monotonic_ns()}"
    subprocess.run(["git", "clone", "-q", lab.repo_url, str(clone)], check=True, timeout=120)
    assert git(clone, "branch", "--show-current") == "main"
    marks: set[str] = set()
    for path in clone.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            marks.update(path.read_text(errors="replace").splitlines())
    missing = sorted(f"{wf} {key}" for wf, key in subtasks if f"{wf} {key}" not in marks)
    assert not missing, f"{len(missing)} subtasks' work is not on main: {missing[:10]}"


async def assert_no_completed_subtask_ran_again(lab: Lab) -> None:
    async with Store(connector_for_url(lab.database_url)) as store:
        for workflow in await store.list_workflows():
            for sub in await store.list_subtasks(workflow.id):
                attempts = await store.list_attempts(sub.id)
                succeeded = [a for a in attempts if a.outcome is AttemptOutcome.SUCCEEDED]
                assert len(succeeded) == 1, (workflow.id, sub.key, attempts)
                after = [a for a in attempts if a.started_at > succeeded[0].started_at]
                assert not after, (workflow.id, sub.key, "ran again after it completed")


def report(lab: Lab, states: dict[str, str]) -> str:
    drivers = [p for p in lab.processes if "serve" in p.name][-2:]
    logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in drivers)
    return f"{Counter(states.values())}\n{logs}"

"""Chaos: a 200-subtask run (50 tasks x 4 subtasks) through ``taskorch serve`` and three
``taskorch worker`` processes, with a real file-editing CLI agent and a bare repository behind a
``file://`` URL, while 20 kill -9s hit the driver and the workers: half at boundary moments (the
victim is restarted paused at a named point, ``TASKORCH_FAULT_PAUSE``, and killed there), half at
random moments. Each victim is started again the documented way (the same command).

At the end it prints, per backend, what must all be 0: tasks lost (not completed, or completed
with work missing from the base branch), completed subtasks whose agent ran again, merged work
that ran or merged again, tasks left non-terminal, agent processes alive, worktrees left behind.

    python bench/chaos.py [--backend sqlite|postgres|both] [--tasks 50] [--kills 20] [--seed 14]

The kills stop when every task has ended: on a fast machine a short run may end before all of
them landed (the counts say how many did). ``CHAOS_AGENT_S`` (default 0.3) is how long each
agent run takes; ``CHAOS_AGENT_S=6`` leaves room for all 20.

PostgreSQL: ``TASKORCH_BENCH_PG`` (default postgresql://postgres@127.0.0.1:5432/test); the run
uses a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from taskorch.domain.models import AttemptOutcome, NewTask, TaskStatus
from taskorch.store import Store, connector_for_url

AGENT = """\
import os, pathlib, sys, time

cwd = pathlib.Path.cwd()
workflow = next(p for p in cwd.parts if p.startswith("wf-"))
key = cwd.name


def record(what):
    fd = os.open(os.environ["CHAOS_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{what} {workflow} {key} {time.time():.6f} {os.getpid()}\\n".encode())
    os.fsync(fd)
    os.close(fd)


record("start")
path = cwd / "work" / workflow / f"{key}.md"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(f"{workflow} {key}\\n")
time.sleep(float(os.environ.get("CHAOS_AGENT_S", "0.3")))
record("done")
print("edited", path.name)
"""

TOPICS = [
    "billing", "search", "notification", "reporting", "inventory", "payments", "analytics",
    "messaging", "scheduling", "profile", "upload", "export", "import", "catalog", "settings",
    "onboarding", "comments", "tagging", "invoice", "session",
]  # fmt: skip
DRIVER_POINTS = [
    "task:claim", "workflow:created", "workflow:subtasks-done", "workflow:validated",
    "workflow:base-merged", "workflow:merged",
]  # fmt: skip
WORKER_POINTS = ["subtask:agent-done", "subtask:committed", "subtask:merged", "subtask:completed"]
DOMAINS = "development,security,inventory,cicd,docs"
WORKER_TYPES = "planner,implementation,test,audit,documentation,deploy"
MUST_BE_ZERO = (
    "lost", "completed subtasks re-run", "merged work re-run", "tasks non-terminal",
    "agent processes alive", "worktrees left",
)  # fmt: skip
PAUSE_WAIT_S = 60.0
DEADLINE_S = 1800.0


@dataclass
class Proc:
    role: str
    args: tuple[str, ...]
    popen: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)


@dataclass
class Run:
    database_url: str
    root: Path
    repo_url: str
    origin: Path
    processes: list[Proc] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)

    def env(self, pause: str | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_", "AGENTAPI_", "GITHUB_"))
        }
        env |= {
            "DATABASE_URL": self.database_url,
            "TASKORCH_HOME": str(self.root / "home"),
            "TASKORCH_REPO": self.repo_url,
            "CHAOS_RECORD": str(self.root / "agent-runs.log"),
            "LEASE_S": "3",
            "PYTHONUNBUFFERED": "1",
        }
        if pause:
            env |= {"TASKORCH_FAULT_PAUSE": pause, "TASKORCH_FAULT_FILE": str(self.faults)}
        return env

    @property
    def faults(self) -> Path:
        return self.root / "faults.log"

    @property
    def agent(self) -> Path:
        return self.root / "editor.py"

    def start(self, role: str, args: tuple[str, ...], pause: str | None = None) -> Proc:
        log = (self.root / f"{role}.log").open("ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "taskorch", *args],
            env=self.env(pause),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(role, args, popen)
        self.processes.append(proc)
        return proc

    def paused(self, proc: Proc) -> str | None:
        if not self.faults.exists():
            return None
        for line in self.faults.read_text().splitlines():
            name, pid = line.rsplit(" ", 1)
            if int(pid) == proc.popen.pid:
                return name
        return None


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def bare_origin(root: Path) -> Path:
    origin = root / "origin.git"
    origin.mkdir(parents=True)
    git(origin, "init", "-q", "--bare", "-b", "main")
    seed = root / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "README.md").write_text("# chaos\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "-q", "-m", "first")
    git(seed, "push", "-q", str(origin), "main")
    return origin


def live_agents(script: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(script) in cmdline and state != "Z":
            pids.append(int(entry))
    return pids


async def chaos(run: Run, tasks: int, kills: int, rng: random.Random) -> dict[str, int]:
    command = f"{sys.executable} {run.agent} {{prompt}}"
    subprocess.run(  # noqa: ASYNC221 (set-up, before anything runs)
        [sys.executable, "-m", "taskorch", "agents", "add", "editor", "--command", command,
         "--max-concurrency", "8", "--domains", DOMAINS, "--worker-types", WORKER_TYPES],
        env=run.env(), cwd=run.root, check=True, capture_output=True,
    )  # fmt: skip
    async with Store(connector_for_url(run.database_url)) as store:
        for i in range(tasks):
            text = f"Add {TOPICS[i % len(TOPICS)]} feature with security audit"  # 4 subtasks
            await store.create_task(NewTask.create(text, text))
        driver_args = ("serve", "--agent", "editor", "--port", "0", "--concurrency", "2")
        worker_args = ("worker", "--agent", "registry", "--concurrency", "4")
        crew = {"driver": run.start("driver", driver_args)}
        for i in range(3):
            crew[f"worker-{i}"] = run.start(f"worker-{i}", worker_args)
        began = time.monotonic()
        done = 0
        while done < kills and not await all_ended(store):
            role = rng.choice(sorted(crew))
            victim = crew[role]
            if done % 2 == 0:  # at a boundary: restart it paused at one, kill it there
                points = DRIVER_POINTS if role == "driver" else WORKER_POINTS
                point = points[(done // 2) % len(points)]
                victim.kill9()
                victim = crew[role] = run.start(role, victim.args, pause=point)
                reached = await wait_paused(run, victim, store)
                run.kills["boundary" if reached else "boundary (not reached: random)"] += 1
            else:
                await asyncio.sleep(rng.uniform(0.3, 2.0))
                run.kills["random"] += 1
            victim.kill9()
            crew[role] = run.start(role, victim.args)
            done += 1
        while not await all_ended(store):
            if time.monotonic() - began > DEADLINE_S:
                break
            await asyncio.sleep(1.0)
        elapsed = time.monotonic() - began
        for proc in crew.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        for proc in crew.values():
            try:
                proc.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill9()
        figures = await count(run, store)
        figures["seconds"] = round(elapsed)
        return figures


async def wait_paused(run: Run, proc: Proc, store: Store) -> bool:
    deadline = time.monotonic() + PAUSE_WAIT_S
    while time.monotonic() < deadline and proc.alive() and not await all_ended(store):
        if run.paused(proc):
            return True
        await asyncio.sleep(0.05)
    return False


async def all_ended(store: Store) -> bool:
    ended = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    return all(t.status in ended for t in await store.list_tasks())


async def count(run: Run, store: Store) -> dict[str, int]:
    runs = [
        line.split()
        for line in (run.root / "agent-runs.log").read_text().splitlines()
        if line.startswith("start ")
    ]
    tasks = await store.list_tasks()
    figures = Counter[str]()
    figures["tasks"] = len(tasks)
    figures["tasks non-terminal"] = sum(t.status is TaskStatus.PROCESSING for t in tasks)
    figures["tasks non-terminal"] += sum(t.status is TaskStatus.PENDING for t in tasks)
    figures["lost"] = sum(t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) for t in tasks)
    for workflow in await store.list_workflows():
        if workflow.status.value in ("failed", "cancelled"):
            reason = (workflow.result or {}).get("reason") or workflow.result
            print(f"  {workflow.id} {workflow.status.value}: {reason}", flush=True)
        merge_times = merges_on_main(run.origin, workflow.id)
        for sub in await store.list_subtasks(workflow.id):
            figures["subtasks"] += 1
            wins = [
                a
                for a in await store.list_attempts(sub.id)
                if a.outcome is AttemptOutcome.SUCCEEDED and a.ended_at is not None
            ]
            starts = [float(r[3]) for r in runs if r[1] == workflow.id and r[2] == sub.key]
            if wins:
                ended = max(a.ended_at.timestamp() for a in wins if a.ended_at)
                figures["completed subtasks re-run"] += sum(at > ended for at in starts)
            merged = merge_times.get(sub.key, [])
            if merged:  # git keeps whole seconds: a start in the merge's second is not counted
                figures["merged work re-run"] += sum(at >= min(merged) + 1 for at in starts)
                figures["merged work re-run"] += len(merged) - 1  # merged twice
            elif workflow.status.value == "merged":
                figures["lost"] += 1  # done, but its work is not on main
    figures["agent processes alive"] = len(live_agents(run.agent))
    left = run.root / "home" / "worktrees"
    figures["worktrees left"] = len(list(left.glob("wf-*"))) if left.is_dir() else 0
    return dict(figures)


def merges_on_main(origin: Path, workflow_id: str) -> dict[str, list[float]]:
    """Subtask key -> committer times of its merges that the base branch contains."""
    trailer = "%(trailers:key=Taskorch-Subtask,valueonly)"
    grep = f"--grep=Taskorch-Workflow: {workflow_id}"
    out = git(origin, "log", "main", "--merges", f"--format=%ct {trailer}", grep)
    found: dict[str, list[float]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            found.setdefault(parts[1], []).append(float(parts[0]))
    return found


def postgres_schema(base: str) -> tuple[str, str]:
    import psycopg

    schema = f"chaos_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    joiner = "&" if "?" in base else "?"
    return schema, f"{base}{joiner}options={quote(f'-csearch_path={schema}')}"


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def one_backend(backend: str, tasks: int, kills: int, seed: int) -> dict[str, int]:
    root = Path(tempfile.mkdtemp(prefix=f"chaos-{backend}-"))
    origin = bare_origin(root / "remote")
    (root / "home").mkdir()
    base = os.environ.get("TASKORCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
    schema = None
    if backend == "postgres":
        schema, url = postgres_schema(base)
    else:
        url = f"sqlite:///{root / 'home' / 'taskorch.db'}"
    subprocess.run(  # noqa: ASYNC221 (set-up, before anything runs)
        [sys.executable, "-m", "taskorch", "init"],
        env={**os.environ, "DATABASE_URL": url, "TASKORCH_HOME": str(root / "home")},
        check=True,
        capture_output=True,
    )
    run = Run(url, root, origin.resolve().as_uri(), origin)
    run.agent.write_text(AGENT)
    try:
        figures = await chaos(run, tasks, kills, random.Random(f"{seed}-{backend}"))
        figures.update({f"kills {k}": n for k, n in run.kills.items()})
        if any(figures.get(k) for k in MUST_BE_ZERO):
            print(f"  kept for a look: {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
        return figures
    finally:
        for proc in run.processes:
            if proc.alive():
                proc.kill9()
        if schema:
            drop_schema(base, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        figures = asyncio.run(one_backend(backend, args.tasks, args.kills, args.seed))
        shown = ", ".join(f"{k} {v}" for k, v in figures.items())
        print(f"[{backend}] {shown}", flush=True)


if __name__ == "__main__":
    main()

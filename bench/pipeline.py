"""The real job against its physical floor, in one run: one-file subtasks carried from plan to
merged, next to the raw git work each one needs.

(a) ``floor``: a plain loop of git commands doing what a subtask needs (``worktree add`` of a new
    branch off the workflow branch, one file written and committed, ``merge --no-ff`` into the
    workflow branch, ``worktree remove``, ``branch -d``) -- the least this machine can do.
(b) taskorch carrying N one-file subtasks (``SimWorktreeAgent``: instant, writes and commits the
    subtask's one file) to ``merged``, in two shapes: ``one-workflow`` (one workflow of N
    independent subtasks) and ``many-workflows`` (N workflows of one subtask each, each also
    merged into the base branch); on SQLite and PostgreSQL; with 1, 2 and 4 workers (subtasks run
    at once, by one in-process worker).
(c) ``seed``: the 6-subtask plan of "Add authentication system with security audit and
    documentation" (heuristic planner) from command to merged.

Per case: subtasks merged per second, CPU-ms per merged subtask (this process and every child
it waited for: git, the database client; a PostgreSQL server's own CPU is not counted) and
``floor_ratio`` = taskorch's wall time per subtask / the floor's, measured in the same run, and
``git_per_subtask``: the git processes run per merged subtask (``--git``: by subcommand).
Durability stays on (SQLite synchronous=FULL, PostgreSQL as the server has it).

    python bench/pipeline.py                      # N = 50, 200, 800; both backends; 1, 2, 4
    python bench/pipeline.py --quick              # under a minute: N = 20, SQLite, 2 workers
    python bench/pipeline.py --json               # one JSON object per case
    python bench/pipeline.py --n 200 --backend sqlite --workers 2 --shape many-workflows
    python bench/pipeline.py --n 50 --shape one-workflow --git   # where the git processes go

A peer, the agent orchestrator ``bernstein``, needs Python >= 3.12: it runs where installed and
importable, else its row says why it was skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from taskorch.agents.base import AgentAdapter, Heartbeat
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.models import NewTask
from taskorch.domain.plan import Complexity, Domain, Plan, PlanSubtask, WorkerType
from taskorch.engine import OrchestrationEngine
from taskorch.engine.delivery import GitDelivery, WorkspaceAgent
from taskorch.runtime import ref_sessions

SEED = "Add authentication system with security audit and documentation"
POSTGRES_URL = os.environ.get(
    "TASKORCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
GIT = ("git", "-c", "user.name=bench", "-c", "user.email=bench@localhost")
SHAPES = ("one-workflow", "many-workflows")


SESSION = "update-ref (session)"
"""A ref transaction on a long-lived ``update-ref --stdin`` (runtime/ref_sessions.py): listed,
not a process; the session's own process is, as ``update-ref --stdin`` (its start)."""


class _GitCount:
    """Git processes taskorch runs (and the simulated agent's), counted by subcommand: a case's
    ``git_per_subtask`` and, with ``--git``, where they go."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.last: Counter[str] = Counter()
        """The last measured case's."""
        self._sessions = 0

    def install(self) -> None:
        from taskorch.agents import sim_worktree
        from taskorch.runtime import git as g

        run_git, agent_git = g._run_git, sim_worktree._git
        run_update_ref = g._run_update_ref

        async def transaction_counted(cwd: Path, moves: str, *, timeout_s: float) -> g.GitResult:
            self.counts[SESSION] += 1
            return await run_update_ref(cwd, moves, timeout_s=timeout_s)

        async def counted(
            cwd: Path,
            *args: str,
            check: bool,
            timeout_s: float,
            stdin: str | bytes | None = None,
            binary: bool = False,
        ) -> g.GitResult:
            self.counts[g._subcommand(args)] += 1
            return await run_git(
                cwd, *args, check=check, timeout_s=timeout_s, stdin=stdin, binary=binary
            )

        async def agent_counted(workdir: Path, heartbeat: Heartbeat, *args: str) -> str:
            self.counts[f"agent {args[0]}"] += 1
            return await agent_git(workdir, heartbeat, *args)

        g._run_git = counted
        g._run_update_ref = transaction_counted
        sim_worktree._git = agent_counted

    def take(self) -> Counter[str]:
        from taskorch.runtime import ref_sessions

        started, self._sessions = ref_sessions.started() - self._sessions, ref_sessions.started()
        taken, self.counts = self.counts, Counter()
        if started:
            taken["update-ref --stdin"] += started
        return taken


GIT_COUNT = _GitCount()


def _per(gits: Counter[str], subtasks: int) -> float:
    processes = sum(count for name, count in gits.items() if name != SESSION)
    return round(processes / max(subtasks, 1), 1)


@dataclass(frozen=True)
class Result:
    case: str
    backend: str
    workers: int
    n: int
    wall_s: float
    cpu_s: float
    merged: int
    tasks_per_s: float
    cpu_ms_per_subtask: float
    floor_ratio: float | None
    note: str = ""
    git_per_subtask: float | None = None
    """Git processes per merged subtask (taskorch's and the simulated agent's)."""


def _cpu() -> float:
    """CPU seconds of this process and of the children it has waited for (git, ...)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _git(*args: str) -> None:
    subprocess.run([*GIT, *args], check=True, stdout=subprocess.DEVNULL)


def _repository(folder: Path) -> Path:
    folder.mkdir(parents=True)
    _git("init", "-q", "-b", "main", str(folder))
    (folder / "README.md").write_text("# bench\n")
    _git("-C", str(folder), "add", "README.md")
    _git("-C", str(folder), "commit", "-q", "-m", "first")
    return folder


# --- (a) the floor -------------------------------------------------------------------------------


def floor(n: int, folder: Path) -> Result:
    repo = _repository(folder / "floor-repo")
    workflow = folder / "floor-wt" / "main"
    _git("-C", str(repo), "worktree", "add", "-q", "-b", "wf/main", str(workflow), "main")
    started, cpu = time.perf_counter(), _cpu()
    for i in range(n):
        branch, path = f"wf/sub/s{i}", folder / "floor-wt" / f"s{i}"
        _git("-C", str(repo), "worktree", "add", "-q", "-b", branch, str(path), "wf/main")
        (path / f"f{i}.txt").write_text(f"subtask {i}\n")
        _git("-C", str(path), "add", "-A")
        _git("-C", str(path), "commit", "-q", "--no-verify", "-m", f"subtask {i}")
        _git("-C", str(workflow), "merge", "-q", "--no-ff", "--no-verify", "-m", "m", branch)
        _git("-C", str(repo), "worktree", "remove", str(path))
        _git("-C", str(repo), "branch", "-q", "-D", branch)
    wall, spent = time.perf_counter() - started, _cpu() - cpu
    return Result("floor", "git", 1, n, wall, spent, n, n / wall, spent / n * 1000, 1.0)


# --- (b) taskorch --------------------------------------------------------------------------------


def _one_file_plan(task_id: int, title: str, keys: list[str]) -> Plan:
    ref = f"task-{task_id}"
    subtasks = [
        PlanSubtask(
            subtask_id=key,
            parent_task_id=ref,
            title=f"Write {key}.txt",
            assigned_to=Domain.DEVELOPMENT,
            worker_type=WorkerType.IMPLEMENTATION,
            files_affected=[f"{key}.txt"],
        )
        for key in keys
    ]
    return Plan(
        orchestration_id=f"bench-{ref}",
        parent_task_id=ref,
        task_title=title,
        complexity=Complexity.SIMPLE,
        subtasks=subtasks,
        execution_plan={"stage_1": keys},
    )


class _PlannedEngine(OrchestrationEngine):
    """The engine with a fixed planner: ``size`` one-file subtasks per workflow, named by the
    task so that workflows never touch each other's files."""

    size = 1

    async def _plan(self, text: str, context: str | None, ref: str) -> tuple[Plan, str]:
        task_id = int(ref.removeprefix("task-"))
        keys = [f"t{task_id}-s{i}" for i in range(self.size)]
        return _one_file_plan(task_id, text, keys), "bench: one file per subtask"


def _database(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'taskorch.db'}"
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}".encode())
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def _drop(backend: str, url: str) -> None:
    if backend == "postgres":
        import psycopg

        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE".encode())


async def _carry(
    engine_type: type[OrchestrationEngine], home: Path, url: str, workers: int, titles: list[str]
) -> tuple[float, float, int, int, Counter[str]]:
    """Add the tasks, then carry them all to their end; (wall, cpu, subtasks merged, workflows
    merged, git processes by subcommand). The clock starts once the tasks are stored."""
    from taskorch.settings import load_settings

    settings = load_settings(
        taskorch_home=home, database_url=url, nlp_provider="heuristic", worker_concurrency=workers
    )
    engine = engine_type(settings)
    delivery = GitDelivery(engine.store, home)
    engine.delivery = delivery
    async with engine:
        ids = [(await engine.add_task(NewTask.create(title))).id for title in titles]
        agents: dict[str | None, AgentAdapter] = {
            None: WorkspaceAgent(SimWorktreeAgent(), delivery)
        }
        GIT_COUNT.take()
        started, cpu = time.perf_counter(), _cpu()
        statuses = await engine.process_batch(ids, agents=agents)
        await ref_sessions.close_all()  # (reaped: their git's CPU is counted)
        wall, spent = time.perf_counter() - started, _cpu() - cpu
        gits = GIT_COUNT.take()
    merged = sum(s.state == "merged" for s in statuses)
    subtasks = sum(len(s.subtasks) for s in statuses if s.state == "merged")
    return wall, spent, subtasks, merged, gits


def taskorch_case(
    shape: str, backend: str, workers: int, n: int, folder: Path, floor_s: float
) -> Result:
    home = folder / f"{shape}-{backend}-{workers}-{n}"
    home.mkdir(parents=True)
    url = _database(backend, home)
    engine_type = type("_Sized", (_PlannedEngine,), {"size": n if shape == "one-workflow" else 1})
    titles = (
        ["Write the files"] if shape == "one-workflow" else [f"Write file {i}" for i in range(n)]
    )
    try:
        wall, spent, subtasks, _, gits = asyncio.run(
            _carry(engine_type, home, url, workers, titles)
        )
    finally:
        _drop(backend, url)
    note = "" if subtasks == n else f"only {subtasks} of {n} subtasks merged"
    per = wall / n
    GIT_COUNT.last = gits
    return Result(
        shape, backend, workers, n, wall, spent, subtasks, subtasks / wall,
        spent / max(subtasks, 1) * 1000, per / floor_s, note, _per(gits, subtasks),
    )  # fmt: skip


SERVE_CONCURRENCY = 2
"""Subtasks each ``serve`` process runs at once."""


def serve_case(backend: str, processes: int, n: int, folder: Path, floor_s: float) -> Result:
    """N one-subtask tasks carried by ``processes`` daemons of ``taskorch serve`` at once
    (``bench/pipeline_serve.py``)."""
    from pipeline_serve import carry

    home = folder / f"serve-{backend}-{processes}-{n}"
    home.mkdir(parents=True)
    url = _database(backend, home)
    cpu = _cpu()
    try:
        wall, merged = carry(home, url, n, processes, SERVE_CONCURRENCY)
    finally:
        _drop(backend, url)
    spent = _cpu() - cpu
    note = f"{processes} processes x {SERVE_CONCURRENCY} at once" + (
        "" if merged == n else f"; only {merged} of {n} merged"
    )
    return Result(
        "serve", backend, processes, n, wall, spent, merged, merged / wall,
        spent / max(merged, 1) * 1000, wall / n / floor_s, note,
    )  # fmt: skip


# --- (c) the seed plan ---------------------------------------------------------------------------


def seed_case(backend: str, folder: Path, floor_s: float) -> Result:
    home = folder / f"seed-{backend}"
    home.mkdir(parents=True)
    url = _database(backend, home)
    try:
        wall, spent, subtasks, merged, gits = asyncio.run(
            _carry(OrchestrationEngine, home, url, 4, [SEED])
        )
    finally:
        _drop(backend, url)
    note = f"command to merged {wall:.2f} s" if merged else "the workflow did not merge"
    GIT_COUNT.last = gits
    return Result(
        "seed", backend, 4, subtasks, wall, spent, subtasks, subtasks / wall,
        spent / max(subtasks, 1) * 1000, wall / max(subtasks, 1) / floor_s, note,
        _per(gits, subtasks),
    )  # fmt: skip


# --- the peer ------------------------------------------------------------------------------------


def peer_note() -> str | None:
    """Why the peer cannot run here, or None when it can."""
    if sys.version_info < (3, 12):
        return f"bernstein skipped: it needs Python >= 3.12, this is {sys.version.split()[0]}"
    if importlib.util.find_spec("bernstein") is None:
        return "bernstein skipped: not installed (pip install bernstein, Python >= 3.12)"
    return "bernstein skipped: installed, but its side of the workload is not scripted yet"


# --- the run -------------------------------------------------------------------------------------


def _print(result: Result, as_json: bool, git_detail: bool = False) -> None:
    if as_json:
        print(json.dumps(asdict(result)), flush=True)
        return
    ratio = "" if result.floor_ratio is None else f"{result.floor_ratio:6.1f}x"
    print(
        f"{result.case:<15} {result.backend:<9} {result.workers:>2} {result.n:>5} "
        f"{result.wall_s:8.2f} s {result.tasks_per_s:8.1f}/s {result.cpu_ms_per_subtask:9.1f} "
        f"{ratio:>8} {result.git_per_subtask or '':>6}  {result.note}",
        flush=True,
    )
    if git_detail and result.case != "floor":
        merged = max(result.merged, 1)
        for name, count in GIT_COUNT.last.most_common():
            print(f"{'':<17}git {name:<16} {count / merged:6.2f} per subtask", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="N = 20, SQLite, 2 workers: under a minute"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    parser.add_argument("--n", type=int, action="append", help="subtasks (repeatable)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--workers", type=int, action="append")
    parser.add_argument("--shape", choices=SHAPES, action="append")
    parser.add_argument(
        "--processes",
        type=int,
        action="append",
        help="also run the serve case: N one-subtask tasks shared by this many serve processes",
    )
    parser.add_argument("--no-seed", action="store_true", help="skip (c), the seed plan")
    parser.add_argument("--git", action="store_true", help="git processes by subcommand per case")
    args = parser.parse_args()
    GIT_COUNT.install()
    sizes = args.n or ([20] if args.quick else [50, 200, 800])
    backends = args.backend or (["sqlite"] if args.quick else ["sqlite", "postgres"])
    workers = args.workers or ([2] if args.quick else [1, 2, 4])
    shapes = args.shape or list(SHAPES)
    if not args.json:
        print(
            f"{'case':<15} {'backend':<9} {'w':>2} {'n':>5} {'wall':>10} {'tasks/s':>10} "
            f"{'CPU-ms/sub':>9} {'vs floor':>8} {'git/sub':>6}"
        )
    with tempfile.TemporaryDirectory(prefix="taskorch-pipeline-") as name:
        folder = Path(name)
        floor_result = floor(max(sizes), folder)
        _print(floor_result, args.json)
        floor_s = floor_result.wall_s / floor_result.n
        for n in sizes:
            for backend in backends:
                for shape in shapes:
                    for count in workers:
                        result = taskorch_case(shape, backend, count, n, folder, floor_s)
                        _print(result, args.json, args.git)
                for count in args.processes or []:
                    _print(serve_case(backend, count, n, folder, floor_s), args.json)
        if not args.no_seed:
            for backend in backends:
                _print(seed_case(backend, folder, floor_s), args.json, args.git)
    note = peer_note()
    if note:
        print(note, file=sys.stderr if args.json else sys.stdout)


if __name__ == "__main__":
    main()

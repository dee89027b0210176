"""What the boundary kill tests share: a lab (repository, database, home, a real file-editing CLI
agent that records its runs), ``taskorch`` processes paused at a named point
(``TASKORCH_FAULT_PAUSE``, see ``runtime/faults.py``) and killed there, and the checks read back
from git, the database and ``/proc`` afterwards.

Every wait is a generous deadline that fails the test if something hangs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from taskorch.domain.models import AttemptOutcome, TaskStatus
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.store import Store

AGENT = """\
import os, pathlib, sys, time

cwd = pathlib.Path.cwd()
workflow = next(p for p in cwd.parts if p.startswith("wf-"))
key = cwd.name


def record(what):
    fd = os.open(os.environ["BOUNDARY_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{what} {workflow} {key} {time.time():.6f} {os.getpid()}\\n".encode())
    os.fsync(fd)
    os.close(fd)


record("start")
path = cwd / "work" / workflow / f"{key}.md"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(f"{workflow} {key}\\n")
time.sleep(float(os.environ.get("BOUNDARY_TEST_AGENT_S", "0")))
record("done")
print("edited", path.name)
"""

DOMAINS = "development,security,inventory,cicd,docs"
WORKER_TYPES = "planner,implementation,test,audit,documentation,deploy"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (the agents' guards are signalled by the kernel)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)

    def terminate(self, timeout_s: float = 60) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        return self.popen.wait(timeout=timeout_s)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Lab:
    database_url: str
    root: Path
    repo_url: str
    origin: Path
    agent_s: float = 0.1
    lease_s: float = 1.0
    processes: list[Proc] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def record(self) -> Path:
        return self.root / "agent-runs.log"

    @property
    def faults(self) -> Path:
        return self.root / "faults.log"

    @property
    def agent_script(self) -> Path:
        return self.root / "editor.py"

    def env(self, pause: str | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_", "AGENTAPI_", "GITHUB_"))
            and k not in ("LEASE_S", "MERGE_POLICY")
        }
        env |= {
            "DATABASE_URL": self.database_url,
            "TASKORCH_HOME": str(self.home),
            "TASKORCH_REPO": self.repo_url,
            "BOUNDARY_TEST_RECORD": str(self.record),
            "BOUNDARY_TEST_AGENT_S": str(self.agent_s),
            "LEASE_S": str(self.lease_s),
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
        }
        if pause:
            env |= {"TASKORCH_FAULT_PAUSE": pause, "TASKORCH_FAULT_FILE": str(self.faults)}
        return env

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "taskorch", *args],
            env=self.env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self, label: str, *args: str, pause: str | None = None) -> Proc:
        log = self.root / f"{label}-{len(self.processes)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "taskorch", *args],
                env=self.env(pause),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(label, popen, log)
        self.processes.append(proc)
        return proc

    def register_agent(self) -> None:
        self.agent_script.write_text(AGENT)
        command = f"{sys.executable} {self.agent_script} {{prompt}}"
        result = self.cli(
            "agents", "add", "editor", "--command", command, "--max-concurrency", "4",
            "--domains", DOMAINS, "--worker-types", WORKER_TYPES,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    def paused_at(self) -> list[tuple[str, int]]:
        if not self.faults.exists():
            return []
        lines = [line.rsplit(" ", 1) for line in self.faults.read_text().splitlines()]
        return [(name, int(pid)) for name, pid in lines]

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.alive():
                proc.kill9()
        for pid in live_agents(self.agent_script):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def live_agents(script: Path) -> list[int]:
    """Pids of live (not zombie) processes running the agent script (their guards included)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(script) in cmdline and state != "Z":
            pids.append(int(entry))
    return pids


def wait_until(condition: object, *, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s:g} s for {what}")
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class AgentRun:
    kind: str
    workflow: str
    key: str
    at: float
    pid: int


def agent_runs(record: Path) -> list[AgentRun]:
    if not record.exists():
        return []
    runs = []
    for line in record.read_text().splitlines():
        kind, workflow, key, at, pid = line.split()
        runs.append(AgentRun(kind, workflow, key, float(at), int(pid)))
    return runs


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


async def assert_done_exactly_once(
    lab: Lab, store: Store, *, merged_before: dict[str, float]
) -> None:
    """Every task completed once, by one merged workflow; each subtask completed with one
    succeeded attempt, its work merged once into the base branch; no completed subtask's agent
    ran again, nor the agent of work merged before a kill (``merged_before``: key -> the kill's
    time); nothing left running or behind."""
    tasks = await store.list_tasks()
    assert tasks, "no task was stored"
    assert {t.ref: t.status for t in tasks if t.status is not TaskStatus.COMPLETED} == {}
    runs = agent_runs(lab.record)
    for task in tasks:
        workflows = await store.list_workflows(task_id=task.id)
        assert [w.status.value for w in workflows] == ["merged"], (task.ref, workflows)
    workflows = await store.list_workflows()
    assert [w.id for w in workflows if w.status not in WORKFLOW_TERMINAL] == []
    for workflow in workflows:
        for sub in await store.list_subtasks(workflow.id):
            attempts = await store.list_attempts(sub.id)
            wins = [a for a in attempts if a.outcome is AttemptOutcome.SUCCEEDED]
            assert sub.status == "completed", (sub.key, sub.status, attempts)
            assert len(wins) == 1, (sub.key, attempts)
            ended = wins[0].ended_at
            assert ended is not None
            starts = [r for r in runs if r.key == sub.key and r.kind == "start"]
            late = [r for r in starts if r.at > ended.timestamp()]
            assert late == [], f"{sub.key}: its agent ran again after it completed"
            after = merged_before.get(sub.key, float("inf"))
            again = [r for r in starts if r.at > after]
            assert again == [], f"{sub.key}: its agent ran again after its work was merged"
            merges = git(
                lab.origin, "log", "main", "--merges", "--format=%H",
                f"--grep=Taskorch-Subtask: {sub.key}$",
            ).split()  # fmt: skip
            assert len(merges) == 1, f"{sub.key}: merged {len(merges)} times into main"
            mark = git(lab.origin, "show", f"main:work/{workflow.id}/{sub.key}.md")
            assert mark == f"{workflow.id} {sub.key}"
    assert live_agents(lab.agent_script) == [], "agent processes outlived the run"
    assert_no_worktrees(lab)


def assert_no_worktrees(lab: Lab) -> None:
    left = sorted(str(p.relative_to(lab.home)) for p in (lab.home / "worktrees").glob("wf-*"))
    assert left == [], f"worktrees left behind: {left}"
    for mirror in (lab.home / "mirrors").glob("*"):
        listed = git(mirror, "worktree", "list", "--porcelain").split("\n\n")
        assert len([w for w in listed if w.strip()]) == 1, f"{mirror}: {listed}"


def runs_by_key(lab: Lab) -> Counter[str]:
    return Counter(r.key for r in agent_runs(lab.record) if r.kind == "start")

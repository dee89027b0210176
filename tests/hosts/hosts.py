"""Two hosts on one machine: each its own ``TASKORCH_HOME`` and working directory, neither able to
see the other's (each host's processes run in a mount namespace where the other host's folder is
an empty tmpfs, where the machine allows it), one PostgreSQL, and the repository reachable only as
a URL (a bare repository over ``file://`` or ``git daemon`` on 127.0.0.1).

The agent is a real file-editing CLI program (``EDITOR_AGENT``), registered with ``taskorch agents
add``: it edits the files its instructions name (resolving conflict markers it finds there, as a
fix-up after a conflicting merge asks) or writes one file of its own per subtask, and records each
run it starts and finishes, with its host, in a file outside both hosts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

EDITOR_AGENT = """\
import os, pathlib, sys, time

prompt = sys.argv[1]
cwd = pathlib.Path.cwd()
workflow, key = cwd.parts[-3], cwd.parts[-1]  # <worktrees>/<workflow>/subtasks/<key>
host = os.environ["HOSTS_TEST_HOST"]


def record(what):
    fd = os.open(os.environ["HOSTS_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{what} {workflow} {key} {host}\\n".encode())
    os.fsync(fd)
    os.close(fd)


record("start")
declared = []
for line in prompt.splitlines():
    if line.startswith("Files: "):
        declared = [name.strip() for name in line[len("Files: "):].split(",") if name.strip()]
marker = f"{workflow} {key}"
MARKS = ("<<<<<<< ", "=======", ">>>>>>> ")
targets = declared or [f"work/{workflow}/{key}.md"]
for name in targets:
    path = cwd / name
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [l for l in (path.read_text().splitlines() if path.exists() else [])
            if not l.startswith(MARKS)]  # a conflict resolved by keeping both sides
    path.write_text("\\n".join([*kept, marker]) + "\\n")
time.sleep(float(os.environ.get("HOSTS_TEST_AGENT_S", "0")))
record("done")
print("edited", ", ".join(targets))
"""

TOPICS = [
    "authentication", "billing", "search", "notification", "reporting", "inventory",
    "payments", "analytics", "messaging", "scheduling", "profile", "upload", "audit log",
    "export", "import", "dashboard", "settings", "onboarding", "comments", "tagging",
]  # fmt: skip


def requirement(index: int) -> str:
    """Requirements that plan into 3 to 6 subtasks, each topic its own files."""
    topic = TOPICS[index % len(TOPICS)]
    if index % 3 == 2:
        return f"Add {topic} system with tests and docs"
    return f"Add {topic} system with security audit and docs"


def can_hide_folders(scratch: Path) -> bool:
    """Whether a folder can be hidden in a mount namespace here (root, and a kernel and
    container that allow ``unshare --mount`` and a tmpfs mounted inside it): the probe hides a
    folder with a file in it the way the hosts do, and looks for the file."""
    if shutil.which("unshare") is None or shutil.which("mount") is None or os.geteuid() != 0:
        return False
    folder = scratch / "probe-hidden"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seen").write_text("")
    hide = scratch / "probe-hide.py"
    hide.write_text(HIDE)
    look = f"import os, sys; sys.exit(os.path.exists({str(folder / 'seen')!r}))"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--",
         sys.executable, str(hide), str(folder), "--", sys.executable, "-c", look],
        capture_output=True,
        check=False,
    )  # fmt: skip
    return probe.returncode == 0


HIDE = """\
import os, subprocess, sys
cut = sys.argv.index("--")
for folder in sys.argv[1:cut]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], check=True)
os.execvp(sys.argv[cut + 1], sys.argv[cut + 1:])
"""


@dataclass
class Host:
    """One host: its own home and working directory; ``hidden`` are the folders it cannot see."""

    name: str
    root: Path
    hidden: list[Path] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "taskorch-home"

    @property
    def workdir(self) -> Path:
        return self.root / "work"


@dataclass
class Lab:
    """The machine the hosts share: the database, the repository URL, the agent's record."""

    database_url: str
    repo_url: str
    root: Path
    hosts: list[Host]
    isolated: bool
    agent_s: float = 0.0
    lease_s: float = 10.0
    processes: list[Proc] = field(default_factory=list)

    @property
    def record(self) -> Path:
        return self.root / "agent-runs.log"

    def env(self, host: Host) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_", "AGENTAPI_", "GITHUB_"))
        }
        env |= {
            "DATABASE_URL": self.database_url,
            "TASKORCH_HOME": str(host.home),
            "TASKORCH_REPO": self.repo_url,
            "TASKORCH_HOST_NAME": host.name,
            "HOSTS_TEST_HOST": host.name,
            "HOSTS_TEST_RECORD": str(self.record),
            "HOSTS_TEST_AGENT_S": str(self.agent_s),
            "TASKORCH_LEASE_S": str(self.lease_s),
            "COLUMNS": "200",
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        return env

    def argv(self, host: Host, args: Sequence[str]) -> list[str]:
        command = [sys.executable, "-m", "taskorch", *args]
        if not self.isolated or not host.hidden:
            return command
        hide = self.root / "hide.py"
        if not hide.exists():
            hide.write_text(HIDE)
        folders = [str(p) for p in host.hidden]
        return ["unshare", "--mount", "--propagation", "private", "--",
                sys.executable, str(hide), *folders, "--", *command]  # fmt: skip

    def cli(self, host: Host, *args: str, timeout_s: float = 120) -> str:
        result = subprocess.run(
            self.argv(host, args),
            env=self.env(host),
            cwd=host.workdir,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        assert result.returncode == 0, f"taskorch {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout

    def start(self, host: Host, label: str, *args: str) -> Proc:
        log = self.root / f"{host.name}-{label}-{len(self.processes)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                self.argv(host, args),
                env=self.env(host),
                cwd=host.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(f"{host.name}/{label}", popen, log)
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.kill9()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
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


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """``git daemon`` serving ``base`` on 127.0.0.1 (fetch and push); yields its base URL."""
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
         f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=10)


def read_runs(record: Path) -> list[tuple[str, str, str, str]]:
    """``(what, workflow, key, host)`` per line of the agent's record."""
    if not record.exists():
        return []
    return [
        (parts[0], parts[1], parts[2], parts[3])
        for parts in (line.split() for line in record.read_text().splitlines())
        if len(parts) == 4
    ]

"""The CLI on a SQLite database it cannot write: locked by another process for longer than the
busy timeout, or on a full disk. Every command ends (a generous deadline, never a hang) and a
failure is one line naming the database file and what to do, never a traceback; once space is
free again the database is whole and works."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from fakes.cli import ok, taskorch
from hosts.hosts import can_hide_folders
from taskorch.domain.errors import ConfigError
from taskorch.domain.models import NewTask
from taskorch.store import connector_for_url, open_store
from taskorch.store.sqlite import SqliteConnector

DEADLINE_S = 120.0


@contextmanager
def held_exclusively(path: Path) -> Iterator[None]:
    """Another program holding the database's write lock (``BEGIN EXCLUSIVE``) meanwhile."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.rollback()
        holder.close()


def assert_one_line_about(
    result: subprocess.CompletedProcess[str], path: Path, *words: str
) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def run_all(
    home: Path, commands: list[tuple[str, list[str]]]
) -> list[subprocess.CompletedProcess[str]]:
    """The commands (database URL, argv) at once; any hang fails the test."""
    with ThreadPoolExecutor(len(commands)) as pool:
        runs = [
            pool.submit(taskorch, *argv, home=home, database_url=url, timeout_s=DEADLINE_S)
            for url, argv in commands
        ]
        return [run.result() for run in runs]


def test_a_database_locked_too_long_is_one_line_and_the_command_exits(tmp_path: Path) -> None:
    """A write waits out the busy timeout, then says so in one line; a read goes on (WAL).
    A fresh database locked before it is set up (WAL not on yet, readers held out too) fails
    to open: one line, and the command exits (it once hung: the connection of the failed open
    was never closed, and its thread kept the process alive)."""
    home, db, fresh = tmp_path / "home", tmp_path / "taskorch.db", tmp_path / "fresh.db"
    asyncio.run(_one_task(f"sqlite:///{db}", "first task"))
    sqlite3.connect(fresh).close()
    url = f"sqlite:///{db}?timeout=1"
    with held_exclusively(db), held_exclusively(fresh):
        add, listed, fresh_list = run_all(
            home,
            [(url, ["task", "add", "blocked"]), (url, ["task", "list"]),
             (f"sqlite:///{fresh}?timeout=1", ["task", "list"])],
        )  # fmt: skip
    assert_one_line_about(add, db, "locked", "try again")
    assert "first task" in ok(listed)
    assert_one_line_about(fresh_list, fresh, "locked")


async def _one_task(url: str, title: str) -> None:
    store = await open_store(url, migrate=True)
    try:
        await store.create_task(NewTask.create(title))
    finally:
        await store.close()


def test_a_bad_timeout_in_the_database_url_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="timeout='x'"):
        connector_for_url(f"sqlite:///{tmp_path}/t.db?timeout=x")
    connector = connector_for_url(f"sqlite:///{tmp_path}/t.db?timeout=2.5")
    assert isinstance(connector, SqliteConnector)
    assert connector.busy_timeout_s == 2.5
    assert connector.path == tmp_path / "t.db"


FULL_DISK = """\
import json, os, subprocess, sys
disk, taskorch_env = sys.argv[1], json.loads(sys.argv[2])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", disk], check=True)
db = os.path.join(disk, "taskorch.db")
env = dict(taskorch_env, TASKORCH_HOME=os.path.join(disk, "home"),
           DATABASE_URL=f"sqlite:///{db}?timeout=2")

def run(*args):
    try:
        done = subprocess.run([sys.executable, "-m", "taskorch", *args], env=env, cwd=disk,
                              capture_output=True, text=True, timeout=120)
        return {"args": args, "code": done.returncode, "out": done.stdout, "err": done.stderr}
    except subprocess.TimeoutExpired:
        return {"args": args, "code": None, "out": "", "err": "HUNG"}

import asyncio
from taskorch.domain.models import NewTask
from taskorch.store import open_store

async def setup():
    store = await open_store(env["DATABASE_URL"], migrate=True)
    await store.create_task(NewTask.create("kept task"))
    await store.close()

asyncio.run(setup())
report = {}
filler = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
for size in (65536, 4096, 512, 1):  # down to the last crumbs
    try:
        while True:
            os.write(filler, b"x" * size)
    except OSError:
        pass
os.close(filler)
report["full"] = [run("task", "add", "lost task", "-d", "y" * 2000), run("task", "list")]
os.remove(os.path.join(disk, "filler"))
report["after"] = [run("task", "add", "after task")]
import sqlite3
connection = sqlite3.connect(db)
report["integrity"] = connection.execute("PRAGMA integrity_check").fetchone()[0]
report["titles"] = [row[0] for row in connection.execute("SELECT title FROM tasks")]
print(json.dumps(report))
"""


def test_a_full_disk_is_one_line_per_command_and_the_database_survives(tmp_path: Path) -> None:
    if not can_hide_folders(tmp_path):
        pytest.skip(
            "needs root and a private mount namespace (unshare --mount) for a small tmpfs "
            "to fill; not available here"
        )
    disk = tmp_path / "disk"
    disk.mkdir()
    driver = tmp_path / "full_disk.py"
    driver.write_text(FULL_DISK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL"))}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--",
         sys.executable, str(driver), str(disk), json.dumps(env)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for run in report["after"]:
        assert run["code"] == 0, run
    db = disk / "taskorch.db"
    add, listed = report["full"]
    assert add["code"] not in (0, None), add
    failure = subprocess.CompletedProcess(add["args"], add["code"], add["out"], add["err"])
    assert_one_line_about(failure, db, "free space")
    assert listed["code"] is not None, "task list hung"
    if listed["code"] != 0:  # a read may still work; if not, one line too
        result = subprocess.CompletedProcess([], listed["code"], listed["out"], listed["err"])
        assert_one_line_about(result, db, "free space")
    assert report["titles"] == ["kept task", "after task"]  # nothing half-written
    assert report["integrity"] == "ok"

"""An agent never reaches taskorch's data folder: it works outside it, and its environment names
neither taskorch's database nor its settings nor any path into the folder. The folder is its
owner's alone (0700), the config file and the SQLite database too (0600)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from agents.e2e import CLI_AGENT, CLI_TIMEOUT_S, REQUIREMENT, demo_repo, env_for, taskorch
from taskorch.settings import default_worktrees_root

RECORDING = """
import json, os
with open({seen!r}, "w") as f:
    json.dump({{"env": dict(os.environ), "cwd": os.getcwd()}}, f)
"""


def test_an_agent_gets_no_way_into_the_data_folder(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    home = (tmp_path / ".taskorch").absolute()
    seen = tmp_path / "seen.json"
    script = tmp_path / "recording_agent.py"
    script.write_text(CLI_AGENT + RECORDING.format(seen=str(seen)))
    taskorch(home, "agents", "add", "cli-1", "--command", f"{sys.executable} {script} {{prompt}}")
    env = env_for(home, None) | {
        "DATABASE_URL": f"sqlite:///{home / 'taskorch.db'}",
        "TASKORCH_CONFIG": str(home / "config.toml"),
        "TASKORCH_API_TOKEN": "a-secret-token",
        "MY_TOOL_DATA": str(home / "anything"),
        "PATH": f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    run = subprocess.run(
        [sys.executable, "-m", "taskorch", "run", REQUIREMENT, "--repo", str(repo), "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["state"] == "merged"

    record = json.loads(seen.read_text())
    agent_env, cwd = record["env"], Path(record["cwd"])
    assert not [k for k in agent_env if k.startswith(("TASKORCH_", "DB_", "DATABASE_URL"))]
    assert not [k for k, v in agent_env.items() if str(home) in v], "a path into the data folder"
    assert agent_env["PATH"] == os.environ["PATH"]  # only the entry inside the folder went
    assert not cwd.is_relative_to(home)
    assert cwd.is_relative_to(default_worktrees_root(home))


def test_the_data_folder_config_and_database_are_private(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    taskorch(home, "init", "--db", f"sqlite:///{home / 'taskorch.db'}")

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(home) == 0o700
    assert mode(home / "config.toml") == 0o600
    assert mode(home / "taskorch.db") == 0o600

    (home / "config.toml").chmod(0o644)  # loosened by hand: taken back at the next start
    home.chmod(0o755)
    taskorch(home, "task", "list")
    assert (mode(home), mode(home / "config.toml")) == (0o700, 0o600)

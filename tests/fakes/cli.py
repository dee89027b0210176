"""The ``taskorch`` CLI as a user runs it: a real subprocess with its own home folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def taskorch(
    *args: str,
    home: Path,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m taskorch ARGS`` in ``home``'s parent, with ``TASKORCH_HOME=home`` and no
    database or target repository settings inherited from the environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL")) and k not in _TARGET_ENV
    }
    env["TASKORCH_HOME"] = str(home)
    env["COLUMNS"] = "200"
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "taskorch", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=timeout_s,
        check=False,
    )


_TARGET_ENV = {"TASKORCH_REPO", "TASKORCH_MERGE_POLICY"}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The command's stdout, once it succeeded without a traceback."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout

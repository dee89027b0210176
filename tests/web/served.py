"""``taskorch serve`` as a user starts it, for the tests: a real subprocess on a free port
(``--port 0``; the URL is read from its first line) with its own data folder; ``stop()`` sends
SIGTERM. Plus ``taskorch`` CLI calls against the same data folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

T = TypeVar("T")
WAIT_S = 120.0
URL_LINE = re.compile(r"taskorch serving (http://\S+)")


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = WAIT_S) -> T:
    """Poll ``probe`` until it returns something (not None); fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    home: Path
    token: str | None = None
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        home: Path,
        *args: str,
        sim_duration_s: float = 0.2,
        token: str | None = None,
        database_url: str | None = None,
    ) -> Served:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        if token:
            env["TASKORCH_API_TOKEN"] = token
        if database_url:
            env["DATABASE_URL"] = database_url
        argv = [sys.executable, "-m", "taskorch", "--home", str(home), "serve", "--port", "0"]
        argv += ["--sim-duration", str(sim_duration_s), *args]
        # Unbuffered bytes: readline takes exactly the first line, and communicate() later
        # reads the pipe itself, so a buffer would swallow the lines read ahead with it.
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=0
        )
        assert process.stdout is not None
        first = process.stdout.readline().decode()
        match = URL_LINE.search(first)
        if match is None:
            process.kill()
            _, err = process.communicate(timeout=30)
            pytest.fail(f"taskorch serve did not start: {first!r} {err.decode()!r}")
        return cls(process, match.group(1), home, token, [first])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``body`` (``{}`` by default: every state change is JSON)."""
        response = httpx.post(self.url + path, json=body or {}, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def workflow_of(self, task_id: int) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            found = [w for w in self.get("/api/v1/workflows") if w["task_id"] == task_id]
            return found[0] if found else None

        return wait_for(f"a workflow for task {task_id}", probe)

    def wait_state(self, workflow_id: str, *states: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            detail: dict[str, Any] = self.get(f"/api/v1/workflows/{workflow_id}")
            return detail if detail["state"] in states else None

        return wait_for(f"{workflow_id} to reach {states}", probe)

    def stop(self, timeout_s: float = 90.0) -> tuple[int, str, str]:
        """SIGTERM, then the exit code and what it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=timeout_s)
        return self.process.returncode, "".join(self.output) + out.decode(), err.decode()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=30)


_CLEARED = {
    "DATABASE_URL",
    "TASKORCH_API_TOKEN",
    "TASKORCH_API_HOST",
    "TASKORCH_API_PORT",
    "NLP_PROVIDER",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "AGENTAPI_URL",
    "TASKORCH_TEST_COMMAND",
    "TASKORCH_REPO",
    "TASKORCH_MERGE_POLICY",
}


def status_json(home: Path, workflow_id: str) -> dict[str, Any]:
    """``taskorch status WORKFLOW --json``, read while no server runs."""
    data: dict[str, Any] = json.loads(taskorch_cli(home, "status", workflow_id, "--json"))
    return data


def taskorch_cli(home: Path, *args: str, database_url: str | None = None) -> str:
    """Run ``taskorch --home HOME ARGS``; its stdout (fails the test on a non-zero exit)."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    if database_url:
        env["DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "taskorch", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout

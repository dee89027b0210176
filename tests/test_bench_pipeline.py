"""bench/pipeline.py's cases as a user runs them (``--json``), small: every task is merged in
the one-process case and in the ``serve`` case, where two processes share the pending tasks
(each the daemon of ``taskorch serve``), with no step retried for a clash between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "pipeline.py"
N = 4


def test_two_serve_processes_merge_every_task(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable, str(BENCH), "--json", "--n", str(N), "--backend", "sqlite"]
    argv += ["--workers", "1", "--shape", "many-workflows", "--processes", "2", "--no-seed"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    cases = {c["case"]: c for c in map(json.loads, done.stdout.splitlines()) if c}
    assert cases["many-workflows"]["merged"] == N
    serve = cases["serve"]
    assert (serve["workers"], serve["merged"], serve["note"]) == (2, N, "2 processes x 2 at once")
    assert serve["tasks_per_s"] > 0
    assert serve["cpu_ms_per_subtask"] > 0
    assert "Traceback" not in done.stderr
    assert "retrying later" not in done.stderr

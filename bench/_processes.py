"""Benchmark helper processes that say "ready" once set up (connected, before any clock starts)
and begin when told "go"."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence


def start_ready(
    argv: Sequence[str], count: int, env: Mapping[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    """``count`` processes of ``argv``, each of which has said "ready"; all killed again when
    one does not."""
    children = [
        subprocess.Popen(
            list(argv), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{argv[1]} did not start")
    except BaseException:
        kill_all(children)
        raise
    return children


def kill_all(children: Sequence[subprocess.Popen[str]]) -> None:
    """Kill those still running (a run cut short), and reap them."""
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()

"""The guard between a worker and an agent's process tree (``python -I guard.py PID ARGV...``,
``PID`` the worker's).

An agent is often a tree: a CLI that starts a shell that starts a test runner, some of them in
sessions of their own. The worker ends the tree on cancel, timeout and zombie recovery; but a worker
killed with SIGKILL ends nothing, and the kernel's parent-death signal reaches only a direct child.
So the worker's direct child is this guard: the kernel sends it SIGTERM when the worker dies, and
the guard then ends everything below it, the process group and the descendants that left it
(found by walking ``/proc``; the guard is their subreaper, so even orphans stay below it), before
it exits. It ends the tree in the same way when the agent
exits first (nothing an agent starts outlives its subtask), and when it is itself told to stop.

Standard library only, run by path with ``-I``: it starts in milliseconds and imports nothing of
taskorch. Its exit code is the agent's (128 + the signal's number for an agent ended by one).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 2.0


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process, from ``/proc``."""
    found: dict[int, tuple[int, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[0] != b"Z":  # a zombie has ended already
            found[int(entry)] = (int(fields[1]), int(fields[2]))
    return found


def descendants(root: int, group: int | None = None) -> list[int]:
    """Every process below ``root`` (children first) and, with ``group``, every other member of
    that process group; ``root`` itself never."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    if group is not None:
        seen = set(found)
        found += [p for p, (_, g) in table.items() if g == group and p != root and p not in seen]
    return found


def end_tree(root: int, group: int) -> None:
    """SIGTERM everything below ``root`` and in its ``group`` (not ``root``: it reports the
    agent's exit); SIGKILL what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in descendants(root, group):
            _send(pid, sig)
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + GRACE_S
            while time.monotonic() < deadline and descendants(root, group):
                _reap()
                time.sleep(0.02)
    _reap()


def _reap() -> None:
    """Collect our ended children (the agent, and orphans we are the subreaper of)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _send(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def main(args: list[str]) -> int:
    parent, argv = int(args[0]), args[1:]
    _arm_parent_death(parent)
    me = os.getpid()
    group = os.getpgrp()
    agent = subprocess.Popen(argv)  # inherits stdin, stdout, stderr, cwd, environment, group

    def stop(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the rest of a group signal
        end_tree(me, group)
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    code = agent.wait()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if descendants(me, group):
        end_tree(me, group)  # what the agent left running does not outlive it
    return code if code >= 0 else 128 - code


def _arm_parent_death(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        # Orphans below us (a daemon whose parent exited) become our children, not init's:
        # the walk of /proc still finds them.
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the worker died before the signal was armed
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except FileNotFoundError:
        sys.exit(127)

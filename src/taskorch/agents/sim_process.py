"""A simulated agent as a real child process (``python -m taskorch.agents.sim_process``).

It appends ``start <key> <time>`` and ``done <key> <time>`` lines to ``--record`` (fsynced), so a
test can count runs per subtask from the agent's side; ``--spawn-child`` leaves a grandchild
sleeping in its process group to prove the whole group is ended. Its output says "simulated".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def _record(path: str | None, line: str) -> None:
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim_process")
    parser.add_argument("--key", required=True)
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--record")
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--spawn-child", action="store_true")
    args = parser.parse_args(argv)
    _record(args.record, f"start {args.key} {time.time():.6f} {os.getpid()}")
    if args.spawn_child:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    time.sleep(args.duration)
    _record(args.record, f"done {args.key} {time.time():.6f} {os.getpid()}")
    print(f"simulated: {args.key} done by simulated subprocess agent")
    return int(args.exit_code)


if __name__ == "__main__":
    sys.exit(main())

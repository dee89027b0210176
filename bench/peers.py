"""taskorch against its peers: W1 and W2 on pgqueuer, DBOS and procrastinate, then one table.

W1 = 5,000 no-op jobs fanned out, then one join that runs after all of them (jobs/s = 5,001 /
wall); W2 = a chain of 500 jobs, each made ready by the one before (ms per step = wall / 500).
Dispatch latency is ready -> handler start. taskorch's own figures come from
``bench/throughput.py`` (W1 and W2 on SQLite and on PostgreSQL; W1 with 1 and with 2 worker
processes, as pgqueuer's W1 is tried with 1 and 2, W2 with 2; ``throughput.py`` itself shows 1, 2
and 4).

Each peer runs in a subprocess on a database of its own, dropped and created for every run
(``bench_pgqueuer``, ``bench_dbos``, ``bench_procrastinate`` on the server of
``TASKORCH_BENCH_DATABASE_URL``, default postgresql://postgres@127.0.0.1:5432/test), in the
configurations its module names, durability on (logged tables, synchronous_commit as the server
has it). Each cell is the best of up to ``--reps`` rounds, each round one run of every
configuration the system is tried in (taskorch's are ``TASKORCH_WORKERS``). The cells take turns,
round 1 of each before round 2 of any, so that every system meets the same moments of a machine
whose speed drifts; a cell whose runs took ``CELL_BUDGET_S`` gets no new round. The ratio
columns are taskorch / peer for jobs/s and peer / taskorch for ms/step, so > 1 always means
taskorch is ahead.

    pip install -e '.[bench]'
    python bench/peers.py                  # full sizes
    python bench/peers.py --quick          # W1 = 500, W2 = 50
    python bench/peers.py --only pgqueuer  # one peer (repeatable; "taskorch" for its rows)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Protocol, cast

PEERS = ("pgqueuer", "dbos", "procrastinate")
SYSTEMS = ("taskorch", *PEERS)
TASKORCH_BACKENDS = ("sqlite", "postgres")
TASKORCH_WORKERS = {"W1": (1, 2), "W2": (2,)}
"""Worker processes taskorch is tried with per workload: as many configurations as a peer gets at
most (pgqueuer's W1: 1 and 2 processes), so no system gets more tries per round than another."""
CELL_BUDGET_S = 60.0  # no further repetitions of a cell once its runs took this long
REPS = 5
"""Rounds per cell by default. A W1 run lasts about 0.3 s on a shared 2-core host, where one
system's runs spread by ±20 % from moment to moment: with 3 rounds, the best of one cell could be
a slow moment's while the other's was a quiet one's (W1 PostgreSQL against pgqueuer read 1.10x
once, 1.77x an hour later, same code). Five rounds bring each best near the system's own."""
Figures = dict[str, float]


class Measure(Protocol):
    def __call__(
        self, workload: str, backend: str, workers: int, *, size: int | None = None
    ) -> Figures: ...


@dataclass
class Row:
    workload: str
    system: str
    setup: str = ""
    figures: Figures | None = None
    note: str = ""
    runs: int = 0
    errors: list[str] = field(default_factory=list)
    every: list[Figures] = field(default_factory=list)
    """Every run's figures, in order (the table keeps the best; the progress line shows all)."""
    spent_s: float = 0.0
    """Time its runs took: no new round once it passes ``CELL_BUDGET_S``."""


def _better(workload: str, a: Figures, b: Figures | None) -> bool:
    if b is None:
        return True
    if workload == "W1":
        return a["subtasks_per_s"] > b["subtasks_per_s"]
    return a["ms_per_step"] < b["ms_per_step"]


def _peer_module(peer: str) -> ModuleType:
    return importlib.import_module(f"peers_lib.{peer}_peer")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


def _error_line(text: str) -> str:
    """The exception line of a child's traceback (or its last line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit|Timeout)\b.*:", line):
            return _one_line(line)
    return _one_line(lines[-1]) if lines else "no output"


def _run_peer_once(peer: str, workload: str, size: int, config: dict[str, int]) -> Figures:
    """One run in a fresh subprocess on a freshly created database."""
    command = [sys.executable, __file__, "--child", peer, workload, str(size), json.dumps(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return cast(Figures, json.loads(line.removeprefix("RESULT ")))
    raise RuntimeError(_error_line(done.stderr or done.stdout))


def _child(peer: str, workload: str, size: int, config_json: str) -> None:
    from peers_lib import common

    module = _peer_module(peer)
    url = common.recreate_database(module.DATABASE)
    try:
        result = module.run(workload, size, url, json.loads(config_json))
    finally:
        common.drop_database(module.DATABASE)
    print("RESULT " + json.dumps(result), flush=True)


@dataclass
class Cell:
    """One row of the table being measured: a round runs each of its configurations once."""

    row: Row
    configs: Sequence[object] = ()
    run: Callable[[object], Figures] = lambda config: {}
    describe: Callable[[object], str] = str
    failed: str = "failed"

    def round(self) -> None:
        began = time.monotonic()
        for config in self.configs:
            try:
                figures = self.run(config)
            except Exception as error:
                self.row.errors.append(f"{self.describe(config)}: {_one_line(error)}")
                continue
            self.row.runs += 1
            self.row.every.append(figures)
            if _better(self.row.workload, figures, self.row.figures):
                self.row.figures, self.row.setup = figures, self.describe(config)
        self.row.spent_s += time.monotonic() - began

    def finish(self) -> Row:
        if self.row.figures is None and not self.row.note:
            self.row.note = f"{self.failed} (" + "; ".join(dict.fromkeys(self.row.errors))[:300]
            self.row.note += ")"
        return self.row


def peer_cell(peer: str, workload: str, size: int) -> Cell:
    try:
        module = _peer_module(peer)
        system = f"{peer} {metadata.version(module.DISTRIBUTION)}"
    except Exception as error:  # not installed, or broken on import
        note = f"not installed ({type(error).__name__}: {_one_line(error)})"
        return Cell(Row(workload, peer, note=note))
    return Cell(
        Row(workload, system),
        module.configs(workload),
        lambda config: _run_peer_once(peer, workload, size, cast(dict[str, int], config)),
        lambda config: str(module.describe(config)),
    )


def taskorch_cells(workload: str, size: int) -> list[Cell]:
    try:
        measure = cast(Measure, importlib.import_module("throughput").measure)
    except Exception as error:
        note = f"not measured ({type(error).__name__}: {_one_line(error)})"
        return [Cell(Row(workload, "taskorch", note=note))]
    return [
        Cell(
            Row(workload, f"taskorch {backend}"),
            TASKORCH_WORKERS[workload],
            partial(_run_taskorch, measure, workload, backend, size),
            _workers,
            failed="not measured",
        )
        for backend in TASKORCH_BACKENDS
    ]


def _run_taskorch(
    measure: Measure, workload: str, backend: str, size: int, workers: object
) -> Figures:
    try:
        return measure(workload, backend, cast(int, workers), size=size)
    except Exception as error:
        raise RuntimeError(f"{type(error).__name__}: {_one_line(error)}") from error


def _workers(count: object) -> str:
    return f"{count} worker process" + ("es" if cast(int, count) > 1 else "")


def measure_workload(workload: str, systems: Sequence[str], size: int, reps: int) -> list[Row]:
    """Every system's cells, measured in turns: round r of each cell runs before round r + 1 of
    any, so all of them meet the same moments of a shared machine whose speed drifts."""
    cells: list[Cell] = []
    for system in systems:
        if system == "taskorch":
            cells += taskorch_cells(workload, size)
        else:
            cells.append(peer_cell(system, workload, size))
    for rep in range(reps):
        for cell in cells:
            if not rep or cell.row.spent_s <= CELL_BUDGET_S:
                cell.round()
    return [cell.finish() for cell in cells]


def _figure(workload: str, figures: Figures) -> str:
    if workload == "W1":
        return f"{figures['subtasks_per_s']:,.0f} jobs/s"
    return f"{figures['ms_per_step']:.2f} ms/step"


def _ratio(workload: str, taskorch: Row | None, peer: Figures) -> str:
    if taskorch is None or taskorch.figures is None:
        return "-"
    if workload == "W1":
        return f"{taskorch.figures['subtasks_per_s'] / peer['subtasks_per_s']:.2f}x"
    return f"{peer['ms_per_step'] / taskorch.figures['ms_per_step']:.2f}x"


def _latency(figures: Figures, key: str) -> str:
    return f"{figures[key]:.1f}" if key in figures else "-"


def print_table(rows: list[Row], sizes: dict[str, int]) -> None:
    headers = ["workload", "system", "configuration", "figure", "p50 ms", "p99 ms"]
    headers += [f"vs taskorch {backend}" for backend in TASKORCH_BACKENDS]
    lines = []
    for row in rows:
        label = f"{row.workload} ({sizes[row.workload]:,})"
        if row.figures is None:
            lines.append([label, row.system, row.note[:60], "-", "-", "-", "-", "-"])
            continue
        line = [label, row.system, row.setup, _figure(row.workload, row.figures)]
        line += [_latency(row.figures, "dispatch_p50_ms"), _latency(row.figures, "dispatch_p99_ms")]
        for backend in TASKORCH_BACKENDS:
            if row.system.startswith("taskorch"):
                line.append("")
                continue
            reference = next(
                (r for r in rows if r.workload == row.workload and r.system.endswith(backend)),
                None,
            )
            line.append(_ratio(row.workload, reference, row.figures))
        lines.append(line)
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *lines, strict=True)]
    right = {3, 4, 5, 6, 7}

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print()
    print(fmt(headers))
    print(fmt(["-" * w for w in widths]))
    for line in lines:
        print(fmt(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", choices=SYSTEMS, action="append", help="repeatable")
    parser.add_argument("--quick", action="store_true", help="W1 = 500, W2 = 50, one run each")
    parser.add_argument("--reps", type=int, help=f"runs per cell, best kept (default {REPS})")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        peer, workload, size, config = args.child
        _child(peer, workload, int(size), config)
        return
    sizes = {"W1": 500, "W2": 50} if args.quick else {"W1": 5000, "W2": 500}
    reps = args.reps or (1 if args.quick else REPS)
    systems = [s for s in SYSTEMS if not args.only or s in args.only]
    rows: list[Row] = []
    notes: list[str] = []
    print(
        f"peers benchmark: W1 = {sizes['W1']:,} + join, W2 = chain of {sizes['W2']:,}; "
        f"best of up to {reps} run(s); {os.cpu_count()} cores",
        flush=True,
    )
    for workload in ("W1", "W2"):
        new = measure_workload(workload, systems, sizes[workload], reps)
        for row in new:
            status = _figure(workload, row.figures) if row.figures else row.note
            every = ", ".join(_figure(workload, f).split()[0] for f in row.every)
            failed = f"; {len(row.errors)} failed: {row.errors[-1]}" if row.errors else ""
            print(
                f"  {workload} {row.system}: {status} "
                f"({row.runs} run(s): {every}; {row.spent_s:.0f} s{failed})",
                flush=True,
            )
            if row.figures is None:
                notes.append(f"{row.system.split()[0]}: {row.note}")
            elif row.errors:
                notes.append(f"{row.system}: some runs failed: {row.errors[0]}")
        rows += new
    for note in dict.fromkeys(notes):
        print(note)
    print_table(rows, sizes)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

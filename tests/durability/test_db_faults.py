"""``serve`` and two workers on PostgreSQL ride out their sessions being terminated round after
round: serve keeps running, no subtask is lost, every workflow ends merged (none cancelled or
failed for a database blip). The full-size run is ``bench/db_faults.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from durability.db_fault_lab import run_lab

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]


async def test_serve_and_workers_ride_out_terminated_sessions(
    postgres_url: str, tmp_path: Path
) -> None:
    report = await run_lab(
        postgres_url, tmp_path, workflows=6, rounds=8, round_gap_s=0.75, deadline_s=180
    )
    print("\n" + report.summary())
    for name, lines in report.complaints.items():
        print(name, *lines, sep="\n  ")
    assert all(n >= 1 for n in report.rounds), report.summary()
    assert report.serve_alive, report.summary() + _tail(tmp_path, report)
    assert report.subtasks_lost == [], report.summary()
    assert report.count("cancelled") == 0, report.states
    assert report.count("failed") == 0, report.states
    assert report.count("merged") == report.tasks, report.states
    assert report.extra == [], report.states
    assert report.subtasks == 5 * report.tasks
    assert set(report.exits.values()) == {0}, report.summary() + _tail(tmp_path, report)
    # One line per outage, not one per retry. A round can be up to three outages of one
    # process: serve's own, its runner's, and its worker's (whose settle has connections of its
    # own); retrying, each is several attempts.
    for name, lines in report.complaints.items():
        assert len(lines) <= 3 * len(report.rounds) + 2, (name, lines)


def _tail(root: Path, report: object) -> str:
    return "".join(
        f"\n--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(root.glob("*.log"))
    )

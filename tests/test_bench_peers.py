"""bench/peers.py gives taskorch no fewer and no more tries per cell than its peers get."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("peers")


def test_taskorch_w1_is_tried_with_pgqueuers_process_counts(peers: ModuleType) -> None:
    pytest.importorskip("pgqueuer")
    pgqueuer = importlib.import_module("peers_lib.pgqueuer_peer")
    processes = tuple(config["processes"] for config in pgqueuer.configs("W1"))
    assert peers.TASKORCH_WORKERS["W1"] == processes


def test_each_round_runs_every_taskorch_configuration(
    peers: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []

    def measure(
        workload: str, backend: str, workers: int, *, size: int | None = None
    ) -> dict[str, float]:
        calls.append((backend, workers))
        return {"subtasks_per_s": float(workers), "ms_per_step": 1.0, "wall_s": 1.0}

    monkeypatch.setitem(sys.modules, "throughput", SimpleNamespace(measure=measure))
    rows = peers.measure_taskorch("W1", 10, 2)
    assert calls == [("sqlite", 1), ("sqlite", 2)] * 2 + [("postgres", 1), ("postgres", 2)] * 2
    assert [row.runs for row in rows] == [4, 4]
    assert [row.setup for row in rows] == ["2 worker processes"] * 2

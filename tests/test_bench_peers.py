"""bench/peers.py gives taskorch and its peers the same tries per cell, in turns, and taskorch's
coordinator connects before its clock starts, as theirs do."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from taskorch.store import Store
from taskorch.store.postgres import PostgresConnector

BENCH = Path(__file__).resolve().parents[1] / "bench"
FIGURES = {"subtasks_per_s": 1.0, "ms_per_step": 1.0, "wall_s": 1.0}


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    pytest.importorskip("pgqueuer")
    return importlib.import_module("peers")


def test_taskorch_w1_is_tried_with_pgqueuers_process_counts(peers: ModuleType) -> None:
    pgqueuer = importlib.import_module("peers_lib.pgqueuer_peer")
    processes = tuple(config["processes"] for config in pgqueuer.configs("W1"))
    assert peers.TASKORCH_WORKERS["W1"] == processes


def test_the_systems_take_turns_round_by_round(
    peers: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []

    def measure(
        workload: str, backend: str, workers: int, *, size: int | None = None
    ) -> dict[str, float]:
        calls.append((f"taskorch {backend}", workers))
        return {**FIGURES, "subtasks_per_s": float(workers)}

    def run_peer(peer: str, workload: str, size: int, config: dict[str, int]) -> dict[str, float]:
        calls.append((peer, config["processes"]))
        return FIGURES

    monkeypatch.setitem(sys.modules, "throughput", SimpleNamespace(measure=measure))
    monkeypatch.setattr(peers, "_run_peer_once", run_peer)
    rows = peers.measure_workload("W1", ["taskorch", "pgqueuer"], 10, 2)
    one_round = [("taskorch sqlite", 1), ("taskorch sqlite", 2)]
    one_round += [("taskorch postgres", 1), ("taskorch postgres", 2)]
    one_round += [("pgqueuer", 1), ("pgqueuer", 2)]
    assert calls == one_round * 2
    assert [row.runs for row in rows] == [4, 4, 4]
    assert [row.setup for row in rows[:2]] == ["2 worker processes"] * 2


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_fan_outs_connections_open_before_the_clock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    throughput = importlib.import_module("throughput")
    connector = store.connector
    assert isinstance(connector, PostgresConnector)
    await throughput.open_writers(store)
    assert connector._pool is not None
    assert connector._pool.get_stats()["pool_size"] >= connector.parallel_writes == 2

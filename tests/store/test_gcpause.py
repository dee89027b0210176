"""The queue's pause of the cyclic garbage collector: shared by nested and concurrent batches,
ended by the last one out, and it leaves a collector that was already off as it was. A worker's
start-up heap is frozen once per process, and its young generation is sized for its batches
while it works."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

import taskorch.store.gcpause as gcpause
from taskorch.store.gcpause import freeze_long_lived, gc_paused, young_generation


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_and_restored_after(collector_on: None) -> None:
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer batch is still going
    assert gc.isenabled()


def test_restored_after_an_error(collector_on: None) -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on: None) -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()
    gc.enable()


async def test_concurrent_batches_share_one_pause(collector_on: None) -> None:
    first_out = asyncio.Event()

    async def short() -> None:
        with gc_paused():
            await asyncio.sleep(0)
        first_out.set()

    async def long() -> bool:
        with gc_paused():
            await first_out.wait()
            return gc.isenabled()  # the short batch ended first: still paused for this one

    _, enabled_midway = await asyncio.gather(short(), long())
    assert enabled_midway is False
    assert gc.isenabled()


def test_the_start_up_heap_is_frozen_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gcpause, "_frozen", False)
    gc.unfreeze()
    try:
        freeze_long_lived()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        later: list[list[int]] = [[] for _ in range(100)]
        freeze_long_lived()
        # What came later is collected as usual: still in the collector's generations, not in
        # the frozen one. (The frozen count itself may drop meanwhile: a frozen object that
        # dies, in this thread or another, leaves it.)
        assert any(each is later for each in gc.get_objects())
        assert gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_the_young_generation_is_sized_inside_and_restored_after(
    thresholds: tuple[int, int, int],
) -> None:
    with young_generation(20_000):
        assert gc.get_threshold() == (20_000, 10, 10)
        with young_generation(5_000):  # never smaller than it is
            assert gc.get_threshold() == (20_000, 10, 10)
        assert gc.get_threshold() == (20_000, 10, 10)  # the outer block is still going
    assert gc.get_threshold() == thresholds
    with young_generation(100):  # a small worker keeps the default
        assert gc.get_threshold() == thresholds


def test_the_thresholds_are_restored_after_an_error(thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), young_generation(20_000):
        raise RuntimeError("boom")
    assert gc.get_threshold() == thresholds


async def test_concurrent_workers_share_one_sizing(thresholds: tuple[int, int, int]) -> None:
    first_out = asyncio.Event()

    async def short() -> None:
        with young_generation(30_000):
            await asyncio.sleep(0)
        first_out.set()

    async def long() -> int:
        with young_generation(20_000):
            await first_out.wait()
            return gc.get_threshold()[0]  # the short one ended first: still sized for this one

    midway, _ = await asyncio.gather(long(), short())
    assert midway >= 20_000
    assert gc.get_threshold() == thresholds

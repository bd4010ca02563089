"""The store: one adapter per process; in the embedded mode a bounded TTL + LRU cache; the host's replay file."""

from __future__ import annotations

import multiprocessing
import tracemalloc
from pathlib import Path

import pytest

from cds_hooks.auth import StoreReplayStore
from hofhir.adapters.store import HostOnceStore, MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_values_expire_at_their_own_time() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.put("short", "a", 10)
    store.put("long", "b", 100)
    clock.now += 11
    assert store.get("short") is None
    assert store.get("long") == "b"
    assert len(store) == 1


def test_set_if_absent_admits_once_until_expiry() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert store.set_if_absent("k", "1", 5)
    assert not store.set_if_absent("k", "1", 5)
    clock.now += 5
    assert store.set_if_absent("k", "1", 5)


def test_increment_expires_from_the_first_increment() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert [store.increment("n", 10) for _ in range(3)] == [1, 2, 3]
    clock.now += 9
    assert store.increment("n", 10) == 4  # a later increment does not push the expiry back
    clock.now += 1
    assert store.increment("n", 10) == 1


def test_the_embedded_store_is_bounded_and_drops_the_least_recently_used() -> None:
    store = MemoryStore(max_entries=1_000)
    for i in range(5_000):
        store.put(f"card:{i}", "ho-risk", 7 * 24 * 3600)  # card-index entries live a week: nothing expires
        if i % 100 == 0:
            store.get("card:0")  # kept in use
    assert len(store) == 1_000
    assert store.get("card:0") == "ho-risk"
    assert store.get("card:1") is None
    assert store.get("card:4999") == "ho-risk"


def test_memory_stays_bounded_over_many_puts() -> None:
    tracemalloc.start()
    try:
        store = MemoryStore(max_entries=10_000)
        for i in range(40_000):  # full, and past the first clean-ups of the expiry heap
            store.put(f"card:{i}", "ho-risk", 3600)
        full, _ = tracemalloc.get_traced_memory()
        for i in range(40_000, 240_000):
            store.put(f"card:{i}", "ho-risk", 3600)
        later, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 10_000
    assert later - full < 100_000, (full, later)  # 200,000 more puts into a full store: no growth
    assert peak < 2 * full, (full, peak)


def test_lists_and_counts() -> None:
    store = MemoryStore()
    for i in range(5):
        store.push("dead", str(i), limit=3)
    assert store.items("dead") == ["4", "3", "2"] and store.length("dead") == 3
    store.incr("feedback", "ho-risk|accepted|")
    store.incr("feedback", "ho-risk|accepted|", 2)
    assert store.counts("feedback") == {"ho-risk|accepted|": 3}


def test_the_host_store_admits_a_key_once_across_instances_and_after_expiry(tmp_path: Path) -> None:
    clock = Clock()
    first = HostOnceStore(tmp_path / "replay.sqlite", clock=clock)
    second = HostOnceStore(tmp_path / "replay.sqlite", clock=clock)
    assert first.set_if_absent("jti", "1", 60)
    assert not second.set_if_absent("jti", "1", 60)
    clock.now += 60
    assert second.set_if_absent("jti", "1", 60)
    assert not first.set_if_absent("jti", "1", 60)


def _race(path: str, results: multiprocessing.Queue[bool]) -> None:  # type: ignore[type-arg]
    store = StoreReplayStore(HostOnceStore(path, busy_timeout_s=5.0))
    results.put(store.first_use("https://ehr.example.org", "the-jti", 300))


@pytest.mark.timeout(60)
def test_processes_racing_on_the_host_store_admit_exactly_one(tmp_path: Path) -> None:
    path = str(tmp_path / "replay.sqlite")
    HostOnceStore(path)  # the file and table exist before the race
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, results)) for _ in range(6)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=10)
    assert outcomes == [False] * 5 + [True]

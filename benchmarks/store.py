"""The embedded store over 200,000 puts: the per-call cost stays flat (no cliff) and memory stays bounded.

What a long-running embedded server did while it indexed every card it showed (7-day TTL, so nothing
expires during the run), and reads some back: the heaviest use the store has had (card uuids now carry
their topic, cds_hooks/card_ids.py; JWT ids and notification ids are what grows it now, one key per call).
Prints the mean cost per call for each block of 10,000 calls, the entries held and the process's resident
memory; the old store (a dict rebuilt past 100,000 entries) cost 61 ms a put at that point. Once the store is full (at --max-entries) each put also evicts the least
recently used entry, a one-time step up; from there the cost stays flat. Last, the cost of one replay check
in the host-wide SQLite file (the embedded mode's JWT id store under gunicorn).

    python benchmarks/store.py [--calls 200000] [--max-entries 200000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hofhir.adapters.store import HostOnceStore, MemoryStore

BLOCK = 10_000


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--max-entries", type=int, default=100_000, help="the store's bound (entries)")
    args = parser.parse_args()
    store = MemoryStore(max_entries=args.max_entries)
    means: list[float] = []
    print(f"{'calls':>8} {'µs/put (mean)':>14} {'µs/put (max)':>13} {'entries':>8} {'RSS MB':>7}")
    for block in range(args.calls // BLOCK):
        keys = [f"card:hofhir-patient-view:{uuid.uuid4()}" for _ in range(BLOCK)]
        worst = 0.0
        started = time.perf_counter()
        for i, key in enumerate(keys):
            t0 = time.perf_counter()
            store.put(key, "ho-risk", 7 * 24 * 3600)
            if i % 5 == 0:
                store.get(keys[i // 2])
            worst = max(worst, time.perf_counter() - t0)
        mean = (time.perf_counter() - started) / BLOCK
        means.append(mean)
        print(f"{(block + 1) * BLOCK:>8} {mean * 1e6:>14.2f} {worst * 1e6:>13.0f} {len(store):>8} {rss_mb():>7.1f}")
    first, last = statistics.mean(means[:3]), statistics.mean(means[-3:])
    print(
        f"mean per put: first 30k calls {first * 1e6:.2f} µs, last 30k calls {last * 1e6:.2f} µs ({last / first:.2f}×)"
    )
    # The embedded mode's replay check under gunicorn: one SQLite row per JWT id, shared by the host's processes.
    with tempfile.TemporaryDirectory() as folder:
        host = HostOnceStore(Path(folder) / "replay.sqlite")
        jtis = [f"auth:jti:{uuid.uuid4()}" for _ in range(BLOCK)]
        started = time.perf_counter()
        for jti in jtis:
            host.set_if_absent(jti, "1", 3600)
        print(f"replay check (SQLite, host-wide): {(time.perf_counter() - started) / BLOCK * 1e6:.1f} µs per JWT id")


if __name__ == "__main__":
    main()

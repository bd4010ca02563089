"""Hook latency over HTTP: every vignette posted to a running `hofhir serve` (embedded mode), repeatedly.

Prints p50 / p95 / p99 / max per hook next to the 500 ms the CDS Hooks spec asks for.
    python benchmarks/hook_latency.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dates import to_today
from tests.e2e.conftest import start_service
from tests.vignettes import cases, load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    proc, base = start_service({"HOFHIR_AUTH": "off", "HOFHIR_LOG_LEVEL": "WARNING"})
    try:
        bodies = []
        for case in cases():
            request, expect = load(case)
            bodies.append((expect["service_id"], to_today(request, expect["now"])))
        timings: dict[str, list[float]] = {}
        with httpx.Client(base_url=base, timeout=10) as client:
            for service, body in bodies:  # warm-up
                client.post(f"/cds-services/{service}", json=body)
            for _ in range(args.rounds):
                for service, body in bodies:
                    started = time.perf_counter()
                    response = client.post(f"/cds-services/{service}", json=body)
                    timings.setdefault(service, []).append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
        everything = sorted(t for values in timings.values() for t in values)
        print(f"{'service':28} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for service, values in [*sorted(timings.items()), ("all", everything)]:
            values = sorted(values)
            q = statistics.quantiles(values, n=100)
            print(f"{service:28} {len(values):5d} {q[49]:8.2f} {q[94]:8.2f} {q[98]:8.2f} {values[-1]:8.2f}")
        print("CDS Hooks asks for answers 'on the order of 500 ms'.")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()

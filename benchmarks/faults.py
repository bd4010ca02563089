"""Hook latency under faults, with real processes on loopback: a Redis, one `hofhir worker`, `hofhir serve` in
Redis mode with every call sent to the worker (HOFHIR_WORKER_MIN_RESOURCES=0), a steady open-loop rate.

Phases: normal; Redis SIGSTOPped (hung: connections open, nothing answers); the worker killed with -9.
Prints p50 / p99 / max per phase next to the deadline, and the fallbacks counted by the service.

    python benchmarks/faults.py [--deadline-ms 350] [--rate 20] [--seconds 10]
    python benchmarks/faults.py --sizes    # inline evaluation vs the worker round trip by request size
                                           # (how HOFHIR_WORKER_MIN_RESOURCES' default was chosen)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faultload import run_scenarios


def faults(args: argparse.Namespace) -> None:
    phases, fallbacks = run_scenarios(args.deadline_ms, args.rate, args.seconds, args.seconds, args.seconds)
    print(f"deadline {args.deadline_ms} ms, {args.rate:g} req/s open loop, {args.seconds:g} s per phase")
    print(f"{'phase':15} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'non-200':>8}  paths")
    for phase in phases:
        s = phase.summary()
        paths = ", ".join(f"{k} {v}" for k, v in sorted(s.get("paths", {}).items()))
        print(f"{s['phase']:15} {s['n']:5d} {s['p50']:8.1f} {s['p99']:8.1f} {s['max']:8.1f} {s['non200']:8d}  {paths}")
    print("fallbacks counted:", json.dumps(fallbacks, sort_keys=True))


def _inputs(n: int, patient: str) -> Any:
    """A patient with `n` relevant resources (alkaline phosphatase results, which the rules read)."""
    from hofhir.fhir.read import from_resources
    from hofhir.knowledge import default_knowledge

    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": patient, "gender": "male", "birthDate": "1980-01-01"},
        {
            "resourceType": "Condition",
            "id": "sci",
            "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "S24.111A"}]},
            "onsetDateTime": "2026-01-01",
        },
    ]
    for i in range(n):
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"alp-{i}",
                "status": "final",
                "subject": {"reference": f"Patient/{patient}"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "6768-6"}]},
                "valueQuantity": {"value": 100 + i % 50, "unit": "U/L"},
                "effectiveDateTime": f"2026-01-{1 + i % 28:02d}",
            }
        )
    return from_resources(resources, default_knowledge().terminology, "patient-view", patient)


def sizes(args: argparse.Namespace) -> None:
    import os

    from cds_hooks.dispatch import WorkerEvaluator, request_size
    from cds_hooks.settings import Settings
    from hofhir.clinical.evaluate import evaluate
    from hofhir.knowledge import default_knowledge
    from tests.processes import Worker, redis_server

    k = default_knowledge()
    now = datetime(2026, 2, 1, tzinfo=UTC)
    os.environ["HOFHIR_WORKER_MIN_RESOURCES"] = "0"
    with redis_server() as broker:
        worker = Worker({"HOFHIR_REDIS_URL": broker.url, "HOFHIR_WORKER_CONCURRENCY": "1"}, "sizes")
        try:
            worker.wait_ready()
            remote = WorkerEvaluator(Settings(redis_url=broker.url, auth=False), k)
            print(f"{'resources':>9} {'inline ms':>10} {'worker ms':>10}  (median of {args.rounds})")
            for n in (10, 100, 500, 1000, 2000, 5000):
                inline: list[float] = []
                via: list[float] = []
                for r in range(args.rounds + 1):
                    inputs = _inputs(n, f"size-{n}-{r}-{time.monotonic_ns()}")
                    t = time.perf_counter()
                    evaluate(inputs, now, k)
                    inline.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    outcome = remote.run(inputs, now, 10.0)
                    via.append((time.perf_counter() - t) * 1000)
                    assert outcome.path == "worker", outcome.path
                size = request_size(inputs)
                print(f"{size:9d} {statistics.median(inline[1:]):10.2f} {statistics.median(via[1:]):10.2f}")
        finally:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deadline-ms", type=int, default=350)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sizes", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.sizes:
        sizes(args)
    else:
        faults(args)


if __name__ == "__main__":
    main()

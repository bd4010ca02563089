"""Evaluate a 1,000-Observation bundle and print the time next to orjson.loads of the same bytes.

The ratio (whole evaluation / JSON parse) is the figure we track; the aim is under 3x.
The bundle is real Synthea data: Andrea_Dach's Patient and Conditions (stroke, an ALP series) with
Observations drawn from every Synthea bundle, re-pointed at that patient, until there are 1,000.
    python benchmarks/evaluate_bundle.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from hofhir.clinical.evaluate import evaluate
from hofhir.fhir.read import bundle_resources, from_resources
from hofhir.knowledge import load

SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "fhir-samples" / "synthea-r4-bundles"


def thousand_observation_bundle() -> bytes:
    base = orjson.loads(next(SYNTHEA.glob("Andrea_Dach_*.json")).read_bytes())
    resources = bundle_resources(base)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    keep = [r for r in resources if r["resourceType"] != "Observation"]
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    for path in sorted(SYNTHEA.glob("*.json")):
        if len(observations) >= 1000:
            break
        for r in bundle_resources(orjson.loads(path.read_bytes())):
            if r["resourceType"] == "Observation" and len(observations) < 1000:
                observations.append({**r, "subject": {"reference": f"Patient/{patient['id']}"}})
    entries = [{"fullUrl": f"urn:uuid:{r.get('id')}", "resource": r} for r in keep + observations[:1000]]
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    knowledge = load()
    raw = thousand_observation_bundle()
    now = datetime(2026, 11, 21, tzinfo=UTC)
    n_obs = sum(1 for e in orjson.loads(raw)["entry"] if e["resource"]["resourceType"] == "Observation")

    def parse() -> None:
        orjson.loads(raw)

    def whole() -> None:
        bundle = orjson.loads(raw)
        evaluate(from_resources(bundle_resources(bundle), knowledge.terminology), now, knowledge)

    timings: dict[str, list[float]] = {"orjson.loads": [], "evaluate (parse+select+validate+rules)": []}
    for _ in range(3):  # warm-up: model classes, regexes, caches
        whole()
    for _ in range(args.repeat):
        for name, fn in (("orjson.loads", parse), ("evaluate (parse+select+validate+rules)", whole)):
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    parse_ms = statistics.median(timings["orjson.loads"]) * 1000
    eval_ms = statistics.median(timings["evaluate (parse+select+validate+rules)"]) * 1000
    print(f"bundle: {len(raw) / 1e6:.2f} MB, {n_obs} Observations")
    print(f"orjson.loads                              median {parse_ms:8.2f} ms")
    print(f"evaluate (parse+select+validate+rules)    median {eval_ms:8.2f} ms")
    print(f"ratio                                     {eval_ms / parse_ms:8.2f}x  (aim: under 3x)")


if __name__ == "__main__":
    main()

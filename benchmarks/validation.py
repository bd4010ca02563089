"""Input validation cost when every resource is relevant: N serum ALP Observations, each one validated.

Prints, next to orjson.loads of the same bytes: a first evaluation (every resource new to this process:
tolerant R4B validation of each) and a repeated one (the same chart sent again, as an EHR does on every hook:
validation results come from the content-keyed cache). Bounded: --repeat rounds of each.
    python benchmarks/validation.py [--observations 1000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from hofhir.clinical.evaluate import evaluate
from hofhir.fhir import models
from hofhir.fhir.read import bundle_resources, from_resources
from hofhir.knowledge import load

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def alp_bundle(n: int, salt: str = "") -> bytes:
    patient = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1980-01-01"}
    sci = {
        "resourceType": "Condition",
        "id": "sci",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "S14.109A"}]},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "onsetDateTime": (NOW - timedelta(days=40)).isoformat(),
    }
    observations = [
        {
            "resourceType": "Observation",
            "id": f"alp{salt}{i}",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "6768-6", "display": "ALP"}]},
            "valueQuantity": {
                "value": 80 + i % 200,
                "unit": "U/L",
                "system": "http://unitsofmeasure.org",
                "code": "U/L",
            },
            "referenceRange": [{"low": {"value": 40, "unit": "U/L"}, "high": {"value": 130, "unit": "U/L"}}],
            "effectiveDateTime": (NOW - timedelta(hours=i)).isoformat(),
        }
        for i in range(n)
    ]
    entries = [{"resource": r} for r in [patient, sci, *observations]]
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    knowledge = load()
    raw = alp_bundle(args.observations)
    clear = getattr(models, "clear_cache", lambda: None)  # absent before the cache existed

    def whole() -> None:
        evaluate(from_resources(bundle_resources(orjson.loads(raw)), knowledge.terminology), NOW, knowledge)

    def first() -> None:
        clear()
        whole()

    for _ in range(2):
        first()  # warm-up: model classes, regexes
    parse = median_ms(lambda: orjson.loads(raw), args.repeat)
    cold = median_ms(first, args.repeat)
    warm = median_ms(whole, args.repeat)
    print(f"bundle: {len(raw) / 1e6:.2f} MB, {args.observations} relevant Observations (all validated)")
    print(f"orjson.loads                         median {parse:8.2f} ms")
    print(f"evaluate, first time (validate all)  median {cold:8.2f} ms   {cold / parse:6.2f}x")
    print(f"evaluate, same chart again (cached)  median {warm:8.2f} ms   {warm / parse:6.2f}x")


if __name__ == "__main__":
    main()

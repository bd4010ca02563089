"""Subscription write-back throughput: notifications per second to a written RiskAssessment.

    python benchmarks/writeback.py [--copies 20] [--threads 16] [--synthea 1] [--senders 4]

End to end against the test FHIR engine (tests/fhirserver: Medplum's in-memory router under Node):
the webhook (gunicorn, Redis mode) receives one R4 rest-hook notification per patient, queues the task
on Redis, a `hofhir worker` (HOFHIR_WORKER_ROLE=writeback: a pool of threads) reads the patient from the
engine, evaluates and writes the RiskAssessment. The notifications are sent by `--senders` concurrent
clients (a FHIR server delivers them from several threads; 1 sends them one after another, which
measures the webhook's latency more than the system's throughput). The clock runs from the first
notification sent to the last task finished; the engine is then checked for exactly one RiskAssessment
per patient.

Patients: every vignette's chart (shared/vignettes, dates moved to today), copied `--copies` times
under new ids (about ten resources each); optionally the Synthea patients too (71 to 542 resources).
Two rounds: the first writes every RiskAssessment; the second notifies again about unchanged data (the
write is skipped). CPU seconds of the worker and the engine per notification say which one bounds it.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import SHARED, Server, Worker, cpu_seconds
from tests.dates import to_today
from tests.fhirserver import run_fhir_server
from tests.processes import redis_server
from tests.vignettes import cases, load

SYNTHEA = SHARED / "fhir-samples" / "synthea-r4-bundles"
TASK = "hofhir.assess_patient"
_VIGNETTE_ID = re.compile(rb'(?<=["/])s(\d\d)-')


def vignette_bundles(copies: int) -> list[tuple[str, dict[str, Any]]]:
    """(patient id, transaction Bundle) for every vignette's chart, `copies` times under new ids."""
    out: list[tuple[str, dict[str, Any]]] = []
    for case in cases():
        request, expect = load(case)
        shifted = to_today(request, expect["now"])
        resources = [shifted["prefetch"]["patient"]]
        for value in shifted["prefetch"].values():
            if isinstance(value, dict) and value.get("resourceType") == "Bundle":
                resources += [e["resource"] for e in value.get("entry") or []]
        raw = orjson.dumps(resources)
        for copy in range(copies):
            renamed = orjson.loads(_VIGNETTE_ID.sub(rb"s\1c" + str(copy).encode() + b"-", raw))
            entries = [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in renamed
            ]
            out.append((renamed[0]["id"], {"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    return out


def notify(web: httpx.Client, patient: str, n: int) -> None:
    observation = {
        "resourceType": "Observation",
        "id": f"bench-{n}",
        "meta": {"versionId": "1"},
        "status": "final",
        "code": {"text": "notified observation"},
        "subject": {"reference": f"Patient/{patient}"},
    }
    response = web.put(f"/fhir/notifications/Observation/bench-{n}", json=observation)
    if response.status_code != 202:
        raise SystemExit(f"notification refused: {response.status_code} {response.text[:300]}")


def one_round(
    web: httpx.Client,
    worker: Worker,
    engine_pid: int,
    patients: list[str],
    first: int,
    timeout: float = 300,
    senders: int = 1,
    others: dict[str, int] | None = None,
) -> dict[str, float]:
    """One notification per patient; `others`: more processes whose CPU is reported (name -> pid)."""
    before = worker.finished(TASK)
    others = others or {}
    cpu_worker, cpu_engine = cpu_seconds(worker.process.pid), cpu_seconds(engine_pid)
    cpu_others = {name: cpu_seconds(pid) for name, pid in others.items()}
    cpu_senders = time.process_time()  # this process: the senders' threads (and the wait loop's polling)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, senders)) as pool:  # httpx.Client is shared across threads
        list(pool.map(lambda item: notify(web, item[1], first + item[0]), enumerate(patients)))
    sent = time.perf_counter() - started
    deadline = time.monotonic() + timeout
    while worker.finished(TASK) < before + len(patients):
        if time.monotonic() > deadline:
            raise SystemExit(f"write-back round did not finish in {timeout} s:\n{worker.log.read_text()[-2000:]}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    n = len(patients)
    extra = {
        f"{name}_cpu_ms_each": round((cpu_seconds(pid) - cpu_others[name]) / n * 1000, 2)
        for name, pid in others.items()
    }
    return extra | {
        "senders_cpu_ms_each": round((time.process_time() - cpu_senders) / n * 1000, 2),
        "notifications": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        "send_seconds": round(sent, 3),
        "worker_cpu_ms_each": round((cpu_seconds(worker.process.pid) - cpu_worker) / n * 1000, 2),
        "engine_cpu_ms_each": round((cpu_seconds(engine_pid) - cpu_engine) / n * 1000, 2),
    }


def count_assessments(base_url: str) -> tuple[int, int]:
    """(RiskAssessments on the engine, distinct patients they are about)."""
    with httpx.Client(timeout=60) as client:
        bundle = client.get(f"{base_url}/RiskAssessment", params={"_count": 1000}).json()
    subjects = [e["resource"]["subject"]["reference"] for e in bundle.get("entry", [])]
    return len(subjects), len(set(subjects))


def run(copies: int = 20, threads: int = 16, synthea: int = 0, senders: int = 4) -> dict[str, Any]:
    results: dict[str, Any] = {"threads": threads, "copies": copies, "senders": senders}
    populations = {"vignette-sized": vignette_bundles(copies)}
    if synthea:
        bundles = [orjson.loads(p.read_bytes()) for p in sorted(SYNTHEA.glob("*.json"))]
        populations["synthea"] = [("", b) for b in bundles for _ in range(synthea)]
    for name, bundles in populations.items():
        with run_fhir_server() as fhir, redis_server() as broker:
            patients = []
            for patient, bundle in bundles:
                answer = fhir.load_bundle(bundle)
                patients.append(patient or fhir.patient_ids[-1])
                del answer
            env = {
                "HOFHIR_REDIS_URL": broker.url,
                "HOFHIR_FHIR_BASE_URL": fhir.base_url,
                "HOFHIR_AUTH": "off",
                "HOFHIR_WORKER_ROLE": "writeback",
                "HOFHIR_WRITEBACK_CONCURRENCY": str(threads),
                "HOFHIR_LOG_LEVEL": "INFO",
            }
            worker = Worker(env, f"writeback-{name}", cpus=None)
            server = Server("cds_hooks.app:create_app()", env, f"webhook-{name}")
            try:
                with httpx.Client(base_url=server.base, timeout=30) as web:
                    # Warm-up (imports, the knowledge base, connections) on a patient left out of the rounds.
                    warm, patients = patients[-1], patients[:-1]
                    one_round(web, worker, fhir.process.pid, [warm], 10**6)
                    others = {"webhook": server.process.pid}
                    if broker.process is not None:
                        others["redis"] = broker.process.pid
                    first = one_round(web, worker, fhir.process.pid, patients, 0, senders=senders, others=others)
                    written, distinct = count_assessments(fhir.base_url)
                    first["risk_assessments"] = written
                    again = one_round(
                        web, worker, fhir.process.pid, patients, len(patients), senders=senders, others=others
                    )
                    after, _ = count_assessments(fhir.base_url)
                    puts = sum(1 for r in fhir.requests("PUT /fhir/RiskAssessment"))
            finally:
                server.stop()
                worker.stop()
            if not (written == distinct == len(set(patients)) + 1 == after):
                raise SystemExit(f"{name}: {written} RiskAssessments for {len(set(patients))} patients ({after} after)")
            results[name] = {
                "patients": len(patients),
                "first": first,
                "unchanged": again,
                "risk_assessment_puts": puts,
                "exactly_one_per_patient": True,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=20, help="copies of each vignette's patient")
    parser.add_argument("--threads", type=int, default=16, help="write-back threads in the worker")
    parser.add_argument("--synthea", type=int, default=0, help="also each Synthea patient this many times")
    parser.add_argument("--senders", type=int, default=4, help="concurrent clients sending the notifications")
    args = parser.parse_args()
    result = run(args.copies, args.threads, args.synthea, args.senders)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

"""Subscription notifications end to end: webhook -> Redis -> real worker -> real FHIR engine -> one RiskAssessment.

The sample notifications (shared/fhir-samples/subscriptions) are delivered as they are; the Encounters
they name are put in the FHIR engine for a Synthea patient with a spinal cord injury.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from tests.fhirserver import FhirTestServer
from tests.processes import RedisServer, Worker, redis_server
from tests.vignettes import shared_dir

SUBS = shared_dir() / "fhir-samples" / "subscriptions"
CARY = next((shared_dir() / "fhir-samples" / "synthea-r4-bundles").glob("Cary_OHara_*.json"))
BACKPORT_ENCOUNTER = "86009987-eabe-42bf-8c02-b112b18cb616"
SAMPLES = {
    "backport-r4": SUBS / "backport-ig" / "Bundle-r4-notification-id-only.json",
    "r4b": SUBS / "backport-ig" / "Bundle-r4b-notification-id-only.json",
    "r5": SUBS / "r5-core" / "Bundle-3945182f-d315-4dbf-9259-09d863c7e7da.json",  # id-only: the focus names the patient
}


@pytest.fixture(scope="module")
def engine(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.reset()
    fhir_server.load_bundle(Path(CARY))
    patient = fhir_server.patient_ids[0]
    for encounter_id in (BACKPORT_ENCOUNTER, "2"):
        encounter = {
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": f"Patient/{patient}"},
        }
        response = httpx.put(
            f"{fhir_server.base_url}/Encounter/{encounter_id}",
            json=encounter,
            headers={"Content-Type": "application/fhir+json"},
            timeout=10,
        )
        assert response.status_code in (200, 201), response.text
    return fhir_server


@pytest.fixture(scope="module")
def broker() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def worker(broker: RedisServer, engine: FhirTestServer) -> Iterator[Worker]:
    env = {
        "HOFHIR_REDIS_URL": broker.url,
        "HOFHIR_FHIR_BASE_URL": engine.base_url,
        "HOFHIR_AUTH": "off",
        "HOFHIR_WORKER_CONCURRENCY": "2",
        "HOFHIR_TASK_TIME_LIMIT_S": "30",
    }
    w = Worker(env, "writeback")
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def client(broker: RedisServer) -> FlaskClient:
    return create_app(Settings(redis_url=broker.url, auth=False)).test_client()


def forget_events(broker: RedisServer) -> None:
    client = redis.Redis.from_url(broker.url)
    for key in client.scan_iter("hofhir:notification:*"):
        client.delete(key)


def assessments(engine: FhirTestServer) -> list[dict[str, Any]]:
    patient = engine.patient_ids[0]
    bundle = httpx.get(f"{engine.base_url}/RiskAssessment", params={"subject": f"Patient/{patient}"}, timeout=10).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def patient_observation(patient: str, resource_id: str, version: str) -> dict[str, Any]:
    """An Observation about the patient, as an R4 rest-hook Subscription with a payload PUTs it."""
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "code": {"text": "notified observation"},
        "subject": {"reference": f"Patient/{patient}"},
        "meta": {"versionId": version},
    }


def writes(engine: FhirTestServer) -> int:
    return len(engine.requests("PUT /fhir/RiskAssessment"))


def done(worker: Worker) -> int:
    """Write-back tasks the worker finished (written, or found already current on the server)."""
    return worker.log.read_text().count('"task":"hofhir.assess_patient","state":"SUCCESS"')


def done_here() -> float:
    """Write-back tasks finished in this process (the embedded mode runs them on a local thread)."""
    return sum(
        REGISTRY.get_sample_value("hofhir_writeback_total", {"result": r}) or 0 for r in ("written", "unchanged")
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def deliver(client: FlaskClient, path: Path) -> dict[str, Any]:
    response = client.post("/fhir/notifications", data=path.read_bytes(), content_type="application/fhir+json")
    assert response.status_code in (200, 202), response.data
    result: dict[str, Any] = response.json
    return result


@pytest.mark.parametrize("form", list(SAMPLES))
def test_each_notification_form_leaves_exactly_one_risk_assessment(
    form: str, client: FlaskClient, engine: FhirTestServer, worker: Worker, broker: RedisServer
) -> None:
    # The R4, R4B and R5 samples describe the same event (subscription + event number): forget it between forms.
    forget_events(broker)
    before = done(worker)
    result = deliver(client, SAMPLES[form])
    assert result["form"] == form and result["queued"] == 1
    assert wait_for(lambda: done(worker) > before), worker.log.read_text()[-2000:]
    found = assessments(engine)
    assert len(found) == 1
    risk = found[0]["prediction"][0]["qualitativeRisk"]["coding"][0]["code"]
    assert risk in ("moderate", "high")  # Cary O'Hara: chronic paralysis due to a spinal cord lesion


def test_an_r4_rest_hook_put_of_a_resource_leaves_one_risk_assessment(
    client: FlaskClient, engine: FhirTestServer, worker: Worker
) -> None:
    patient = engine.patient_ids[0]
    observation = patient_observation(patient, "obs-1", "1")
    before = done(worker)
    response = client.put(
        "/fhir/notifications/Observation/obs-1",
        json=observation,
        headers={"X-Hofhir-Subscription": "Subscription/example"},
    )
    assert response.status_code == 202 and response.json["form"] == "r4-rest-hook"
    assert wait_for(lambda: done(worker) > before), worker.log.read_text()[-2000:]
    assert len(assessments(engine)) == 1


def drained(broker: RedisServer) -> bool:
    """The broker holds no task: none queued, none delivered and waiting for its ack (a retry included)."""
    client = redis.Redis.from_url(broker.url)
    queued = client.llen("hofhir") + client.llen("hofhir-writeback")  # write-back tasks have their own queue
    return queued == 0 and client.hlen("unacked") == 0


def test_the_same_notification_twice_is_one_task(
    client: FlaskClient, engine: FhirTestServer, worker: Worker, broker: RedisServer
) -> None:
    # The sample's patient is not on the engine: its task ends in the dead-letter list (a 404 is final),
    # which counts the tasks that ran.
    sample = SUBS / "backport-ig" / "Bundle-r4-notification-full-resource.json"
    dead = redis.Redis.from_url(broker.url)
    dead_before = dead.llen("hofhir:dead-letter")
    before = writes(engine)
    first = deliver(client, sample)
    second = deliver(client, sample)
    assert first["queued"] == 1
    assert second["queued"] == 0 and second["duplicates"] == 1
    # Wait until the first task has run and nothing is left to run: a duplicate task, had one been
    # queued, would still be in the broker or would have dead-lettered a second time.
    assert wait_for(lambda: dead.llen("hofhir:dead-letter") > dead_before and drained(broker)), worker.log.read_text()[
        -2000:
    ]
    assert dead.llen("hofhir:dead-letter") == dead_before + 1, "the duplicate queued no work"
    assert len(assessments(engine)) == 1
    assert writes(engine) == before


def test_two_notifications_for_one_patient_update_the_one_assessment(
    client: FlaskClient, engine: FhirTestServer, worker: Worker, broker: RedisServer, tmp_path: Path
) -> None:
    forget_events(broker)
    sample = (SUBS / "r5-core" / "Bundle-3945182f-d315-4dbf-9259-09d863c7e7da.json").read_text()
    paths = []
    for number in ("3", "4"):  # the next events of the same subscription about the same encounter
        path = tmp_path / f"event-{number}.json"
        path.write_text(sample.replace('"eventNumber":"2"', f'"eventNumber":"{number}"'))
        assert path.read_text() != sample
        paths.append(path)
    before = done(worker)
    results = [deliver(client, paths[0]), deliver(client, paths[0]), deliver(client, paths[1])]
    assert [r["queued"] for r in results] == [1, 0, 1] and results[1]["duplicates"] == 1
    assert wait_for(lambda: done(worker) >= before + 2, 40), worker.log.read_text()[-2000:]
    assert len(assessments(engine)) == 1


def test_handshake_and_heartbeat_are_answered_and_counted(client: FlaskClient) -> None:
    for name, kind in (
        ("Bundle-r4-notification-handshake.json", "handshake"),
        ("Bundle-r4-notification-heartbeat.json", "heartbeat"),
    ):
        result = deliver(client, SUBS / "backport-ig" / name)
        assert result["kind"] == kind and result["queued"] == 0
    metrics = client.get("/metrics").data.decode()
    assert 'hofhir_notifications_total{kind="handshake"}' in metrics


def test_a_fhir_server_503_then_200_ends_in_success(
    client: FlaskClient, engine: FhirTestServer, worker: Worker
) -> None:
    patient = engine.patient_ids[0]
    engine.fault(status=503, count=2, match="POST /fhir", method="POST")  # the batch read
    before = done(worker)
    observation = patient_observation(patient, "obs-503", "7")
    response = client.put("/fhir/notifications/Observation/obs-503", json=observation)
    assert response.status_code == 202
    assert wait_for(lambda: done(worker) > before, 40), worker.log.read_text()[-3000:]
    statuses = [r["status"] for r in engine.requests("POST /fhir", method="POST") if r["path"] == "/fhir"]
    assert statuses.count(503) == 2 and 200 in statuses
    assert len(assessments(engine)) == 1
    assert "retry" in worker.log.read_text().lower()


def test_bad_bodies_are_400_with_an_operation_outcome(client: FlaskClient) -> None:
    for body in (
        b"{not json",
        b'{"resourceType": "Patient"',
        b'{"resourceType": "Bundle", "type": "history", "entry": []}',
    ):
        response = client.post("/fhir/notifications", data=body, content_type="application/fhir+json")
        assert response.status_code == 400
        assert response.json["resourceType"] == "OperationOutcome"


def test_the_shared_secret_is_checked_when_configured(broker: RedisServer) -> None:
    secured = create_app(Settings(redis_url=broker.url, auth=False, notification_secret="s3cret")).test_client()
    body = (SUBS / "backport-ig" / "Bundle-r4-notification-heartbeat.json").read_bytes()
    assert secured.post("/fhir/notifications", data=body, content_type="application/fhir+json").status_code == 401
    ok = secured.post(
        "/fhir/notifications",
        data=body,
        content_type="application/fhir+json",
        headers={"X-Hofhir-Notification-Secret": "s3cret"},
    )
    assert ok.status_code == 200


def test_worker_logs_carry_no_patient_identifier(engine: FhirTestServer, worker: Worker) -> None:
    """Never log PHI: task ids and timings only, not the patient's id, URLs naming it, or card texts."""
    log = worker.log.read_text()
    assert "written back" in log, "the log was written"
    assert engine.patient_ids[0] not in log
    assert "heterotopic" not in log.lower()


def test_embedded_mode_writes_back_without_redis_or_workers(
    engine: FhirTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOFHIR_FHIR_BASE_URL", raising=False)  # the settings are passed down, not re-read
    embedded = create_app(Settings(auth=False, fhir_base_url=engine.base_url)).test_client()
    patient = engine.patient_ids[0]
    observation = patient_observation(patient, "obs-embedded", "1")
    before = done_here()
    response = embedded.put("/fhir/notifications/Observation/obs-embedded", json=observation)
    assert response.status_code == 202
    assert wait_for(lambda: done_here() > before, 20)
    assert len(assessments(engine)) == 1


def test_one_batch_read_per_notification_and_no_write_when_nothing_changed(
    client: FlaskClient, engine: FhirTestServer, worker: Worker
) -> None:
    patient = engine.patient_ids[0]
    engine.clear_requests()
    before = done(worker)
    response = client.put(
        "/fhir/notifications/Observation/obs-same", json=patient_observation(patient, "obs-same", "1")
    )
    assert response.status_code == 202
    assert wait_for(lambda: done(worker) > before), worker.log.read_text()[-2000:]
    sent = [f"{r['method']} {r['path']}" for r in engine.requests()]
    assert sent == ["POST /fhir"], f"one batch read and nothing written (the assessment is current): {sent}"


def test_an_assessment_changed_on_the_server_is_written_again_in_place(
    client: FlaskClient, engine: FhirTestServer, worker: Worker
) -> None:
    (risk,) = assessments(engine)
    edited = {**risk, "note": [{"text": "edited by someone else"}]}
    put = httpx.put(
        f"{engine.base_url}/RiskAssessment/{risk['id']}",
        json=edited,
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert put.status_code == 200, put.text
    engine.clear_requests()
    before = done(worker)
    patient = engine.patient_ids[0]
    response = client.put(
        "/fhir/notifications/Observation/obs-edit", json=patient_observation(patient, "obs-edit", "1")
    )
    assert response.status_code == 202
    assert wait_for(lambda: done(worker) > before), worker.log.read_text()[-2000:]
    assert [r["path"] for r in engine.requests("PUT /fhir/RiskAssessment")] == [f"/fhir/RiskAssessment/{risk['id']}"]
    (again,) = assessments(engine)
    assert again["id"] == risk["id"] and again["note"] != edited["note"]


def test_a_writeback_worker_on_threads_writes_one_assessment_however_many_tasks_race(
    engine: FhirTestServer,
) -> None:
    """HOFHIR_WORKER_ROLE=writeback: the write-back queue on a pool of threads. Ten tasks about a patient
    with no assessment yet run at once; the conditional create leaves exactly one."""
    from hofhir.worker.app import WRITEBACK_QUEUE, make_celery

    patient = f"race-{time.monotonic_ns()}"
    for resource in (
        {"resourceType": "Patient", "id": patient, "birthDate": "1980-01-01", "gender": "male"},
        {
            "resourceType": "Condition",
            "id": f"{patient}-sci",
            "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "90584004"}]},
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "onsetDateTime": time.strftime("%Y-%m-%d", time.gmtime(time.time() - 40 * 86400)),
        },
    ):
        put = httpx.put(
            f"{engine.base_url}/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers={"Content-Type": "application/fhir+json"},
            timeout=10,
        )
        assert put.status_code in (200, 201), put.text
    with redis_server() as own:
        env = {
            "HOFHIR_REDIS_URL": own.url,
            "HOFHIR_FHIR_BASE_URL": engine.base_url,
            "HOFHIR_AUTH": "off",
            "HOFHIR_WORKER_ROLE": "writeback",
            "HOFHIR_WRITEBACK_CONCURRENCY": "8",
        }
        threads = Worker(env, "threads", pool=None)
        try:
            threads.wait_ready()
            celery = make_celery(Settings.from_env({"HOFHIR_REDIS_URL": own.url}))
            for _ in range(10):
                celery.send_task("hofhir.assess_patient", args=[patient, {"focus": f"Patient/{patient}"}])
            assert wait_for(lambda: done(threads) >= 10, 40), threads.log.read_text()[-3000:]
            log = threads.log.read_text()
        finally:
            threads.stop()
    ready = next(orjson.loads(line) for line in log.splitlines() if '"worker ready"' in line)
    assert ready["pool"] == "thread" and ready["queues"] == [WRITEBACK_QUEUE], ready
    bundle = httpx.get(f"{engine.base_url}/RiskAssessment", params={"subject": f"Patient/{patient}"}, timeout=10)
    assert len(bundle.json().get("entry", [])) == 1

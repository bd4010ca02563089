"""Hook evaluation on real Celery workers over a real Redis: worker path, run-ahead cache, broker outage,
a worker killed mid-task, soft shutdown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask.testing import FlaskClient

from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from tests.dates import to_today
from tests.fhirserver import FhirTestServer
from tests.processes import RedisServer, Worker, redis_server
from tests.vignettes import check, load, shared_dir

CARY = next((shared_dir() / "fhir-samples" / "synthea-r4-bundles").glob("Cary_OHara_*.json"))


@pytest.fixture(autouse=True)
def every_call_to_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the worker path: send even vignette-sized requests to it."""
    monkeypatch.setenv("HOFHIR_WORKER_MIN_RESOURCES", "0")


@pytest.fixture(scope="module")
def broker() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def env_for(broker: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "HOFHIR_REDIS_URL": broker.url,
        "HOFHIR_AUTH": "off",
        "HOFHIR_WORKER_CONCURRENCY": "1",
        "HOFHIR_TASK_TIME_LIMIT_S": "6",
        **extra,
    }


@pytest.fixture(scope="module")
def worker(broker: RedisServer) -> Iterator[Worker]:
    w = Worker(env_for(broker), "hooks")
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


def client_for(broker_url: str, deadline_ms: int = 3000) -> FlaskClient:
    return create_app(Settings(redis_url=broker_url, auth=False, deadline_ms=deadline_ms)).test_client()


def test_a_hook_call_is_evaluated_on_the_worker_and_cached(broker: RedisServer, worker: Worker) -> None:
    client = client_for(broker.url)
    request, expect = load("s02")
    body = to_today(request, expect["now"])
    first = client.post("/cds-services/hofhir-patient-view", json=body)
    assert first.status_code == 200
    assert first.headers["X-Hofhir-Evaluated-By"] == "worker"
    assert check(first.json, expect) == []
    again = client.post(
        "/cds-services/hofhir-encounter-start",
        json=body | {"hook": "encounter-start", "context": body["context"] | {"encounterId": "e1"}},
    )
    assert again.headers["X-Hofhir-Evaluated-By"] == "cache", "encounter-start after patient-view reuses the evaluation"
    assert [c["summary"] for c in again.json["cards"]] == [c["summary"] for c in first.json["cards"]]


def test_redis_mode_evaluates_cheap_requests_inline_and_heavy_ones_on_a_worker(
    broker: RedisServer, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, expect = load("s03")
    body = to_today(request, expect["now"])
    monkeypatch.delenv("HOFHIR_WORKER_MIN_RESOURCES")
    cheap = client_for(broker.url).post("/cds-services/hofhir-patient-view", json=body)
    assert cheap.headers["X-Hofhir-Evaluated-By"] == "inline", "a vignette is far below the default threshold"
    assert check(cheap.json, expect) == []
    monkeypatch.setenv("HOFHIR_WORKER_MIN_RESOURCES", "3")
    heavy = client_for(broker.url).post("/cds-services/hofhir-patient-view", json=body)
    assert heavy.headers["X-Hofhir-Evaluated-By"] == "worker", "at the threshold the request goes to a worker"
    assert check(heavy.json, expect) == [], "the same answer whichever path ran"


def test_order_sign_after_order_select_reuses_the_work_and_different_inputs_do_not(
    broker: RedisServer, worker: Worker
) -> None:
    client = client_for(broker.url)
    request, expect = load("s04")
    body = to_today(request, expect["now"])
    select = client.post("/cds-services/hofhir-order-select", json=body)
    assert select.headers["X-Hofhir-Evaluated-By"] == "worker"
    sign_body = dict(body.items()) | {"hook": "order-sign"}
    sign_body["context"] = {k: v for k, v in body["context"].items() if k != "selections"}
    sign = client.post("/cds-services/hofhir-order-sign", json=sign_body)
    assert sign.headers["X-Hofhir-Evaluated-By"] == "cache"
    changed = sign_body | {
        "prefetch": body["prefetch"] | {"conditions": {"resourceType": "Bundle", "type": "searchset"}}
    }
    fresh = client.post("/cds-services/hofhir-order-sign", json=changed)
    assert fresh.headers["X-Hofhir-Evaluated-By"] == "worker"
    assert fresh.json["cards"] != sign.json["cards"], "without the HO history the THA risk is lower"


def test_with_the_broker_stopped_the_call_is_still_answered_within_the_deadline() -> None:
    with redis_server() as own:
        client = client_for(own.url, deadline_ms=350)
        request, expect = load("s01")
        body = to_today(request, expect["now"])
        own.stop()
        started = time.monotonic()
        response = client.post("/cds-services/hofhir-patient-view", json=body)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["X-Hofhir-Evaluated-By"] == "worker-fallback-inline"
    assert check(response.json, expect) == []
    assert elapsed < 0.5, f"{elapsed:.3f} s"
    metrics = client.get("/metrics").data.decode()
    assert 'hofhir_inline_fallbacks_total{reason="broker-unavailable"}' in metrics


def _risk_assessments(engine: FhirTestServer, patient: str) -> list[dict[str, object]]:
    bundle = httpx.get(f"{engine.base_url}/RiskAssessment", params={"subject": f"Patient/{patient}"}, timeout=10).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.25)
    return False


@pytest.fixture
def engine_with_cary(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.reset()
    fhir_server.load_bundle(Path(CARY))
    return fhir_server


def test_a_worker_killed_mid_task_is_finished_by_another_exactly_once(engine_with_cary: FhirTestServer) -> None:
    from hofhir.worker.app import make_celery

    engine = engine_with_cary
    patient = engine.patient_ids[0]
    with redis_server() as own:
        env = env_for(own, HOFHIR_FHIR_BASE_URL=engine.base_url)
        first = Worker(env, "doomed")
        first.wait_ready()
        engine.fault(delay_ms=4000, match=f"GET /fhir/Patient/{patient}", count=1)
        celery = _celery_for(own.url, make_celery)
        celery.send_task("hofhir.assess_patient", args=[patient, {"focus": f"Patient/{patient}"}])
        assert _wait_for(lambda: engine.requests(f"GET /fhir/Patient/{patient}"), 10), "the first worker took the task"
        first.kill()
        second = Worker(env, "survivor")
        try:
            second.wait_ready()
            found = _wait_for(lambda: _risk_assessments(engine, patient), 40)
            assert found, (
                first.log.read_text()[-1500:]
                + "\n----\n"
                + second.log.read_text()[-1500:]
                + str(engine.requests("RiskAssessment"))
            )
            # Nothing left to run: the queue is empty and no delivered message awaits its ack, so no
            # second write can still come.
            assert _wait_for(lambda: _drained(own.url), 30), second.log.read_text()[-1500:]
            assessments = _risk_assessments(engine, patient)
            writes = engine.requests("PUT /fhir/RiskAssessment")
        finally:
            second.stop()
    assert len(assessments) == 1
    assert len(writes) == 1, "the killed worker wrote nothing; the task ran to its end once"


def test_soft_shutdown_requeues_the_running_task(engine_with_cary: FhirTestServer) -> None:
    from hofhir.worker.app import make_celery

    engine = engine_with_cary
    patient = engine.patient_ids[0]
    with redis_server() as own:
        env = env_for(own, HOFHIR_FHIR_BASE_URL=engine.base_url, HOFHIR_SOFT_SHUTDOWN_S="1")
        first = Worker(env, "leaving")
        first.wait_ready()
        engine.fault(delay_ms=5000, match=f"GET /fhir/Patient/{patient}", count=1)
        celery = _celery_for(own.url, make_celery)
        celery.send_task("hofhir.assess_patient", args=[patient, {"focus": f"Patient/{patient}"}])
        assert _wait_for(lambda: engine.requests(f"GET /fhir/Patient/{patient}"), 10)
        started = time.monotonic()
        first.terminate()
        stopped_in = time.monotonic() - started
        second = Worker(env, "arriving")
        try:
            second.wait_ready()
            # Back on the queue at once (not after the visibility timeout of 18 s).
            assert _wait_for(lambda: _risk_assessments(engine, patient), 12), second.log.read_text()[-3000:]
        finally:
            second.stop()
    assert stopped_in < 20
    assert len(_risk_assessments(engine, patient)) == 1


def _celery_for(url: str, make_celery: object) -> object:
    return make_celery(Settings.from_env({"HOFHIR_REDIS_URL": url}))  # type: ignore[operator]


def _drained(url: str) -> bool:
    """The broker holds no task: none queued, none delivered and waiting for its ack (a retry included)."""
    import redis

    client = redis.Redis.from_url(url)
    return client.llen("hofhir") == 0 and client.hlen("unacked") == 0


def test_a_task_the_fhir_server_refuses_goes_to_the_dead_letter_list_with_the_outcome(
    fhir_server: FhirTestServer,
) -> None:
    import json

    import redis

    from hofhir.worker.app import make_celery

    with redis_server() as own:
        worker = Worker(env_for(own, HOFHIR_FHIR_BASE_URL=fhir_server.base_url), "refused")
        try:
            worker.wait_ready()
            celery = _celery_for(own.url, make_celery)
            celery.send_task("hofhir.assess_patient", args=["no-such-patient", {"focus": "Patient/no-such-patient"}])
            client = redis.Redis.from_url(own.url)
            assert _wait_for(lambda: client.llen("hofhir:dead-letter") == 1, 20), worker.log.read_text()[-2000:]
            assert _wait_for(lambda: _drained(own.url), 20), "no retry is pending"
            entries = [json.loads(e) for e in client.lrange("hofhir:dead-letter", 0, -1)]
        finally:
            worker.stop()
    assert len(entries) == 1, "a 404 is not retried"
    assert entries[0]["task"] == "hofhir.assess_patient"
    assert entries[0]["payload"]["operationOutcome"]["resourceType"] == "OperationOutcome"


def test_a_task_delivered_too_often_is_dead_lettered_instead_of_run(fhir_server: FhirTestServer) -> None:
    """The redelivery cap: with HOFHIR_MAX_DELIVERIES=0 every delivery is one too many, so the poison-task
    path runs: the task is parked in the dead-letter list and never reaches the FHIR server."""
    import redis

    from hofhir.worker.app import make_celery

    fhir_server.clear_requests()
    with redis_server() as own:
        worker = Worker(env_for(own, HOFHIR_FHIR_BASE_URL=fhir_server.base_url, HOFHIR_MAX_DELIVERIES="0"), "capped")
        try:
            worker.wait_ready()
            celery = _celery_for(own.url, make_celery)
            celery.send_task("hofhir.assess_patient", args=["p", {"focus": "Patient/p"}])
            client = redis.Redis.from_url(own.url)
            assert _wait_for(lambda: client.llen("hofhir:dead-letter") == 1, 20), worker.log.read_text()[-2000:]
        finally:
            worker.stop()
    assert fhir_server.requests("/fhir/Patient/p") == []

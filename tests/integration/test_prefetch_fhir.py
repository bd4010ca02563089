"""The prefetch matrix against a real FHIR engine: absent keys fetched, null, failed prefetch, paging,
server down (412) and a slow server (deadline: no cards, a counted miss)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_hooks.app import create_app
from cds_hooks.settings import Settings
from tests.fhirserver import FhirTestServer
from tests.vignettes import shared_dir

CARY = next((shared_dir() / "fhir-samples" / "synthea-r4-bundles").glob("Cary_OHara_*.json"))
TOKEN = "prefetch-test-token"


@pytest.fixture(scope="module")
def engine(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.reset()
    fhir_server.load_bundle(Path(CARY))
    return fhir_server


# ho-rules 1.1 §3a: Cary's SCI (2010-10-12) is years old today, outside the relevance window. The service
# runs on a clock 100 days after it, so that the ho-risk card proves the fetched conditions were used.
CARY_CLOCK = datetime(2011, 1, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(engine: FhirTestServer) -> FlaskClient:
    # The test engine listens on loopback: allowlisted, as a deployment allowlists its EHR's FHIR server.
    settings = Settings(auth=False, deadline_ms=5000, fetch_timeout_ms=3000, fhir_servers=(engine.base_url,))
    return create_app(settings, clock=lambda: CARY_CLOCK).test_client()


def request_for(
    engine: FhirTestServer, prefetch: dict[str, Any] | None = None, token: str | None = TOKEN
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": engine.base_url,
        "context": {"userId": "Practitioner/1", "patientId": engine.patient_ids[0]},
        "prefetch": prefetch or {},
    }
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "hofhir",
        }
    return body


def topics(response: Any) -> set[str]:
    return {c["source"]["topic"]["code"] for c in response.json["cards"]}


def test_absent_keys_are_fetched_with_the_bearer_token(engine: FhirTestServer, client: FlaskClient) -> None:
    engine.reset(keep_data=True)
    engine.require_auth(tokens=[TOKEN])
    try:
        response = client.post("/cds-services/hofhir-patient-view", json=request_for(engine))
        searches = engine.requests("Condition")
    finally:
        engine.reset(keep_data=True)
    assert response.status_code == 200, response.json
    assert "ho-risk" in topics(response)  # Cary O'Hara: chronic paralysis due to a spinal cord lesion
    assert searches and all(r["authorization"] == f"Bearer {TOKEN}" for r in searches)


def test_null_prefetch_is_not_fetched(engine: FhirTestServer, client: FlaskClient) -> None:
    engine.reset(keep_data=True)
    prefetch = dict.fromkeys(("conditions", "observations", "procedures", "medications"))
    response = client.post("/cds-services/hofhir-patient-view", json=request_for(engine, prefetch))
    assert response.status_code == 200
    assert response.json["cards"] == []  # no conditions: no population
    assert engine.requests("Condition") == [] and engine.requests("Observation") == []
    assert len(engine.requests("GET /fhir/Patient/")) == 1


def test_a_failed_prefetch_operation_outcome_is_fetched_again(engine: FhirTestServer, client: FlaskClient) -> None:
    engine.reset(keep_data=True)
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    prefetch = {"conditions": failed, "observations": None, "procedures": None, "medications": None}
    response = client.post("/cds-services/hofhir-patient-view", json=request_for(engine, prefetch, token=None))
    assert response.status_code == 200
    assert "ho-risk" in topics(response)
    assert len(engine.requests("GET /fhir/Condition")) >= 1


def test_paged_searches_are_followed_to_the_end(engine: FhirTestServer, client: FlaskClient) -> None:
    engine.reset(keep_data=True)
    engine.configure(page_size=3)
    try:
        response = client.post("/cds-services/hofhir-patient-view", json=request_for(engine, token=None))
        pages = engine.requests("Condition")
    finally:
        engine.reset(keep_data=True)
    assert response.status_code == 200
    assert "ho-risk" in topics(response)
    assert len(pages) >= 3, "Cary's 9 conditions come in pages of 3"


def test_fhir_server_down_is_412(client: FlaskClient) -> None:
    body = {
        "hook": "patient-view",
        "hookInstance": "x",
        "fhirServer": "http://127.0.0.1:9/fhir",
        "context": {"userId": "Practitioner/1", "patientId": "p"},
        "prefetch": {},
    }
    response = client.post("/cds-services/hofhir-patient-view", json=body)
    assert response.status_code == 412
    assert response.json["resourceType"] == "OperationOutcome"


def test_a_fhir_server_error_is_412_with_the_reason(engine: FhirTestServer, client: FlaskClient) -> None:
    engine.reset(keep_data=True)
    engine.fault(status=403, match="Condition", count=-1)
    try:
        response = client.post("/cds-services/hofhir-patient-view", json=request_for(engine, token=None))
    finally:
        engine.reset(keep_data=True)
    assert response.status_code == 412
    assert "conditions" in response.json["issue"][0]["diagnostics"]


def test_a_slow_fhir_server_ends_in_no_cards_within_the_deadline(engine: FhirTestServer) -> None:
    client = create_app(
        Settings(auth=False, deadline_ms=300, fetch_timeout_ms=250, fhir_servers=(engine.base_url,))
    ).test_client()
    engine.reset(keep_data=True)
    engine.fault(delay_ms=3000, match="Condition", count=-1)
    try:
        before = _misses(client)
        started = time.monotonic()
        response = client.post("/cds-services/hofhir-patient-view", json=request_for(engine, token=None))
        elapsed = time.monotonic() - started
    finally:
        engine.reset(keep_data=True)
    assert response.status_code == 200 and response.json == {"cards": []}
    assert elapsed < 1.5, f"answered after {elapsed:.2f} s"
    assert _misses(client) == before + 1


def _misses(client: FlaskClient) -> float:
    for line in client.get("/metrics").data.decode().splitlines():
        if line.startswith('hofhir_deadline_misses_total{service="hofhir-patient-view"}'):
            return float(line.split()[-1])
    return 0.0

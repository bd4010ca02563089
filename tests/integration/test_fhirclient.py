"""hofhir.adapters.fhirclient against a real FHIR engine (Medplum's in-memory router, tests/fhirserver)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hofhir.adapters.fhirclient import (
    BearerToken,
    FhirAuthError,
    FhirClient,
    FhirDeadlineExceeded,
    FhirError,
    FhirNotFound,
    FhirPagingError,
    FhirUnavailable,
    deadline_in,
)
from hofhir.adapters.smart_auth import BackendServicesAuth
from tests.fhirserver import FhirTestServer

pytestmark = pytest.mark.integration

SYNTHEA = Path(__file__).resolve().parents[3] / "shared" / "fhir-samples" / "synthea-r4-bundles"
# A 1910-born stroke patient: 305 Observations, 10 alkaline phosphatase results.
ANDREA_DACH = SYNTHEA / "Andrea_Dach_76f26ce3-5aac-4b16-ac35-321ff6a7f63c.json"
HOFHIR_RISK_ID = "urn:hofhir:risk-assessment"


@pytest.fixture(scope="module")
def patient_id(fhir_server: FhirTestServer) -> str:
    """Andrea Dach's Synthea transaction bundle, loaded once; her Patient id on the server."""
    if not ANDREA_DACH.exists():
        pytest.fail(f"sample data missing: {ANDREA_DACH}")
    response = fhir_server.load_bundle(ANDREA_DACH)
    assert response["type"] == "transaction-response"
    patients = [
        e["response"]["location"].split("/")[1]
        for e in response["entry"]
        if e["response"]["location"].startswith("Patient/")
    ]
    assert len(patients) == 1
    return patients[0]


@pytest.fixture(autouse=True)
def clean_engine(fhir_server: FhirTestServer) -> Iterator[None]:
    """Each test starts with no faults, an empty request log, open auth and default paging."""
    fhir_server.reset(keep_data=True)
    yield
    fhir_server.reset(keep_data=True)


@pytest.fixture
def client(fhir_server: FhirTestServer) -> Iterator[FhirClient]:
    with FhirClient(fhir_server.base_url, timeout=5.0, retries=2, backoff=0.01) as c:
        yield c


def risk_assessment(patient: str, probability: float, identifier: str) -> dict[str, Any]:
    return {
        "resourceType": "RiskAssessment",
        "identifier": [{"system": HOFHIR_RISK_ID, "value": identifier}],
        "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "prediction": [{"outcome": {"text": "heterotopic ossification"}, "probabilityDecimal": probability}],
    }


# ---- reads and paging ----------------------------------------------------------------------------
def test_search_follows_next_links_through_every_page(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    observations = client.search("Observation", {"patient": patient_id, "_count": 50})

    assert len(observations) == 305  # the bundle's Observation count
    assert len({o["id"] for o in observations}) == 305
    assert {o["subject"]["reference"] for o in observations} == {f"Patient/{patient_id}"}
    pages = fhir_server.requests("GET /fhir/Observation")
    assert len(pages) == 7  # 6 full pages of 50 and one of 5
    assert "_offset=300" in pages[-1]["path"]


def test_search_resolves_relative_next_links(client: FhirClient, fhir_server: FhirTestServer, patient_id: str) -> None:
    fhir_server.configure(link_style="relative")
    first = client.search_bundle("Observation", {"patient": patient_id, "_count": 100})
    assert not next(link["url"] for link in first["link"] if link["relation"] == "next").startswith("http")

    alk_phos = client.search("Observation", {"patient": patient_id, "code": "http://loinc.org|6768-6", "_count": 3})

    assert len(alk_phos) == 10
    assert {o["code"]["coding"][0]["code"] for o in alk_phos} == {"6768-6"}


def test_search_stops_on_a_next_link_loop(client: FhirClient, fhir_server: FhirTestServer, patient_id: str) -> None:
    fhir_server.configure(link_style="loop")

    with pytest.raises(FhirPagingError, match="loop"):
        client.search("Observation", {"patient": patient_id, "_count": 100})
    assert len(fhir_server.requests("GET /fhir/Observation")) <= 3


def test_search_refuses_more_pages_than_allowed(client: FhirClient, patient_id: str) -> None:
    with pytest.raises(FhirPagingError, match="more than 2 pages"):
        client.search("Observation", {"patient": patient_id, "_count": 100}, max_pages=2)
    assert len(client.search("Observation", {"patient": patient_id, "_count": 100}, max_pages=4)) == 305


def test_read_returns_the_resource(client: FhirClient, patient_id: str) -> None:
    patient = client.read("Patient", patient_id)

    assert patient["resourceType"] == "Patient"
    assert patient["id"] == patient_id
    assert patient["birthDate"] == "1910-09-19"


def test_read_of_a_missing_resource_raises_not_found_at_once(client: FhirClient, fhir_server: FhirTestServer) -> None:
    with pytest.raises(FhirNotFound) as caught:
        client.read("Patient", "no-such-patient")

    assert caught.value.status == 404
    assert caught.value.operation_outcome is not None
    assert caught.value.operation_outcome["issue"][0]["code"] == "not-found"
    assert "HTTP 404" in str(caught.value) and "Not found" in str(caught.value)
    assert len(fhir_server.requests("/Patient/no-such-patient")) == 1  # no retry


# ---- writes --------------------------------------------------------------------------------------
def test_create_then_update_changes_the_stored_resource(client: FhirClient, patient_id: str) -> None:
    created = client.create(risk_assessment(patient_id, 0.2, str(uuid.uuid4())))
    assert created["id"]
    first_version = created["meta"]["versionId"]

    created["status"] = "amended"
    updated = client.update(created, if_match=first_version)

    assert updated["id"] == created["id"]
    assert updated["meta"]["versionId"] != first_version
    assert client.read("RiskAssessment", created["id"])["status"] == "amended"
    with pytest.raises(FhirError) as stale:  # optimistic locking: the old version no longer matches
        client.update(created, if_match=first_version)
    assert stale.value.status in (409, 412)


def test_update_by_identifier_updates_in_place_never_duplicates(client: FhirClient, patient_id: str) -> None:
    key = f"{patient_id}/ho-risk"
    first = client.update_by_identifier(risk_assessment(patient_id, 0.1, key), HOFHIR_RISK_ID)
    second = client.update_by_identifier(risk_assessment(patient_id, 0.7, key), HOFHIR_RISK_ID)
    third = client.update_by_identifier(risk_assessment(patient_id, 0.9, key), HOFHIR_RISK_ID)

    assert first["id"] == second["id"] == third["id"]
    stored = client.search("RiskAssessment", {"identifier": f"{HOFHIR_RISK_ID}|{key}"})
    assert len(stored) == 1
    assert stored[0]["prediction"][0]["probabilityDecimal"] == 0.9


def test_create_if_none_returns_the_existing_resource(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    key = str(uuid.uuid4())
    criteria = {"identifier": f"{HOFHIR_RISK_ID}|{key}"}
    made = client.create_if_none(risk_assessment(patient_id, 0.3, key), criteria)
    again = client.create_if_none(risk_assessment(patient_id, 0.8, key), criteria)

    assert again["id"] == made["id"]
    assert again["prediction"][0]["probabilityDecimal"] == 0.3  # untouched
    assert len(client.search("RiskAssessment", criteria)) == 1
    if_none_exist = fhir_server.requests(method="POST")[0]["ifNoneExist"]
    assert parse_qsl(if_none_exist) == [("identifier", f"{HOFHIR_RISK_ID}|{key}")]


def test_invalid_resource_raises_with_the_operation_outcome_without_retry(
    client: FhirClient, fhir_server: FhirTestServer
) -> None:
    with pytest.raises(FhirError) as caught:
        client.create({"resourceType": "Observation", "valueString": "no status, no code"})

    assert caught.value.status == 400
    assert not isinstance(caught.value, FhirUnavailable)
    issues = caught.value.operation_outcome["issue"]
    assert any(i.get("expression") == ["Observation.status"] for i in issues)
    assert "Observation.status" in str(caught.value)
    assert len(fhir_server.requests("POST /fhir/Observation")) == 1


def test_transaction_resolves_urn_uuid_references(client: FhirClient) -> None:
    patient_urn, obs_urn = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_urn,
                "resource": {"resourceType": "Patient", "gender": "female"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": obs_urn,
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "6768-6"}]},
                    "subject": {"reference": patient_urn},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }

    result = client.transaction(bundle)

    assert result["type"] == "transaction-response"
    patient_ref = result["entry"][0]["response"]["location"].split("/_history")[0]
    obs_id = result["entry"][1]["response"]["location"].split("/")[1]
    assert client.read("Observation", obs_id)["subject"]["reference"] == patient_ref


# ---- retries and deadlines -----------------------------------------------------------------------
def test_a_503_then_200_succeeds_after_one_retry(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    fhir_server.fault(status=503, count=1, match="/Patient/")

    assert client.read("Patient", patient_id)["id"] == patient_id
    assert [r["status"] for r in fhir_server.requests("/Patient/")] == [503, 200]


def test_a_persistent_503_raises_unavailable_after_every_try(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    fhir_server.fault(status=503, count=-1, match="/Patient/")

    with pytest.raises(FhirUnavailable) as caught:
        client.read("Patient", patient_id)

    assert caught.value.status == 503
    assert "after 3 attempts" in str(caught.value)
    assert caught.value.operation_outcome is not None
    assert len(fhir_server.requests("/Patient/")) == 3  # retries=2


def test_a_dropped_connection_is_retried(client: FhirClient, fhir_server: FhirTestServer, patient_id: str) -> None:
    fhir_server.fault(drop=True, count=1, match="/Patient/")

    assert client.read("Patient", patient_id)["id"] == patient_id
    assert [r["status"] for r in fhir_server.requests("/Patient/")] == ["dropped", 200]


def test_a_429_waits_for_retry_after(client: FhirClient, fhir_server: FhirTestServer, patient_id: str) -> None:
    fhir_server.fault(status=429, count=1, match="/Patient/", retry_after=1)

    started = time.monotonic()
    client.read("Patient", patient_id)

    assert time.monotonic() - started >= 0.95
    assert len(fhir_server.requests("/Patient/")) == 2


def test_a_create_is_not_repeated_after_a_500(client: FhirClient, fhir_server: FhirTestServer, patient_id: str) -> None:
    # The server may have stored it before failing: repeating a plain POST could duplicate it.
    fhir_server.fault(status=500, count=1, match="POST /fhir/RiskAssessment")

    with pytest.raises(FhirUnavailable) as caught:
        client.create(risk_assessment(patient_id, 0.5, str(uuid.uuid4())))

    assert caught.value.status == 500
    assert len(fhir_server.requests("POST /fhir/RiskAssessment")) == 1


def test_a_slow_answer_past_the_deadline_raises(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    fhir_server.fault(delay_ms=3000, count=-1, match="/Patient/")

    started = time.monotonic()
    with pytest.raises(FhirDeadlineExceeded):
        client.read("Patient", patient_id, deadline=deadline_in(0.5))

    assert 0.45 <= time.monotonic() - started < 1.5


def test_the_deadline_bounds_retries_and_pages_together(fhir_server: FhirTestServer, patient_id: str) -> None:
    # Every page is slowed to 500 ms: a 1 s budget cannot cover seven pages (3.5 s).
    fhir_server.fault(delay_ms=500, count=-1, match="GET /fhir/Observation")
    with FhirClient(fhir_server.base_url, timeout=5.0, retries=5, backoff=0.01) as client:
        started = time.monotonic()
        with pytest.raises(FhirDeadlineExceeded):
            client.search("Observation", {"patient": patient_id, "_count": 50}, deadline=deadline_in(1.0))
        assert time.monotonic() - started < 2.0

    # A backoff that would end past the deadline is not slept through.
    fhir_server.clear_faults()
    fhir_server.fault(status=503, count=-1, match="/Patient/")
    with FhirClient(fhir_server.base_url, retries=5, backoff=2.0) as client:
        started = time.monotonic()
        with pytest.raises(FhirDeadlineExceeded, match="HTTP 503"):
            client.read("Patient", patient_id, deadline=deadline_in(0.5))
        assert time.monotonic() - started < 0.5


# ---- auth ----------------------------------------------------------------------------------------
def test_a_bearer_token_is_sent_and_a_missing_one_gets_401(fhir_server: FhirTestServer, patient_id: str) -> None:
    fhir_server.require_auth(tokens=["s3cret-token"])

    with FhirClient(fhir_server.base_url, auth=BearerToken("s3cret-token"), backoff=0.01) as client:
        assert client.read("Patient", patient_id)["id"] == patient_id
    assert fhir_server.requests("/Patient/")[-1]["authorization"] == "Bearer s3cret-token"

    with FhirClient(fhir_server.base_url, backoff=0.01) as anonymous, pytest.raises(FhirAuthError) as caught:
        anonymous.read("Patient", patient_id)
    assert caught.value.status == 401
    assert caught.value.operation_outcome is not None

    with FhirClient(fhir_server.base_url, auth=BearerToken("wrong-token"), backoff=0.01) as wrong:
        with pytest.raises(FhirAuthError) as caught:
            wrong.read("Patient", patient_id)
        assert "wrong-token" not in str(caught.value) and "wrong-token" not in repr(wrong)
    assert len(fhir_server.requests("/Patient/")) == 3  # 401 with a static token is not retried


def _key_pair(alg: str) -> tuple[str, dict[str, Any]]:
    """A private key (PEM) and its public JWK, for a backend-services client."""
    if alg == "RS384":
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(65537, 2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ec.generate_private_key(ec.SECP384R1())
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, {**jwk, "kid": f"{alg.lower()}-key", "alg": alg}


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_backend_services_token_is_fetched_cached_and_refreshed(
    fhir_server: FhirTestServer, patient_id: str, alg: str
) -> None:
    pem, jwk = _key_pair(alg)
    fhir_server.require_auth(clients=[("hofhir-worker", {"keys": [jwk]})])
    auth = BackendServicesAuth(fhir_server.token_url, "hofhir-worker", pem, jwk["kid"], alg=alg, scope="system/*.rs")

    with FhirClient(fhir_server.base_url, auth=auth, backoff=0.01) as client:
        client.read("Patient", patient_id)
        client.search("Observation", {"patient": patient_id, "_count": 200})
        assert len(fhir_server.requests("POST /auth/token")) == 1  # one token for all three requests
        sent = {r["authorization"] for r in fhir_server.requests("/fhir/")}
        assert len(sent) == 1 and sent.pop().startswith("Bearer ")

        fhir_server.revoke_tokens()  # as if the token had expired early: 401, new token, same call
        assert client.read("Patient", patient_id)["id"] == patient_id

    assert [r["status"] for r in fhir_server.requests("POST /auth/token")] == [200, 200]
    assert [r["status"] for r in fhir_server.requests("/Patient/")] == [200, 401, 200]


def test_backend_services_with_an_unregistered_key_is_refused(fhir_server: FhirTestServer, patient_id: str) -> None:
    _, registered = _key_pair("RS384")
    other_pem, _ = _key_pair("RS384")
    fhir_server.require_auth(clients=[("hofhir-worker", {"keys": [registered]})])
    auth = BackendServicesAuth(fhir_server.token_url, "hofhir-worker", other_pem, registered["kid"])

    with FhirClient(fhir_server.base_url, auth=auth, backoff=0.01) as client, pytest.raises(FhirAuthError) as caught:
        client.read("Patient", patient_id)

    assert caught.value.status == 401
    assert "invalid_client" in str(caught.value)
    assert fhir_server.requests("/fhir/") == []  # no FHIR request went out without a token


def test_backend_services_token_is_renewed_before_it_expires(fhir_server: FhirTestServer, patient_id: str) -> None:
    pem, jwk = _key_pair("ES384")
    fhir_server.require_auth(clients=[("hofhir-worker", {"keys": [jwk]})], token_ttl=2)
    auth = BackendServicesAuth(fhir_server.token_url, "hofhir-worker", pem, jwk["kid"], alg="ES384")

    with FhirClient(fhir_server.base_url, auth=auth, backoff=0.01) as client:
        client.read("Patient", patient_id)
        time.sleep(1.2)  # past the refresh margin (half of a 2 s token's life), before it expires
        client.read("Patient", patient_id)

    assert len(fhir_server.requests("POST /auth/token")) == 2
    assert [r["status"] for r in fhir_server.requests("/Patient/")] == [200, 200]  # never sent a stale one


def test_batch_read_is_one_request_with_every_match(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    ref = f"Patient/{patient_id}"
    expected = client.search("Observation", {"patient": patient_id, "_count": 50})
    fhir_server.clear_requests()
    (patient,), (observations, conditions) = client.batch_read(
        [("Patient", patient_id)],
        [("Observation", {"patient": ref, "_count": 1000}), ("Condition", {"patient": ref})],
    )
    assert [f"{r['method']} {r['path']}" for r in fhir_server.requests()] == ["POST /fhir"]
    assert patient["id"] == patient_id
    assert len(observations) == 305 and {o["id"] for o in observations} == {o["id"] for o in expected}
    assert conditions and all(c["resourceType"] == "Condition" for c in conditions)


def test_batch_read_finishes_a_search_the_batch_answered_in_part(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    """Servers do not page inside a batch: a total above what came is fetched with paged searches."""
    _, (observations,) = client.batch_read([], [("Observation", {"patient": f"Patient/{patient_id}", "_count": 40})])
    assert len(observations) == 305 and len({o["id"] for o in observations}) == 305
    assert len(fhir_server.requests("GET /fhir/Observation")) == 8  # 305 / 40, after the one batch


def test_batch_read_raises_what_the_single_request_would(client: FhirClient, fhir_server: FhirTestServer) -> None:
    with pytest.raises(FhirNotFound) as caught:
        client.batch_read([("Patient", "no-such-patient")], [])
    assert caught.value.status == 404
    assert len(fhir_server.requests("POST /fhir")) == 1, "a 404 is not retried"


def test_batch_read_retries_a_503_of_the_batch(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    fhir_server.fault(status=503, count=1, match="POST /fhir", method="POST")
    (patient,), _ = client.batch_read([("Patient", patient_id)], [])
    assert patient["id"] == patient_id
    assert [r["status"] for r in fhir_server.requests("POST /fhir")] == [503, 200]


def test_a_server_without_batches_gets_the_single_requests(
    client: FhirClient, fhir_server: FhirTestServer, patient_id: str
) -> None:
    fhir_server.fault(status=405, count=1, match="POST /fhir", method="POST")
    (patient,), (conditions,) = client.batch_read(
        [("Patient", patient_id)], [("Condition", {"patient": f"Patient/{patient_id}"})]
    )
    assert patient["id"] == patient_id and conditions
    assert fhir_server.requests(f"GET /fhir/Patient/{patient_id}") and fhir_server.requests("GET /fhir/Condition")


# ---------- connections pinned to the checked addresses (DNS rebinding) ----------


def test_a_pinned_client_connects_to_its_addresses_whatever_the_name_resolves_to(
    fhir_server: FhirTestServer, patient_id: str
) -> None:
    """The name does not resolve at all; the client still reaches the engine at the address it was given."""
    pinned = fhir_server.base_url.replace("127.0.0.1", "fhir.pinned.invalid")
    with FhirClient(pinned, retries=0, connect_to=["127.0.0.1"]) as client:
        assert client.read("Patient", patient_id)["id"] == patient_id


def test_a_pinned_client_never_connects_where_the_name_now_resolves(fhir_server: FhirTestServer) -> None:
    """`localhost` resolves to the engine here; pinned to an address nothing answers at, the client fails
    instead of following the name (what a rebinding DNS answer would make it do)."""
    before = len(fhir_server.requests())
    rebound = fhir_server.base_url.replace("127.0.0.1", "localhost")
    # Pinned to 127.0.0.2, where nothing listens:
    with (
        FhirClient(rebound, timeout=0.3, retries=0, connect_to=["127.0.0.2"]) as client,
        pytest.raises(FhirUnavailable),
    ):
        client.read("Patient", "anything")
    assert len(fhir_server.requests()) == before
    # The same name, not pinned, reaches the engine:
    with FhirClient(rebound, retries=0) as unpinned, pytest.raises(FhirNotFound):
        unpinned.read("Patient", "does-not-exist")
    assert len(fhir_server.requests()) == before + 1

"""The CDS Hooks 2.0.1 HTTP contract through the Flask app: auth wiring, errors, CORS, feedback, spec examples."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from cds_hooks.app import create_app
from cds_hooks.feedback import card_key
from cds_hooks.settings import Settings
from cds_hooks.web import state_of
from tests.contract import response_problems
from tests.dates import to_today
from tests.vignettes import load, shared_dir

SPEC = shared_dir() / "cds-hooks-examples" / "HL7+cds-hooks@v2.0.1"
ISSUER = "https://ehr.example.org"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def secured(key: ec.EllipticCurvePrivateKey) -> FlaskClient:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public |= {"kid": "k1", "alg": "ES384", "use": "sig"}
    env = {"HOFHIR_AUTH": "on", "HOFHIR_AUTH_ISSUERS": json.dumps({ISSUER: {"jwks": {"keys": [public]}}})}
    return create_app(Settings.from_env(env)).test_client()


@pytest.fixture(scope="module")
def open_client() -> FlaskClient:
    return create_app(Settings(auth=False)).test_client()


def token(key: ec.EllipticCurvePrivateKey, aud: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())} | claims
    return jwt.encode(payload, key, algorithm="ES384", headers={"kid": "k1", "typ": "JWT"})


def vignette(case: str) -> dict[str, Any]:
    request, expect = load(case)
    return to_today(request, expect["now"])


def test_every_endpoint_of_the_spec_needs_the_jwt(secured: FlaskClient, key: ec.EllipticCurvePrivateKey) -> None:
    assert secured.get("/cds-services").status_code == 401
    assert secured.post("/cds-services/hofhir-patient-view", json=vignette("s01")).status_code == 401
    feedback = {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    assert secured.post("/cds-services/hofhir-patient-view/feedback", json=feedback).status_code == 401
    ok = secured.get(
        "/cds-services", headers={"Authorization": f"Bearer {token(key, 'http://localhost/cds-services')}"}
    )
    assert ok.status_code == 200


def test_unknown_service_ids_answer_401_without_a_token_so_they_cannot_be_enumerated(
    secured: FlaskClient, key: ec.EllipticCurvePrivateKey
) -> None:
    for path in ("/cds-services/nope", "/cds-services/nope/feedback"):
        assert secured.post(path, json={}).status_code == 401
        signed = token(key, f"http://localhost{path}")
        known_to_be_missing = secured.post(path, json={}, headers={"Authorization": f"Bearer {signed}"})
        assert known_to_be_missing.status_code == 404  # only an authenticated caller learns an id is unknown


def test_a_401_says_nothing_about_why(secured: FlaskClient, key: ec.EllipticCurvePrivateKey) -> None:
    wrong_aud = token(key, "http://localhost/cds-services/other")
    response = secured.get("/cds-services", headers={"Authorization": f"Bearer {wrong_aud}"})
    assert response.status_code == 401
    assert response.data == b""


def test_aud_is_the_exact_url_called(secured: FlaskClient, key: ec.EllipticCurvePrivateKey) -> None:
    url = "http://localhost/cds-services/hofhir-patient-view"
    good = secured.post(
        "/cds-services/hofhir-patient-view",
        json=vignette("s01"),
        headers={"Authorization": f"Bearer {token(key, url)}"},
    )
    assert good.status_code == 200 and good.json["cards"]
    other = secured.post(
        "/cds-services/hofhir-order-sign", json=vignette("s05"), headers={"Authorization": f"Bearer {token(key, url)}"}
    )
    assert other.status_code == 401


def test_a_replayed_token_is_refused(secured: FlaskClient, key: ec.EllipticCurvePrivateKey) -> None:
    bearer = {"Authorization": f"Bearer {token(key, 'http://localhost/cds-services')}"}
    assert secured.get("/cds-services", headers=bearer).status_code == 200
    assert secured.get("/cds-services", headers=bearer).status_code == 401


def test_cors_preflight_needs_no_token_and_allows_the_headers(secured: FlaskClient) -> None:
    response = secured.options(
        "/cds-services/hofhir-patient-view",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"{not json", "application/json", 400, "malformed JSON"),
        (b"[]", "application/json", 400, "JSON object"),
        (b'{"hook": "order-sign", "hookInstance": "x", "context": {}}', "application/json", 400, "'hook' must be"),
        (b'{"hook": "patient-view", "context": {}}', "application/json", 400, "hookInstance"),
        (
            b'{"hook": "patient-view", "hookInstance": "x", "context": {"userId": "Practitioner/1"}}',
            "application/json",
            400,
            "context.patientId",
        ),
        (
            b'{"hook": "patient-view", "hookInstance": "x", "context": {"userId": "u", "patientId": "p"}, "fhirAuthorization": {"access_token": "t"}}',
            "application/json",
            400,
            "requires 'fhirServer'",
        ),
        (
            b'{"hook": "patient-view", "hookInstance": "x", "context": {"userId": "u", "patientId": "p"}, "prefetch": {"patient": 3}}',
            "application/json",
            400,
            "prefetch.patient",
        ),
        (b"hook=patient-view", "application/x-www-form-urlencoded", 415, "Content-Type"),
    ],
)
def test_bad_requests_get_an_operation_outcome(
    open_client: FlaskClient, body: bytes, content_type: str, status: int, words: str
) -> None:
    response = open_client.post("/cds-services/hofhir-patient-view", data=body, content_type=content_type)
    assert response.status_code == status
    outcome = response.json
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"]


def test_unknown_service_is_404_and_oversize_is_413() -> None:
    client = create_app(Settings(auth=False, max_body_bytes=1000)).test_client()
    assert client.post("/cds-services/nope", json={}).status_code == 404
    big = client.post(
        "/cds-services/hofhir-patient-view", data=b"{" + b" " * 5000 + b"}", content_type="application/json"
    )
    assert big.status_code == 413 and big.json["resourceType"] == "OperationOutcome"


def test_a_chunked_body_over_the_limit_is_413_not_a_malformed_400() -> None:
    client = create_app(Settings(auth=False, max_body_bytes=1000)).test_client()
    body = b"{" + b" " * 5000 + b"}"
    response = client.post(
        "/cds-services/hofhir-patient-view",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn and the dev server set for chunked
    )
    assert response.status_code == 413 and "1000 bytes" in response.json["issue"][0]["diagnostics"]


class Trickle(io.BytesIO):
    """A chunked body as a server hands it over: a few bytes per read."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(7 if size is None or size < 0 else min(size, 7))


def test_a_chunked_body_read_in_pieces_is_read_whole(open_client: FlaskClient) -> None:
    body = json.dumps(vignette("s01")).encode()
    response = open_client.post(
        "/cds-services/hofhir-patient-view",
        input_stream=Trickle(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.json
    assert response.json["cards"]


def test_a_405_names_the_allowed_methods(open_client: FlaskClient) -> None:
    response = open_client.get("/cds-services/hofhir-patient-view")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"] and response.json["resourceType"] == "OperationOutcome"


def test_missing_prefetch_without_fhir_server_is_412(open_client: FlaskClient) -> None:
    body = vignette("s01")
    del body["prefetch"]["observations"]
    response = open_client.post("/cds-services/hofhir-patient-view", json=body)
    assert response.status_code == 412
    assert "observations" in response.json["issue"][0]["diagnostics"]


def test_null_prefetch_means_no_data_not_missing(open_client: FlaskClient) -> None:
    body = vignette("s01")
    body["prefetch"]["observations"] = None
    response = open_client.post("/cds-services/hofhir-patient-view", json=body)
    assert response.status_code == 200
    topics = {c["source"]["topic"]["code"] for c in response.json["cards"]}
    assert "ho-risk" in topics


def test_the_spec_example_request_is_accepted(open_client: FlaskClient) -> None:
    request = json.loads((SPEC / "input__pagecontent__index.md__ex02-request-patient-view.json").read_text())
    # The example names its prefetch 'patientToGreet' and a fhirServer we cannot reach: give the keys our services use.
    request.pop("fhirServer"), request.pop("fhirAuthorization")
    request["prefetch"] = {
        "patient": request["prefetch"]["patientToGreet"],
        "conditions": None,
        "observations": None,
        "procedures": None,
        "medications": None,
    }
    response = open_client.post("/cds-services/hofhir-patient-view", json=request)
    assert response.status_code == 200
    assert response.json == {"cards": []}


def test_every_response_meets_the_card_rules(open_client: FlaskClient) -> None:
    for case in ("s01", "s02", "s04", "s05", "s09", "s10"):
        request, expect = load(case)
        response = open_client.post(f"/cds-services/{expect['service_id']}", json=to_today(request, expect["now"]))
        assert response_problems(response.json) == [], case


def test_feedback_is_counted_per_topic_and_override_reason(open_client: FlaskClient) -> None:
    request, expect = load("s05")
    cards = open_client.post("/cds-services/hofhir-order-sign", json=to_today(request, expect["now"])).json["cards"]
    readiness = next(c for c in cards if c["source"]["topic"]["code"] == "ho-surgical-readiness")
    reason = readiness["overrideReasons"][0]
    feedback = {
        "feedback": [
            {
                "card": readiness["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-21T20:00:00Z",
                "overrideReason": {"reason": {"code": reason["code"], "system": reason["system"]}, "userComment": "x"},
            }
        ]
    }
    assert open_client.post("/cds-services/hofhir-order-sign/feedback", json=feedback).status_code == 200
    counts = open_client.get("/feedback").json["topics"]["ho-surgical-readiness"]
    assert counts["overridden"] >= 1 and counts["overrideReasons"][reason["code"]] >= 1
    metrics = open_client.get("/metrics").data.decode()
    assert 'hofhir_feedback_total{outcome="overridden",reason="early_wedge",topic="ho-surgical-readiness"}' in metrics


def test_feedback_reads_the_topic_from_the_uuid_until_the_ttl_and_old_indexed_cards_still_count() -> None:
    """A card's uuid names its topic for HOFHIR_CARD_INDEX_TTL_S (any process, no index); a card of an earlier
    version (a random uuid) counts by the index entry that version wrote, while that entry lives."""
    clock = {"now": datetime(2026, 11, 30, 9, 0, tzinfo=UTC)}
    app = create_app(Settings(auth=False, card_index_ttl_s=3600), clock=lambda: clock["now"])
    client = app.test_client()
    request, expect = load("s02")
    cards = client.post("/cds-services/hofhir-patient-view", json=to_today(request, expect["now"])).json["cards"]
    old = str(uuid.uuid4())
    state_of(app).store.put(card_key("hofhir-patient-view", old), "ho-surveillance", 3600)

    def send(card: str) -> None:
        item = {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-30T09:00:00Z"}
        assert client.post("/cds-services/hofhir-patient-view/feedback", json={"feedback": [item]}).status_code == 200

    send(cards[0]["uuid"])
    send(old)
    clock["now"] += timedelta(hours=1, minutes=1)
    send(cards[0]["uuid"])  # past the TTL
    counts = client.get("/feedback").json["topics"]
    assert counts[cards[0]["source"]["topic"]["code"]]["accepted"] == 1
    assert counts["ho-surveillance"]["accepted"] == 1 and counts["unknown-card"]["accepted"] == 1


def test_feedback_labels_are_only_the_offered_override_reasons(open_client: FlaskClient) -> None:
    """Made-up reason codes count as `other`: a client cannot grow /metrics or the counts without bound."""
    made_up: list[object] = [f"made-up-{i}" for i in range(50)] + [{"not": "a string"}]
    feedback = {
        "feedback": [
            {
                "card": f"card-{i}",
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-21T20:00:00Z",
                "overrideReason": {"reason": {"code": code, "system": "http://example.org"}},
            }
            for i, code in enumerate(made_up)
        ]
    }
    assert open_client.post("/cds-services/hofhir-order-sign/feedback", json=feedback).status_code == 200
    metrics = open_client.get("/metrics").data.decode()
    assert "made-up" not in metrics
    assert 'reason="other",topic="unknown-card"' in metrics
    counts = open_client.get("/feedback").json["topics"]["unknown-card"]
    assert set(counts["overrideReasons"]) <= {"other", "none"} and counts["overrideReasons"]["other"] >= 51


def test_bad_feedback_is_400(open_client: FlaskClient) -> None:
    bad = {"feedback": [{"card": "c", "outcome": "maybe", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    response = open_client.post("/cds-services/hofhir-patient-view/feedback", json=bad)
    assert response.status_code == 400 and "outcome" in response.json["issue"][0]["diagnostics"]


def test_spec_feedback_examples_are_accepted(open_client: FlaskClient) -> None:
    for name in (
        "ex19-feedback-accepted",
        "ex20-feedback-overridden-no-reason",
        "ex21-feedback-overridden-with-reason",
    ):
        body = json.loads((SPEC / f"input__pagecontent__index.md__{name}.json").read_text())
        assert open_client.post("/cds-services/hofhir-patient-view/feedback", json=body).status_code == 200, name


def test_openapi_documents_every_route(open_client: FlaskClient) -> None:
    doc = open_client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.")
    app = create_app(Settings(auth=False))
    routes = {
        r.rule.replace("<service_id>", "{id}").replace("<resource_type>", "{type}").replace("<resource_id>", "{id}")
        for r in app.url_map.iter_rules()
        if r.endpoint != "static"
    }
    assert routes <= set(doc["paths"]), routes - set(doc["paths"])


def test_health_and_readiness(open_client: FlaskClient) -> None:
    assert open_client.get("/healthz").json == {"status": "ok"}
    assert open_client.get("/readyz").status_code == 200


def test_rules_page_is_json_or_html(open_client: FlaskClient) -> None:
    assert "topics" in open_client.get("/rules", headers={"Accept": "application/json"}).json
    html = open_client.get("/rules", headers={"Accept": "text/html"}).data.decode()
    assert 'id="ho-risk"' in html and 'id="N-05"' in html


def test_no_input_makes_it_answer_500(open_client: FlaskClient) -> None:
    weird = [
        {
            "hook": "patient-view",
            "hookInstance": "i",
            "context": {"userId": "u", "patientId": "p"},
            "prefetch": {
                k: {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition", "code": 5}}]}
                for k in ("patient", "conditions", "observations", "procedures", "medications")
            },
        },
        {
            "hook": "order-sign",
            "hookInstance": "i",
            "context": {
                "userId": "u",
                "patientId": "p",
                "draftOrders": {
                    "resourceType": "Bundle",
                    "entry": [1, {"resource": {"resourceType": "ServiceRequest"}}],
                },
            },
            "prefetch": dict.fromkeys(("patient", "conditions", "observations", "procedures", "medications")),
        },
    ]
    for body in weird:
        response = open_client.post(f"/cds-services/hofhir-{body['hook']}", json=body)
        assert response.status_code < 500, response.data


def test_spec_example_jwt_verifies_against_the_spec_jwks() -> None:
    from cds_hooks.auth import AuthSettings, IssuerConfig, JwksCache, MemoryReplayStore, Verifier

    token_text = (SPEC / "input__pagecontent__index.md__example-signed-jwt-ES384.txt").read_text().strip()
    jwks = json.loads((SPEC / "input__pagecontent__index.md__ex24-jwks-public.json").read_text())
    claims = jwt.decode(token_text, options={"verify_signature": False})
    settings = AuthSettings(
        enabled=True, issuers={claims["iss"]: IssuerConfig(jwks=jwks)}, max_token_lifetime_seconds=10**9
    )
    verifier = Verifier(settings, JwksCache(), MemoryReplayStore())
    verified = verifier.verify(
        token_text, "https://cds.example.org/cds-services/some-service", now=float(claims["iat"])
    )
    assert verified["iss"] == claims["iss"]
    assert Path(SPEC).is_dir()

"""Never a 500, never silent, bounded (issue 10), through the Flask app: bad input gets a 4xx with an
OperationOutcome in plain words; limits answer 413; fhirServer is fetched only where it may be."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_hooks.app import create_app
from cds_hooks.auth import IssuerConfig
from cds_hooks.prefetch import (
    DeadlineMissed,
    FhirServerPolicy,
    PrefetchUnavailable,
    fhir_server_policy,
    resolve_prefetch,
)
from cds_hooks.settings import Settings
from hofhir.adapters.notifications import MAX_DEPTH
from hofhir.knowledge import default_knowledge
from tests import builders as b
from tests.dates import to_today
from tests.vignettes import load

PATIENT_VIEW = "/cds-services/hofhir-patient-view"


def app_client(**changes: Any) -> FlaskClient:
    return create_app(Settings(auth=False, **changes)).test_client()


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return app_client()


def vignette(case: str) -> dict[str, Any]:
    request, expect = load(case)
    return to_today(request, expect["now"])


def outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.data[:500]
    body = response.json
    assert body["resourceType"] == "OperationOutcome"
    diagnostics: str = body["issue"][0]["diagnostics"]
    assert "None" not in diagnostics and "<class" not in diagnostics and "Traceback" not in diagnostics
    return diagnostics


def topics(response: Any) -> dict[str, dict[str, Any]]:
    return {c["source"]["topic"]["code"]: c for c in response.json["cards"]}


# ---------- never a 500 ----------


def test_contained_true_and_a_wrong_conclusion_code_are_read_not_a_500(client: FlaskClient) -> None:
    med = b.medication_request(text="Indomethacin 25 MG Oral Capsule")
    med["contained"] = True
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr-1",
        "status": "final",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "78315"}]},
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "conclusionCode": 7,
    }
    body = b.request("patient-view", [b.patient(), b.condition("S14.109A"), med, report])
    body["hookInstance"] = str(uuid.uuid4())
    response = client.post(PATIENT_VIEW, json=body)
    assert response.status_code == 200
    assert "ho-risk" in topics(response)


def test_a_bogus_field_on_the_sci_condition_keeps_the_high_risk_card(client: FlaskClient) -> None:
    request = vignette("s01")
    for entry in request["prefetch"]["conditions"]["entry"]:
        entry["resource"]["bogusField"] = 1
    response = client.post(PATIENT_VIEW, json=request)
    assert response.status_code == 200
    risk = topics(response)["ho-risk"]
    assert risk["extension"]["org.hofhir.explanation"]["riskLevel"] == "high"


def test_an_unreadable_index_condition_answers_the_data_unreadable_card(client: FlaskClient) -> None:
    request = vignette("s01")
    for entry in request["prefetch"]["conditions"]["entry"]:
        entry["resource"].pop("subject")
    response = client.post(PATIENT_VIEW, json=request)
    assert response.status_code == 200
    card = topics(response)["data-unreadable"]
    assert card["indicator"] == "info"
    assert card["summary"].startswith("3 Condition records could not be read")
    assert card["links"][0]["url"].endswith("/rules#data-unreadable")


def test_the_rules_page_lists_data_unreadable(client: FlaskClient) -> None:
    codes = [t["code"] for t in client.get("/rules?format=json").json["topics"]]
    assert "data-unreadable" in codes
    assert 'id="data-unreadable"' in client.get("/rules", headers={"Accept": "text/html"}).data.decode()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"hook": "patient-view", "hookInstance": "x"}, "'context' must be an object (it is missing)"),
        ({"hook": "patient-view", "hookInstance": "x", "context": None}, "'context' must be an object (got nothing)"),
        ({"hookInstance": "x", "context": {}}, "(it is missing)"),
        ({"hook": 5, "hookInstance": "x", "context": {}}, "(got a number)"),
        (
            {
                "hook": "patient-view",
                "hookInstance": "x",
                "context": {"userId": "u", "patientId": "p"},
                "fhirServer": "https://ehr.example/fhir",
                "fhirAuthorization": {
                    "access_token": {"t": 1},
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "s",
                    "subject": "s",
                },
            },
            "fhirAuthorization.access_token must be a string (got an object)",
        ),
    ],
)
def test_errors_speak_plain_words(client: FlaskClient, body: dict[str, Any], words: str) -> None:
    assert words in outcome(client.post(PATIENT_VIEW, json=body), 400)


def test_a_notification_nested_too_deep_is_a_400_not_a_500(client: FlaskClient) -> None:
    inner: dict[str, Any] = {"url": "http://x", "valueString": "deep"}
    for _ in range(130):  # 260 JSON levels: past orjson's 254
        inner = {"url": "http://x", "extension": [inner]}
    body = {"resourceType": "Observation", "id": "deep", "status": "final", "code": {"text": "x"}, **inner}
    for method, path in (("POST", "/fhir/notifications"), ("PUT", "/fhir/notifications/Observation/deep")):
        response = client.open(path, method=method, data=json.dumps(body), content_type="application/fhir+json")
        assert f"deeper than {MAX_DEPTH}" in outcome(response, 400)


# ---------- limits ----------


def test_prefetch_over_the_entry_cap_is_413_naming_the_cap() -> None:
    capped = app_client(max_prefetch_entries=5)
    resources = [b.patient()] + [b.observation("6768-6", 100 + i, "U/L", id=f"o{i}") for i in range(6)]
    body = b.request("patient-view", resources)
    body["hookInstance"] = "x"
    words = outcome(capped.post(PATIENT_VIEW, json=body), 413)
    assert "HOFHIR_MAX_PREFETCH_ENTRIES=5" in words
    body["prefetch"]["observations"]["entry"] = body["prefetch"]["observations"]["entry"][:4]
    assert capped.post(PATIENT_VIEW, json=body).status_code == 200


def test_a_chunked_body_over_the_limit_is_413_not_400() -> None:
    small = app_client(max_body_bytes=2000)
    big = json.dumps({"hook": "patient-view", "pad": "x" * 5000}).encode()
    for path in (PATIENT_VIEW, "/fhir/notifications"):
        response = small.post(
            path,
            input_stream=io.BytesIO(big),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},  # as gunicorn and the dev server set it
        )
        assert "over 2000 bytes" in outcome(response, 413)
    fits = small.post(
        PATIENT_VIEW,
        input_stream=io.BytesIO(b'{"hook": "patient-view"}'),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert "hookInstance" in outcome(fits, 400)  # read whole, then checked: not cut, not 413


def test_405_carries_an_allow_header(client: FlaskClient) -> None:
    response = client.delete(PATIENT_VIEW)
    outcome(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"POST"}
    assert "PUT" in client.get("/fhir/notifications/Observation/1").headers["Allow"]


# ---------- the webhook ----------


def test_the_open_webhook_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("hofhir.notifications")
    logger.addHandler(caplog.handler)
    try:
        app_client()
        assert "webhook is OPEN" in caplog.text
        caplog.clear()
        create_app(Settings(auth=False, notification_secret="s3cret"))
        assert "webhook is OPEN" not in caplog.text
    finally:
        logger.removeHandler(caplog.handler)


def test_a_notification_over_the_entry_cap_is_413() -> None:
    capped = app_client(max_notification_entries=3)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Observation", "id": f"o{i}", "status": "final"}} for i in range(4)],
    }
    words = outcome(capped.post("/fhir/notifications", json=bundle), 413)
    assert "4 Bundle entries" in words and "HOFHIR_MAX_NOTIFICATION_ENTRIES=3" in words
    bundle["entry"] = bundle["entry"][:3]
    assert capped.post("/fhir/notifications", json=bundle).status_code in (200, 202)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_bodiless_puts_are_deduplicated_per_resource_and_time_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    from cds_hooks import notifications

    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(notifications, "_enqueue", lambda patient, event: queued.append((patient, event["focus"])))
    clock = Clock()
    webhook = create_app(Settings(auth=False, notification_dedup_s=60), clock=clock).test_client()

    def put(rid: str) -> Any:
        return webhook.put(f"/fhir/notifications/Patient/{rid}", headers={"X-Hofhir-Subscription": "sub-1"})

    assert put("p1").json["queued"] == 1
    assert put("p1").json["duplicates"] == 1  # the same resource again within the bucket
    assert put("p2").json["queued"] == 1  # another resource
    clock.now = clock.now.replace(minute=2)  # the next bucket
    assert put("p1").json["queued"] == 1
    assert queued == [("p1", "Patient/p1"), ("p2", "Patient/p2"), ("p1", "Patient/p1")]


# ---------- feedback metric labels ----------


def test_feedback_reason_labels_are_bounded_to_the_offered_codes(client: FlaskClient) -> None:
    items = [
        {
            "card": str(uuid.uuid4()),
            "outcome": "overridden",
            "outcomeTimestamp": "2026-01-01T00:00:00Z",
            "overrideReason": {"reason": {"code": code}},
        }
        for code in ["early_wedge", *(f"attacker-{i}" for i in range(50))]
    ]
    assert client.post(f"{PATIENT_VIEW}/feedback", json={"feedback": items}).status_code == 200
    metrics = client.get("/metrics").data.decode()
    assert 'reason="early_wedge"' in metrics and 'reason="other"' in metrics
    assert "attacker-" not in metrics


# ---------- which fhirServer may be fetched from ----------


def fake_dns(table: dict[str, str]) -> Any:
    def resolve(host: str, port: Any, type: int = 0) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror("no such host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], 443))]

    return resolve


@pytest.mark.parametrize(
    "server",
    [
        "http://127.0.0.1:8080/fhir",
        "http://localhost/fhir",
        "http://[::1]/fhir",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/fhir",
        "https://192.168.0.5/fhir",
        "https://internal.example/fhir",  # a name that resolves to a private address
        "https://nowhere.example/fhir",  # a name that does not resolve
        "http://0.0.0.0/fhir",
        "http://[::ffff:127.0.0.1]/fhir",  # IPv4-mapped
        "http://[64:ff9b::a00:1]/fhir",  # NAT64 of 10.0.0.1
        "http://[2002:7f00:1::1]/fhir",  # 6to4 of 127.0.0.1
        "http://224.0.0.1/fhir",  # multicast
    ],
)
def test_private_loopback_and_link_local_servers_are_refused(server: str) -> None:
    policy = FhirServerPolicy(resolve=fake_dns({"internal.example": "10.0.0.7", "localhost": "127.0.0.1"}))
    with pytest.raises(PrefetchUnavailable) as refused:
        policy.check(server)
    assert refused.value.status == 412


def test_public_or_allowlisted_servers_are_allowed() -> None:
    """A public server is fetched from the addresses it was checked at; a configured one is resolved as usual."""
    dns = fake_dns({"ehr.example": "93.184.216.34", "internal.example": "10.0.0.7"})
    assert FhirServerPolicy(resolve=dns).check("https://ehr.example/fhir") == ("93.184.216.34",)
    trusted = FhirServerPolicy(trusted=("https://internal.example/fhir/",), resolve=dns)
    assert trusted.check("https://INTERNAL.example/fhir") is None


def test_a_name_that_resolves_elsewhere_after_the_check_is_not_followed() -> None:
    """DNS rebinding: `localhost` answers the check with a public address, then (for the system resolver)
    with 127.0.0.1, where a server listens. The fetch connects only to the checked address, so the local
    server never hears from it; the call is a 412 (or a missed deadline), not a request to 127.0.0.1."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    heard: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            heard.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.end_headers()
            self.wfile.write(b'{"resourceType": "Bundle", "type": "searchset", "entry": []}')

        def log_message(self, *args: Any) -> None:
            pass

    local = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=local.serve_forever, daemon=True).start()
    try:
        request = vignette("s01")
        request.pop("prefetch")
        request["fhirServer"] = f"http://localhost:{local.server_address[1]}/fhir"
        policy = FhirServerPolicy(resolve=fake_dns({"localhost": "93.184.216.34"}))
        with pytest.raises((PrefetchUnavailable, DeadlineMissed)):
            resolve_prefetch(request, default_knowledge(), time.monotonic() + 1.0, 0.3, servers=policy)
        assert heard == []
        with pytest.raises(PrefetchUnavailable, match="not a Patient"):  # no policy (the CLI): heard, and refused
            resolve_prefetch(request, default_knowledge(), time.monotonic() + 5.0, 2.0)
        assert heard
    finally:
        local.shutdown()
        local.server_close()


def test_an_issuer_list_is_the_only_list_for_its_calls() -> None:
    issuers = {
        "https://ehr.example.org": IssuerConfig(
            jwks_url="https://ehr.example.org/jwks", fhir_servers=("https://ehr.example.org/fhir",)
        )
    }
    policy = fhir_server_policy(issuers, {"iss": "https://ehr.example.org"}, trusted=("https://other.example/fhir",))
    policy.check("https://ehr.example.org/fhir/")
    for server in ("https://other.example/fhir", "https://ehr.example.org/fhir2", "http://127.0.0.1/fhir"):
        with pytest.raises(PrefetchUnavailable, match="not one this caller's issuer may name"):
            policy.check(server)


def test_a_loopback_fhir_server_is_never_fetched_over_http(client: FlaskClient) -> None:
    request = vignette("s01")
    request.pop("prefetch")
    request["fhirServer"] = "http://127.0.0.1:1/fhir"
    words = outcome(client.post(PATIENT_VIEW, json=request), 412)
    assert "loopback, private or link-local" in words


def test_a_complete_prefetch_needs_no_check_of_the_fhir_server(client: FlaskClient) -> None:
    request = vignette("s01")
    request["fhirServer"] = "http://10.0.0.1/fhir"  # named, never called: the prefetch is complete
    assert client.post(PATIENT_VIEW, json=request).status_code == 200

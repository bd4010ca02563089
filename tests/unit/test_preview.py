"""The preview behind GET /: built-in examples shifted to today, pasted input of every kind, errors as
OperationOutcomes, cards rendered from markdown without raw HTML, feedback counted by topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from cds_hooks import examples
from cds_hooks.app import create_app
from cds_hooks.render_html import card_html, markdown, markdown_sections
from cds_hooks.settings import Settings
from tests.vignettes import load

TODAY = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return create_app(Settings(auth=False), clock=lambda: TODAY).test_client()


def test_the_page_and_its_files_are_served_with_a_strict_policy(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and b"/ui/app.js" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/ui/app.js").status_code == 200
    assert client.get("/ui/style.css").content_type.startswith("text/css")
    assert client.get("/ui/../pages.py").status_code == 404
    assert client.get("/ui/index.html").status_code == 404, "only the page's own two files are served"


def test_every_example_is_listed_with_its_service_and_evaluates(client: FlaskClient) -> None:
    listing = client.get("/preview/examples").json
    assert listing["auth"] is False
    ids = [e["id"] for e in listing["examples"]]
    assert "ex-sci-hip" in ids and len(ids) >= 4
    for e in listing["examples"]:
        answer = client.post("/preview", json={"example": e["id"]})
        assert answer.status_code == 200, answer.json
        assert answer.json["service"] == e["service"] and answer.json["hook"] == e["hook"]
        assert "<svg" in answer.json["timeline"]["svg"]


def test_an_example_is_shifted_to_today(client: FlaskClient) -> None:
    body = client.post("/preview", json={"example": "ex-sci-hip"}).json
    injury = datetime.fromisoformat(body["timeline"]["model"]["indexEvents"][0]["date"])
    assert TODAY - injury == timedelta(days=42), "the example was written 42 days after the injury"
    summaries = [c["summary"] for c in body["response"]["cards"]]
    assert any("suspected" in s for s in summaries), summaries
    assert "**" not in body["cardsHtml"] and "<strong>Why</strong>" in body["cardsHtml"]
    assert 'data-resource-type="ServiceRequest"' in body["cardsHtml"]


def test_as_of_moves_the_evaluation_day(client: FlaskClient) -> None:
    early = (TODAY - timedelta(days=60)).date().isoformat()  # before the injury
    body = client.post("/preview", json={"example": "ex-sci-hip", "asOf": early}).json
    assert body["now"].startswith(early)
    assert not any("suspected" in c["summary"] for c in body["response"]["cards"])
    bad = client.post("/preview", json={"example": "ex-sci-hip", "asOf": "next tuesday"})
    assert bad.status_code == 400 and bad.json["issue"][0]["expression"] == ["asOf"]


def test_a_pasted_request_bundle_or_ndjson_is_evaluated_by_the_service_of_its_hook(client: FlaskClient) -> None:
    request, expect = load("s05")  # order-sign
    as_of = expect["now"][:10]
    body = client.post("/preview", json={"text": json.dumps(request), "asOf": as_of}).json
    assert body["service"] == "hofhir-order-sign"
    resources = [request["prefetch"]["patient"]] + [
        e["resource"] for key in ("conditions", "observations") for e in request["prefetch"][key]["entry"]
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    from_bundle = client.post("/preview", json={"text": json.dumps(bundle), "asOf": as_of}).json
    assert from_bundle["service"] == "hofhir-patient-view" and from_bundle["response"]["cards"]
    ndjson = "\n".join(json.dumps(r) for r in resources)
    from_ndjson = client.post("/preview", json={"text": ndjson, "asOf": as_of}).json
    assert [c["summary"] for c in from_ndjson["response"]["cards"]] == [
        c["summary"] for c in from_bundle["response"]["cards"]
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "nothing to evaluate"),
        ('{"hook": ', "not JSON"),
        ('{"hook": "patient-view", "context": {}}', "hookInstance"),
        ('{"hook": "appointment-book", "hookInstance": "x", "context": {}}', "no service answers"),
        ('{"resourceType": "Patient"}\nnot json', "NDJSON line 2"),
        ("[1, 2]", "NDJSON"),
    ],
)
def test_bad_input_is_a_400_operation_outcome_in_plain_words(client: FlaskClient, text: str, words: str) -> None:
    answer = client.post("/preview", json={"text": text})
    assert answer.status_code == 400
    assert answer.json["resourceType"] == "OperationOutcome"
    assert words in answer.json["issue"][0]["diagnostics"]


def test_an_unknown_example_is_a_404(client: FlaskClient) -> None:
    assert client.post("/preview", json={"example": "nobody"}).status_code == 404


def test_feedback_on_a_previewed_card_is_counted_under_its_topic(client: FlaskClient) -> None:
    body = client.post("/preview", json={"example": "ex-sci-hip"}).json
    card = next(c for c in body["response"]["cards"] if c.get("overrideReasons"))
    reason = card["overrideReasons"][0]
    answer = client.post(
        f"/cds-services/{body['service']}/feedback",
        json={
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {"reason": reason},
                    "outcomeTimestamp": TODAY.isoformat(),
                }
            ]
        },
    )
    assert answer.status_code == 200
    topic = card["source"]["topic"]["code"]
    counts = client.get("/feedback").json["topics"][topic]
    assert counts["overridden"] >= 1 and counts["overrideReasons"][reason["code"]] >= 1


def test_with_auth_on_the_preview_wants_a_jwt_and_the_page_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOFHIR_AUTH", "on")
    monkeypatch.setenv(
        "HOFHIR_AUTH_ISSUERS", json.dumps({"https://ehr.example.org": {"jwks_url": "https://ehr.example.org/jwks"}})
    )
    client = create_app().test_client()
    assert client.get("/preview/examples").json["auth"] is True
    assert client.post("/preview", json={"example": "ex-sci-hip"}).status_code == 401
    assert b"HOFHIR_AUTH=off" in client.get("/").data, "the page says what to do"


def test_markdown_is_rendered_by_the_library_with_raw_html_disabled() -> None:
    html = markdown("**Why**\n\n- <script>alert(1)</script> ~~old~~\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<strong>Why</strong>" in html and "<script>" not in html and "&lt;script&gt;" in html
    assert "<s>old</s>" in html and "<table>" in html
    assert markdown("[x](javascript:alert(1))").count("href") == 0
    card = {
        "uuid": "u1",
        "summary": "<img src=x onerror=alert(1)>",
        "indicator": "warning",
        "source": {"label": "l", "url": "javascript:alert(1)"},
    }
    rendered = card_html(card, "svc")
    assert "<img" not in rendered
    assert markdown_sections("**Why**\n\n- one **bold**\n- two\n\n**Evidence**\n\n- e\n") == {
        "Why": ["one bold", "two"],
        "Evidence": ["e"],
    }


def test_example_dates_shift_by_whole_days_for_dates_and_exactly_for_date_times() -> None:
    doc = {"birthDate": "2000-01-31", "x": [{"onsetDateTime": "2026-01-01T10:00:00+00:00", "note": "2026-01-01"}]}
    moved = examples.shift_dates(doc, timedelta(days=2, hours=3))
    assert moved == {
        "birthDate": "2000-02-02",
        "x": [{"onsetDateTime": "2026-01-03T13:00:00+00:00", "note": "2026-01-01"}],
    }
    assert examples.latest_date(doc) == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_invalid_resources_are_left_out_and_listed(client: FlaskClient) -> None:
    alp = {"coding": [{"system": "http://loinc.org", "code": "6768-6"}]}
    bad = {"resourceType": "Observation", "id": "o1", "code": alp, "subject": {"reference": "Patient/p1"}}  # no status
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-01-01"}
    body = client.post("/preview", json={"text": json.dumps(patient) + "\n" + json.dumps(bad)}).json
    assert [r["resource"] for r in body["rejected"]] == ["Observation/o1"]
    assert "could not be read" in body["cardsHtml"], "the data-unreadable card is shown like any other"


def test_an_old_injury_gets_no_chart_card_and_the_page_says_why(client: FlaskClient) -> None:
    body = client.post("/preview", json={"example": "ex-sci-old"}).json
    assert body["response"]["cards"] == []
    assert "relevance window" in body["quietReason"] and "365 days" in body["quietReason"]
    assert body["timeline"]["model"]["relevanceWindow"]["inside"] is False

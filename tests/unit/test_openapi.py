"""/openapi.json is a valid OpenAPI 3.1 document, and what the service answers matches its schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from cds_hooks.app import create_app
from cds_hooks.settings import Settings

NOW = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return create_app(Settings(auth=False), clock=lambda: NOW).test_client()


@pytest.fixture(scope="module")
def doc(client: FlaskClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/openapi.json").json
    return body


def conforms(doc: dict[str, Any], name: str, instance: Any) -> list[str]:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return [e.message for e in Draft202012Validator(schema).iter_errors(instance)]


def test_the_document_is_valid_openapi_with_servers_and_examples(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["servers"][0]["url"] == "http://localhost"
    call = doc["paths"]["/cds-services/{id}"]["post"]
    request = call["requestBody"]["content"]["application/json"]["example"]
    answer = call["responses"]["200"]["content"]["application/json"]["example"]
    assert request["context"]["patientId"] == "ex-sci-hip", "the example is the built-in SCI patient"
    assert answer["cards"] and conforms(doc, "CdsResponse", answer) == []
    assert conforms(doc, "CdsRequest", request) == []


def test_every_json_response_has_a_real_schema(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for status, response in op["responses"].items():
                for media, content in (response.get("content") or {}).items():
                    if "json" in media and path != "/openapi.json":
                        assert content["schema"] != {"type": "object"}, f"{method} {path} {status}"


def test_answers_conform_to_their_schemas(client: FlaskClient, doc: dict[str, Any]) -> None:
    assert conforms(doc, "Discovery", client.get("/cds-services").json) == []
    assert conforms(doc, "Health", client.get("/healthz").json) == []
    assert conforms(doc, "Readiness", client.get("/readyz").json) == []
    assert conforms(doc, "Rules", client.get("/rules?format=json").json) == []
    assert conforms(doc, "Examples", client.get("/preview/examples").json) == []
    preview = client.post("/preview", json={"example": "ex-sci-hip"}).json
    assert conforms(doc, "Preview", preview) == []
    card = preview["response"]["cards"][0]
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": NOW.isoformat()}]}
    assert conforms(doc, "Feedback", feedback) == []
    assert client.post(f"/cds-services/{preview['service']}/feedback", json=feedback).status_code == 200
    assert conforms(doc, "FeedbackCounts", client.get("/feedback").json) == []
    bad = client.post("/cds-services/hofhir-patient-view", json={"hook": "patient-view"})
    assert conforms(doc, "OperationOutcome", bad.json) == []
    assert conforms(doc, "Card", {"uuid": "x", "summary": "s", "indicator": "loud", "source": {"label": "l"}}) != []

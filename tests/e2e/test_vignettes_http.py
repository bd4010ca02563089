"""Every shared vignette over HTTP against `hofhir serve`, dates shifted to today (the service reads the real clock)."""

from __future__ import annotations

import httpx
import pytest

from tests.dates import to_today
from tests.vignettes import cases, check, load


@pytest.mark.parametrize("case", cases())
def test_vignette_over_http(service: str, case: str) -> None:
    request, expect = load(case)
    body = to_today(request, expect["now"])
    response = httpx.post(f"{service}/cds-services/{expect['service_id']}", json=body, timeout=10)
    if "http_status" in expect:
        assert response.status_code == expect["http_status"]
        assert response.json()["resourceType"] == "OperationOutcome"
        return
    assert response.status_code == 200, response.text
    assert check(response.json(), expect) == []


def test_discovery_lists_the_contract_services(service: str) -> None:
    services = httpx.get(f"{service}/cds-services", timeout=5).json()["services"]
    assert {s["id"]: s["hook"] for s in services} == {
        "hofhir-patient-view": "patient-view",
        "hofhir-encounter-start": "encounter-start",
        "hofhir-encounter-discharge": "encounter-discharge",
        "hofhir-order-select": "order-select",
        "hofhir-order-sign": "order-sign",
    }
    for s in services:
        assert set(s["prefetch"]) == {"patient", "conditions", "observations", "procedures", "medications"}
        assert all("{{context.patientId}}" in t for t in s["prefetch"].values())
        assert s["title"] and s["description"]


def test_cards_link_to_the_services_own_rules_page(service: str) -> None:
    request, expect = load("s01")
    cards = httpx.post(
        f"{service}/cds-services/hofhir-patient-view", json=to_today(request, expect["now"]), timeout=10
    ).json()["cards"]
    for card in cards:
        link = card["links"][0]
        assert link["type"] == "absolute" and link["url"].startswith(service + "/rules#")
        topic = card["source"]["topic"]["code"]
        page = httpx.get(link["url"].split("#")[0], headers={"Accept": "text/html"}, timeout=5)
        assert page.status_code == 200 and f'id="{topic}"' in page.text

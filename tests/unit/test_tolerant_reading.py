"""Tolerant reading (issue 10): an element the R4B model refuses is dropped and traced, not the resource;
a record the rules need that still cannot be read gives one data-unreadable info card, never silence."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from cds_hooks.cards import render_response
from hofhir.clinical.evaluate import Evaluation, evaluate
from hofhir.fhir import models
from hofhir.fhir.models import read_resource
from hofhir.fhir.read import ClinicalInput, from_hook_request, from_resources, relevant_sets
from hofhir.knowledge import Knowledge
from tests import builders as b
from tests.contract import response_problems
from tests.unit.test_properties import fhir_shaped
from tests.vignettes import VIGNETTES


def s01() -> tuple[dict[str, Any], datetime]:
    request = json.loads((VIGNETTES / "s01.request.json").read_text())
    expect = json.loads((VIGNETTES / "s01.expect.json").read_text())
    return request, datetime.fromisoformat(expect["now"].replace("Z", "+00:00"))


def sci_condition(request: dict[str, Any]) -> dict[str, Any]:
    entries = request["prefetch"]["conditions"]["entry"]
    found: dict[str, Any] = next(
        e["resource"] for e in entries if e["resource"]["code"]["coding"][0]["code"] == "S24.111A"
    )
    return found


def run(request: dict[str, Any], now: datetime, kb: Knowledge) -> Evaluation:
    return evaluate(from_hook_request(request, kb.terminology), now, kb)


def topics(evaluation: Evaluation) -> dict[str, Any]:
    return {g.topic.value: g for g in evaluation.guidance}


# ---------- the Show cases ----------


def test_a_bogus_field_on_the_sci_condition_still_gives_high_risk(kb: Knowledge) -> None:
    request, now = s01()
    sci_condition(request)["bogusField"] = 1

    evaluation = run(request, now, kb)

    assert topics(evaluation)["ho-risk"].risk_level == "high"
    assert "sci" in topics(evaluation)["ho-risk"].populations
    assert "data-unreadable" not in topics(evaluation)
    assert evaluation.trace["rejected"] == []
    dropped = evaluation.trace["dropped"]
    assert [d["path"] for d in dropped] == ["bogusField"]
    assert dropped[0]["resource"].startswith("Condition/")
    assert "not an element" in dropped[0]["reason"]


def test_the_only_index_condition_unreadable_gives_the_data_unreadable_card(kb: Knowledge) -> None:
    request, now = s01()
    conditions = request["prefetch"]["conditions"]
    conditions["entry"] = [{"resource": sci_condition(request)}]
    del sci_condition(request)["subject"]  # Condition.subject is required in R4: nothing to drop, unreadable

    evaluation = run(request, now, kb)

    assert list(topics(evaluation)) == ["data-unreadable"]
    card = topics(evaluation)["data-unreadable"]
    assert card.indicator.value == "info"
    assert card.summary == "1 Condition record could not be read: the guidance may be incomplete"
    assert "subject" in card.detail and "required" in card.detail
    body = render_response(evaluation.guidance, "http://localhost")
    assert response_problems(body) == []
    assert evaluation.trace["rejected"][0]["needed"] is True


def test_the_card_counts_records_per_type(kb: Knowledge) -> None:
    sap = b.observation("6768-6", 250, "U/L")
    sap["status"] = {"code": "final"}  # required, of the wrong type: dropped, then missing
    sap2 = b.observation("6768-6", 260, "U/L", id="obs-2")
    del sap2["status"]
    evaluation = evaluate(from_resources([b.patient(), b.condition("S14.109A"), sap, sap2], kb.terminology), b.NOW, kb)

    card = topics(evaluation)["data-unreadable"]
    assert card.summary == "2 Observation records could not be read: the guidance may be incomplete"
    assert "required element status" in card.detail
    assert "ho-risk" in topics(evaluation)  # what could be read is still used


def test_several_types_are_named_in_the_summary(kb: Knowledge) -> None:
    sci = b.condition("S14.109A")
    del sci["subject"]
    sap = b.observation("6768-6", 250, "U/L")
    del sap["status"]
    evaluation = evaluate(from_resources([b.patient(), sci, sap], kb.terminology), b.NOW, kb)

    assert topics(evaluation)["data-unreadable"].summary.startswith("2 records (1 Condition, 1 Observation)")


def test_irrelevant_unreadable_records_are_not_reported(kb: Knowledge) -> None:
    other = {"resourceType": "Observation", "id": "bp", "code": {"text": "blood pressure"}}  # no status, not ours
    evaluation = evaluate(from_resources([b.patient(), other], kb.terminology), b.NOW, kb)
    assert evaluation.guidance == []


def test_a_patient_with_bad_elements_stays_readable(kb: Knowledge) -> None:
    patient = b.patient()
    patient["birthDate"] = {"year": 1980}
    patient["gender"] = 5
    evaluation = evaluate(from_resources([patient, b.condition("S14.109A")], kb.terminology), b.NOW, kb)
    # birthDate and gender are dropped; the patient stays readable
    assert evaluation.trace["rejected"] == []
    assert {d["path"] for d in evaluation.trace["dropped"]} == {"birthDate", "gender"}


def test_an_unreadable_relevant_draft_order_is_reported_on_order_sign(kb: Knowledge) -> None:
    order = b.service_request(cpt="27130")
    del order["status"]
    evaluation = evaluate(from_hook_request(b.request("order-sign", [b.patient()], [order]), kb.terminology), b.NOW, kb)
    assert "data-unreadable" in topics(evaluation)


def test_clinical_input_round_trips_with_dropped_and_needed() -> None:
    stroke = b.condition("I63.9")
    stroke["bogus"] = True
    from hofhir.knowledge import default_knowledge

    inputs = from_resources([b.patient(), stroke], default_knowledge().terminology)
    again = ClinicalInput.from_dict(json.loads(json.dumps(inputs.as_dict())))
    assert again.dropped == inputs.dropped and again.dropped
    assert again.rejected == inputs.rejected


# ---------- read_resource: what is dropped ----------


@pytest.mark.parametrize(
    ("resource", "dropped", "kept"),
    [
        (  # issue 10: a TypeError in the reader before
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/1"},
                "medicationCodeableConcept": {"text": "x"},
                "contained": True,
            },
            ["contained"],
            "medicationCodeableConcept",
        ),
        (
            {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"}, "conclusionCode": 5},
            ["conclusionCode"],
            "code",
        ),
        (  # an R5 element in R4 data
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/1"},
                "code": {"text": "x"},
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "participant": [{"actor": {"reference": "x"}}],
            },
            ["participant"],
            "clinicalStatus",
        ),
        (  # list items: the bad one goes, the others stay; an element left empty goes too
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/1"},
                "code": {"coding": [{"system": 1}, {"system": "http://snomed.info/sct", "code": "1"}, {"code": 2}]},
            },
            ["code.coding[0].system", "code.coding[2].code"],
            "code",
        ),
        (  # a choice element given twice: both values dropped
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "effectiveDateTime": "2026-01-01",
                "effectivePeriod": {"start": "2026-01-01"},
            },
            ["effectiveDateTime", "effectivePeriod"],
            "code",
        ),
        (  # a primitive's extension of the wrong type
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/1"},
                "code": {"text": "x"},
                "onsetDateTime": "2026-01-01",
                "_onsetDateTime": 5,
            },
            ["_onsetDateTime"],
            "onsetDateTime",
        ),
    ],
)
def test_read_resource_drops_only_what_the_model_refuses(
    resource: dict[str, Any], dropped: list[str], kept: str
) -> None:
    original = copy.deepcopy(resource)
    reading = read_resource(resource)
    assert reading.problem is None
    assert sorted(d.path for d in reading.dropped) == sorted(dropped)
    assert reading.resource is not None and kept in reading.resource
    assert read_resource(reading.resource).dropped == ()  # what remains is valid R4
    assert resource == original  # the input is never changed
    for d in reading.dropped:
        assert "<class" not in d.reason and "Input should" not in d.reason


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        ({"resourceType": "Observation", "code": {"text": "x"}}, "required element status is missing"),
        ({"resourceType": "Condition", "subject": 5}, "required element subject has the wrong JSON type"),
        ({"resourceType": "NotAType"}, "is not an R4 resource type"),
        ({"status": "final"}, "no resourceType"),
        ([], "not a JSON object"),
    ],
)
def test_read_resource_says_why_a_resource_cannot_be_read(resource: Any, problem: str) -> None:
    reading = read_resource(resource)
    assert reading.resource is None
    assert reading.problem is not None and problem in reading.problem


def test_a_resource_nested_too_deep_is_unreadable_not_a_crash() -> None:
    inner: dict[str, Any] = {"url": "http://x", "valueString": "deep"}
    for _ in range(400):
        inner = {"url": "http://x", "extension": [inner]}
    resource = {"resourceType": "Condition", "subject": {"reference": "Patient/1"}, "extension": [inner]}
    reading = read_resource(resource)
    assert reading.resource is None and reading.problem == "nested more than 254 levels deep"


def test_validation_is_cached_by_content(monkeypatch: pytest.MonkeyPatch) -> None:
    models.clear_cache()
    calls: list[int] = []
    real = models._read

    def counting(model: Any, resource: dict[str, Any]) -> Any:
        calls.append(1)
        return real(model, resource)

    monkeypatch.setattr(models, "_read", counting)
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "bogus": 1}
    first = read_resource(resource)
    second = read_resource(json.loads(json.dumps(resource, sort_keys=True)))  # same content, other key order
    assert len(calls) == 1  # the second read was a cache hit
    assert second == first and second.resource is not None and "bogus" not in second.resource
    changed = read_resource({**resource, "status": 5})  # other content: validated anew, and refused
    assert len(calls) == 2 and changed.resource is None


def test_a_worker_round_trip_keeps_the_tolerant_reading(kb: Knowledge) -> None:
    request, now = s01()
    sci_condition(request)["bogusField"] = 1
    inputs = from_hook_request(request, kb.terminology)
    again = ClinicalInput.from_dict(json.loads(json.dumps(inputs.as_dict())))
    assert topics(evaluate(again, now, kb))["ho-risk"].risk_level == "high"


# ---------- the guarantee, for any FHIR-shaped input ----------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resource=fhir_shaped(any_type=False))
def test_what_tolerant_reading_keeps_is_valid_r4_and_nothing_else_is_lost(resource: dict[str, Any]) -> None:
    reading = read_resource(resource)  # never raises
    if reading.resource is None:
        assert reading.problem and "<class" not in reading.problem
        return
    assert read_resource(reading.resource).dropped == ()  # what is kept validates as it stands
    dropped_tops = {d.path.split(".")[0].split("[")[0] for d in reading.dropped}
    for key, value in resource.items():  # every top-level element not dropped is kept unchanged
        if key not in dropped_tops:
            assert reading.resource[key] == value


def test_the_validation_cache_is_bounded_by_the_bytes_it_holds() -> None:
    cache = models._Cache(size=1000, max_bytes=10_000)
    for i in range(100):
        cache.put(f"{i:04d}".encode() * 100, models._VALID)  # 400 bytes each
    assert cache._bytes <= 10_000 and len(cache._data) == 25
    assert cache.get(b"0099" * 100) is models._VALID and cache.get(b"0000" * 100) is None  # oldest left first
    cache.put(b"x" * (models.CACHE_ENTRY_BYTES + 1), models._VALID)  # too big to keep
    assert cache.get(b"x" * (models.CACHE_ENTRY_BYTES + 1)) is None


def test_the_facts_use_the_value_sets_selection_found_and_find_them_anew_after_a_round_trip(kb: Knowledge) -> None:
    request, now = s01()
    inputs = from_hook_request(request, kb.terminology)
    assert len(inputs.relevance) == len(inputs.resources) > 0
    for index, resource in enumerate(inputs.resources):
        assert inputs.sets_of(index, kb.terminology) == relevant_sets(resource, kb.terminology)
    again = ClinicalInput.from_dict(json.loads(json.dumps(inputs.as_dict())))
    assert again.relevance == [] and again.sets_of(0, kb.terminology) == relevant_sets(
        again.resources[0], kb.terminology
    )
    assert evaluate(again, now, kb).guidance == evaluate(inputs, now, kb).guidance

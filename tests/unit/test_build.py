"""The suggested resources: built once as templates, filled per call, still valid R4 (R4B models).

Each filled resource is compared with the same resource built and validated through its R4B model on
the call (`Template.through_model`), and validated again, for every suggestion kind and odd fills.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hofhir.fhir import build
from hofhir.fhir.models import validation_problem
from hofhir.knowledge import Knowledge, default_knowledge

KB: Knowledge = default_knowledge()
REGIMENS: dict[str, dict[str, Any]] = KB.parameters["regimens"]
KINDS = sorted(build.templates(REGIMENS))

ODD_FILLS: list[tuple[str | None, str]] = [
    ("p1", "a reason"),
    (None, "no patient id: the patient in context"),
    ("", "an empty patient id is no patient id"),
    ("a.b-C.9" * 9, "x" * 20_000),  # a long id and a long reason
    ("weird id/with slash", "  leading and trailing blanks  "),
    ("é", "non-ASCII — ünïcødé ✓ and\nnew lines\tand tabs"),
    ("p2", "\x0b"),  # not an R4 string: the fill must go through the model (which refuses it)
    ("p3", ""),  # empty: not an R4 string either
]


def suggestion(kind: str, patient_id: str | None, reason: str) -> dict[str, Any]:
    """Through the public functions the rules call."""
    calls = {
        "alp": lambda: build.alp_order(patient_id, reason),
        "bone-scan": lambda: build.bone_scan_order(patient_id, reason),
        "hip-radiograph": lambda: build.hip_radiograph_order(patient_id, reason),
        "duplex-bilateral": lambda: build.venous_duplex_order(patient_id, reason),
        "duplex-unilateral": lambda: build.venous_duplex_order(patient_id, reason, bilateral=False),
        "ct-pelvis": lambda: build.ct_order(patient_id, reason),
        "radiotherapy": lambda: build.radiotherapy_order(patient_id, reason, REGIMENS["radiotherapy"]),
        "indomethacin": lambda: build.indomethacin_order(patient_id, reason, REGIMENS["indomethacin"]),
    }
    result: dict[str, Any] = calls[kind]()
    return result


def test_every_suggestion_kind_has_a_template() -> None:
    assert (
        sorted(
            [
                "alp",
                "bone-scan",
                "ct-pelvis",
                "duplex-bilateral",
                "duplex-unilateral",
                "hip-radiograph",
                "indomethacin",
                "radiotherapy",
            ]
        )
        == KINDS
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("patient_id", "reason"), ODD_FILLS)
def test_a_filled_template_is_the_resource_the_model_builds_and_valid_r4(
    kind: str, patient_id: str | None, reason: str
) -> None:
    template = build.templates(REGIMENS)[kind]
    try:
        expected = template.through_model(patient_id, reason)
    except ValidationError:
        with pytest.raises(ValidationError):
            suggestion(kind, patient_id, reason)
        return
    filled = suggestion(kind, patient_id, reason)
    assert filled == expected
    assert list(filled) == list(expected), "same element order as the model's JSON"
    assert validation_problem(filled) is None
    assert filled["resourceType"] == template.resource_type
    if patient_id:
        assert filled["subject"] == {"reference": f"Patient/{patient_id}"}
    else:
        assert "reference" not in filled["subject"]
    assert filled["reasonCode"] == [{"text": reason}]


def test_the_models_run_once_per_template_not_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    build.templates(REGIMENS)  # built (once per process and knowledge value)
    calls: list[str] = []
    real = build.build

    def counting(resource_type: str, data: dict[str, Any]) -> dict[str, Any]:
        calls.append(resource_type)
        return real(resource_type, data)

    monkeypatch.setattr(build, "build", counting)
    for kind in KINDS:
        for _ in range(3):
            suggestion(kind, "p1", "reason")
    assert calls == []


def test_each_fill_is_a_fresh_copy() -> None:
    first = build.bone_scan_order("p1", "first")
    first["code"]["coding"].clear()
    first["category"][0]["coding"][0]["code"] = "changed"
    second = build.bone_scan_order("p2", "second")
    assert second["code"]["coding"] and second["category"][0]["coding"][0]["code"] == "363679005"
    assert second["subject"] == {"reference": "Patient/p2"}


def test_a_changed_regimen_gets_its_own_template() -> None:
    changed = {**REGIMENS["radiotherapy"], "cpt": "77499", "cpt_display": "Unlisted procedure, therapeutic radiology"}
    order = build.radiotherapy_order("p1", "reason", changed)
    assert order["code"]["coding"][0]["code"] == "77499"
    assert build.radiotherapy_order("p1", "reason", REGIMENS["radiotherapy"])["code"]["coding"][0]["code"] == str(
        REGIMENS["radiotherapy"]["cpt"]
    )
    assert validation_problem(order) is None


@seed(20261130)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    patient_id=st.one_of(st.none(), st.text(max_size=80)),
    reason=st.text(max_size=300),
)
def test_any_fill_equals_the_model_or_is_refused_like_it(kind: str, patient_id: str | None, reason: str) -> None:
    template = build.templates(REGIMENS)[kind]
    try:
        expected = template.through_model(patient_id, reason)
    except ValidationError:
        with pytest.raises(ValidationError):
            suggestion(kind, patient_id, reason)
        return
    filled = suggestion(kind, patient_id, reason)
    assert filled == expected
    assert validation_problem(filled) is None

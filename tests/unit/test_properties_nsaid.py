"""Property (hypothesis, seeded): ho-rules 1.1 §5a and §9 hold for arbitrary patients.

For records drawn with any mix of the §5a findings (dated anywhere around their look-backs), any age and
sex, THA orders with or without a drafted NSAID or anticoagulant, and recent acetabular ORIF or HO excision:
- no response carries an indomethacin suggestion when the record holds a §5a "not suggested" finding
  (the oracle below is written from the §5a table and parameters.toml, not from the screen's code);
- no response carries two NSAID suggestions;
- no response suggests an NSAID beside a drafted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from hofhir.clinical.evaluate import evaluate
from hofhir.fhir.read import from_hook_request
from hofhir.knowledge import Knowledge, default_knowledge
from tests import builders as b

KB: Knowledge = default_knowledge()
P = KB.parameters["nsaid_screen"]
ORIF_WINDOW = KB.window("acetabular_orif_prophylaxis_days")
INDOMETHACIN = {"5781", "197817", "310992"}
NSAID_SETS = "nsaid"


@dataclass
class Case:
    resources: list[dict[str, Any]]
    drafts: list[dict[str, Any]]
    hook: str
    avoid: list[str]  # the §5a "not suggested" findings the record holds (the oracle)
    nsaid_drafted: bool
    selections: list[str] | None = None  # order-select: only the THA selected, the rest drafted earlier


DAYS = st.integers(min_value=0, max_value=800)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    age = draw(st.one_of(st.none(), st.integers(min_value=18, max_value=95)))
    sex = draw(st.sampled_from(["male", "female", None, "other"]))
    resources: list[dict[str, Any]] = [b.patient(sex, age)]
    avoid: list[str] = []
    if age is not None and age >= int(P["avoid_from_age_years"]):
        avoid.append("age")
    kidney_days = int(P["kidney_lookback_days"])
    if draw(st.booleans()):
        status = draw(st.sampled_from(["active", "inactive", "resolved"]))
        resources.append(b.condition("N18.4", days_ago=draw(DAYS), clinical_status=status))
        if status == "active":
            avoid.append("ckd4")
    if draw(st.booleans()):
        days = draw(DAYS)
        resources.append(b.condition("N17.9", days_ago=days, abated_days_ago=max(days - 5, 0)))
        if days <= kidney_days:
            avoid.append("aki")
    if draw(st.booleans()):
        days = draw(DAYS)
        resources.append(b.procedure(snomed="265764009", days_ago=days, text="Renal dialysis"))
        if days <= kidney_days:
            avoid.append("dialysis")
    if draw(st.booleans()):
        days, value = draw(DAYS), draw(st.integers(min_value=5, max_value=120))
        resources.append(b.observation("33914-3", value, "mL/min/{1.73_m2}", days_ago=days))
        if days <= kidney_days and value < float(P["egfr_avoid_below"]):
            avoid.append("egfr")
    if draw(st.booleans()):
        days, active = draw(DAYS), draw(st.booleans())
        if active:
            resources.append(b.condition("K26.9", days_ago=days))
        else:
            resources.append(b.condition("K26.9", days_ago=days, abated_days_ago=max(days - 10, 0)))
        if active or days <= int(P["ulcer_lookback_days"]):
            avoid.append("ulcer")
    if draw(st.booleans()):
        active = draw(st.booleans())
        resources.append(b.condition("I50.22", days_ago=draw(DAYS), clinical_status="active" if active else "resolved"))
        if active:
            avoid.append("heart_failure")
    if draw(st.booleans()):
        resources.append(b.medication_request(text="Enoxaparin 40 mg injection", days_ago=draw(DAYS)))
    hook = draw(st.sampled_from(["order-sign", "order-select", "patient-view"]))
    drafts: list[dict[str, Any]] = []
    nsaid_drafted = False
    orif_days: int | None = None
    if hook == "patient-view":
        orif_days = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=20)))
        if orif_days is not None:
            resources.append(b.procedure("27227", days_ago=orif_days))
        if draw(st.booleans()):
            resources.append(b.condition("S24.111A", days_ago=700))
            resources.append(b.procedure("27036", days_ago=draw(st.integers(min_value=0, max_value=20))))
    else:
        drafts.append(b.service_request(draw(st.sampled_from(["27130", "27134"])), text="Hip arthroplasty"))
        if draw(st.booleans()):
            drafts.append(
                b.medication_request(
                    draw(st.sampled_from(["198014", "197817", "206905"])), "NSAID", days_ago=0, status="draft"
                )
            )
            nsaid_drafted = True
        if draw(st.booleans()):
            drafts.append(b.medication_request(text="Heparin 5000 unit injection", days_ago=0, status="draft"))
    if draw(st.booleans()):
        days = draw(DAYS)
        resources.append(b.condition("S72.301A", days_ago=days))
        if orif_days is not None and orif_days <= ORIF_WINDOW and days <= int(P["long_bone_fracture_lookback_days"]):
            avoid.append("nonunion_long_bone")
    selections = None
    if hook == "order-select" and draw(st.booleans()):
        selections = [f"ServiceRequest/{drafts[0]['id']}"]
    return Case(resources, drafts, hook, avoid, nsaid_drafted, selections)


def _nsaid_suggestions(guidance: Any) -> list[dict[str, Any]]:
    out = []
    for s in guidance.suggestions:
        if KB.terminology.sets_for_concept(s.resource.get("medicationCodeableConcept"), use_text=True) & {NSAID_SETS}:
            out.append(s.resource)
    return out


def _codes(resource: dict[str, Any]) -> set[str]:
    return {c["code"] for c in (resource.get("medicationCodeableConcept") or {}).get("coding", [])}


@seed(20261130)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_no_indomethacin_against_the_screen_never_two_nsaids_never_beside_a_drafted_one(case: Case) -> None:
    request = b.request(case.hook, case.resources, case.drafts or None, selections=case.selections)
    evaluation = evaluate(from_hook_request(request, KB.terminology), b.NOW, KB)
    assert evaluation.trace["rejected"] == []
    per_card = [_nsaid_suggestions(g) for g in evaluation.guidance]
    everywhere = [r for found in per_card for r in found]
    if case.avoid:
        assert not any(_codes(r) & INDOMETHACIN for r in everywhere), case.avoid
    assert all(len(found) <= 1 for found in per_card)
    assert len(everywhere) <= 1
    if case.nsaid_drafted:
        assert everywhere == []

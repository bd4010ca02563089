"""ho-rules 1.1 §5a (the NSAID safety screen), §5 (a drafted NSAID beside a THA), §6 (late start), §1 (RT coding).

Each row of the §5a table is tested positive, negative and, where the record can leave it open, unknown;
through the screen itself (what it found, with its source, and the decision) and through the cards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from hofhir.clinical.facts import build_facts
from hofhir.clinical.rules.nsaid_screen import Decision, Effect, NsaidScreen, screen_nsaid
from hofhir.fhir.read import from_resources
from hofhir.knowledge import Knowledge
from tests.builders import (
    NOW,
    Resource,
    Run,
    card,
    condition,
    medication_request,
    observation,
    patient,
    procedure,
    service_request,
    suggested_codes,
    topics,
)

THA = "27130"
ACETABULAR_ORIF = "27227"
HO_EXCISION = "27036"
INDOMETHACIN_CODES = {"5781", "197817", "310992"}
NSAID_CODES = INDOMETHACIN_CODES | {"198014", "849574", "206905", "310965", "198405", "7258", "5640"}
RADIOTHERAPY_CODES = {"77402", "108290001"}
EGFR = "33914-3"
EGFR_2021 = "98979-8"
CREATININE = "2160-0"
CREATININE_UMOL = "14682-9"
ENOXAPARIN = "Enoxaparin sodium 40 MG/0.4 ML Prefilled Syringe"


def screen(kb: Knowledge, resources: list[Resource], now: datetime = NOW, **kwargs: Any) -> NsaidScreen:
    facts = build_facts(from_resources(resources, kb.terminology), kb, now)
    return screen_nsaid(facts, kb, now, **kwargs)


def codes_of(s: NsaidScreen) -> set[str]:
    return {f.code for f in s.findings}


def tha_order() -> Resource:
    return service_request(THA, text="Total hip arthroplasty", body_site="Left hip")


def tha_card(run: Run, *record: Resource, age: int | None = 60, sex: str | None = "male", drafts: Any = ()) -> Any:
    """The prophylaxis card of a THA order for a man (R-01: moderate THA risk)."""
    evaluation = run([patient(sex, age), *record], hook="order-sign", draft_orders=[tha_order(), *drafts])
    return card(evaluation, "ho-prophylaxis")


GOOD_KIDNEYS = observation(EGFR, 85, "mL/min/{1.73_m2}", days_ago=10)


# ================= the decision and its evidence =================


def test_a_clean_record_is_suggest(kb: Knowledge) -> None:
    s = screen(kb, [patient("male", 50), GOOD_KIDNEYS])
    assert s.decision is Decision.SUGGEST
    assert s.findings == () and s.unchecked == () and s.rules == ()


def test_a_clean_tha_card_suggests_indomethacin_from_day_1_and_radiotherapy(run: Run) -> None:
    prophylaxis = tha_card(run, GOOD_KIDNEYS)
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    assert suggested_codes(prophylaxis) & RADIOTHERAPY_CODES
    assert "**Caution**" not in prophylaxis.detail
    label = next(s.label for s in prophylaxis.suggestions if "ndomethacin" in s.label)
    assert "from post-operative day 1" in label


# ----- row 1: age >= 65 -----


@pytest.mark.parametrize(("age", "avoided"), [(65, True), (86, True), (64, False)])
def test_age_row(kb: Knowledge, run: Run, age: int, avoided: bool) -> None:
    s = screen(kb, [patient("male", age), GOOD_KIDNEYS])
    assert ("age" in codes_of(s)) is avoided
    prophylaxis = tha_card(run, GOOD_KIDNEYS, age=age)
    assert bool(suggested_codes(prophylaxis) & INDOMETHACIN_CODES) is not avoided
    assert suggested_codes(prophylaxis) & RADIOTHERAPY_CODES
    assert ("LIT-BEERS-INDOMETHACIN" in prophylaxis.rules) is avoided
    if avoided:
        assert s.decision is Decision.NOT_SUGGESTED
        assert f"Age {age} on {NOW.date()}" in prophylaxis.detail
        assert prophylaxis.indicator.value == "info"


def test_age_unknown_is_a_caution_not_an_absence(kb: Knowledge, run: Run) -> None:
    s = screen(kb, [patient("male", None), GOOD_KIDNEYS])
    assert s.decision is Decision.SUGGEST_WITH_CAUTIONS
    assert "age" in s.unchecked
    prophylaxis = tha_card(run, GOOD_KIDNEYS, age=None)
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    assert "Age not in the record" in prophylaxis.detail


# ----- row 2: severe kidney impairment -----


@pytest.mark.parametrize(
    ("record", "avoided"),
    [
        ([condition("N18.4", days_ago=400)], True),
        ([condition(snomed="46177005", days_ago=900)], True),  # ESRD
        ([condition("Z99.2", days_ago=300)], True),  # dialysis dependence
        ([condition("N18.4", days_ago=400, clinical_status="inactive")], False),
        ([condition("N17.9", days_ago=40, abated_days_ago=30)], True),  # AKI in the last 90 days
        ([condition("N17.9", days_ago=200, abated_days_ago=190)], False),
        ([procedure(snomed="265764009", days_ago=30, text="Renal dialysis")], True),
        ([procedure(snomed="265764009", days_ago=200, text="Renal dialysis")], False),
        ([observation(EGFR, 22, "mL/min/{1.73_m2}", days_ago=21)], True),
        ([observation(EGFR_2021, 29.9, "mL/min/{1.73_m2}", days_ago=80)], True),
        ([observation(EGFR, 30, "mL/min/{1.73_m2}", days_ago=21)], False),
    ],
)
def test_severe_kidney_row(kb: Knowledge, run: Run, record: list[Resource], avoided: bool) -> None:
    s = screen(kb, [patient("male", 50), *record])
    assert (s.decision is Decision.NOT_SUGGESTED) is avoided
    assert ("LIT-BEERS-RENAL" in {r for f in s.avoid for r in f.rules}) is avoided
    prophylaxis = tha_card(run, *record, age=50)
    assert bool(suggested_codes(prophylaxis) & INDOMETHACIN_CODES) is not avoided
    assert suggested_codes(prophylaxis) & RADIOTHERAPY_CODES


def test_an_egfr_older_than_90_days_is_unknown_not_absent(kb: Knowledge) -> None:
    s = screen(kb, [patient("male", 50), observation(EGFR, 22, "mL/min/{1.73_m2}", days_ago=120)])
    assert s.decision is Decision.SUGGEST_WITH_CAUTIONS
    assert "egfr" in s.unchecked
    text = next(f.text for f in s.findings if f.code == "kidney_unknown")
    assert "older than 90 days" in text and "Check it before starting" in text


def test_egfr_is_computed_from_creatinine_with_its_source_on_the_card(kb: Knowledge, run: Run) -> None:
    # Man of 60 today, 59 on the day of the creatinine (the equation uses the age at the result):
    # 142 x (2.6/0.9)^-1.2 x 0.9938^59 = 27.5 -> 28.
    creatinine = observation(CREATININE, 2.6, "mg/dL", days_ago=10, id="creat-1")
    s = screen(kb, [patient("male", 60), creatinine])
    assert s.decision is Decision.NOT_SUGGESTED
    assert set(s.rules) == {"LIT-BEERS-RENAL", "LIT-CKD-EPI-2021"}
    (finding,) = s.avoid
    assert finding.code == "egfr_severe"
    when = (NOW.date()).fromordinal(NOW.date().toordinal() - 10).isoformat()
    assert f"eGFR 28 on {when}, computed from creatinine 2.6 mg/dL with CKD-EPI 2021" in finding.text
    assert "Observation/creat-1" in finding.text
    prophylaxis = tha_card(run, creatinine)
    assert "computed from creatinine 2.6 mg/dL with CKD-EPI 2021" in prophylaxis.detail
    assert {"LIT-BEERS-RENAL", "LIT-CKD-EPI-2021"} <= set(prophylaxis.rules)
    assert not suggested_codes(prophylaxis) & INDOMETHACIN_CODES


def test_creatinine_in_umol_per_litre_is_converted(kb: Knowledge) -> None:
    s = screen(kb, [patient("male", 60), observation(CREATININE_UMOL, 230, "umol/L", days_ago=10)])
    assert s.decision is Decision.NOT_SUGGESTED
    assert "computed from creatinine 230 umol/L" in s.avoid[0].text


def test_creatinine_without_a_recorded_sex_gives_no_egfr_and_says_so(kb: Knowledge) -> None:
    s = screen(kb, [patient(None, 60), observation(CREATININE, 2.6, "mg/dL", days_ago=10)])
    assert s.decision is Decision.SUGGEST_WITH_CAUTIONS
    assert "egfr" in s.unchecked
    text = next(f.text for f in s.findings if f.code == "kidney_unknown")
    assert "no eGFR can be computed" in text and "administrative sex" in text


# ----- row 3: peptic ulcer or GI bleeding -----


@pytest.mark.parametrize(
    ("record", "avoided"),
    [
        ([condition("K26.9", days_ago=40)], True),  # active duodenal ulcer
        ([condition(snomed="74474003", days_ago=200, abated_days_ago=190)], True),  # GI bleed 200 days ago
        ([condition("K25.4", days_ago=500, abated_days_ago=480)], False),  # healed, over 12 months
        ([condition("K25.4", days_ago=40, verification="refuted")], False),
    ],
)
def test_ulcer_row(kb: Knowledge, run: Run, record: list[Resource], avoided: bool) -> None:
    s = screen(kb, [patient("male", 50), GOOD_KIDNEYS, *record])
    assert (s.decision is Decision.NOT_SUGGESTED) is avoided
    assert ("LIT-BEERS-ULCER" in s.rules) is avoided
    prophylaxis = tha_card(run, GOOD_KIDNEYS, *record, age=50)
    assert bool(suggested_codes(prophylaxis) & INDOMETHACIN_CODES) is not avoided


# ----- row 4: heart failure -----


@pytest.mark.parametrize(
    ("record", "avoided"),
    [
        ([condition("I50.22", days_ago=400)], True),
        ([condition(snomed="88805009", days_ago=900)], True),
        ([condition("I50.9", days_ago=400, clinical_status="resolved")], False),
    ],
)
def test_heart_failure_row(kb: Knowledge, run: Run, record: list[Resource], avoided: bool) -> None:
    s = screen(kb, [patient("male", 50), GOOD_KIDNEYS, *record])
    assert (s.decision is Decision.NOT_SUGGESTED) is avoided
    assert ("LIT-BEERS-HF" in s.rules) is avoided
    assert bool(suggested_codes(tha_card(run, GOOD_KIDNEYS, *record, age=50)) & INDOMETHACIN_CODES) is not avoided


# ----- rows 5 and 8: acetabular ORIF, with and without a long-bone fracture -----


def orif(*extra: Resource, days_ago: float = 2, age: int = 35) -> list[Resource]:
    return [patient("male", age), GOOD_KIDNEYS, procedure(ACETABULAR_ORIF, days_ago=days_ago), *extra]


def test_acetabular_orif_with_a_recent_femur_fracture_gets_radiotherapy_only(kb: Knowledge, run: Run) -> None:
    femur = condition("S72.301A", days_ago=3)
    s = screen(kb, orif(femur), acetabular_orif=True)
    assert s.decision is Decision.NOT_SUGGESTED
    assert s.rules == ("LIT-NONUNION-LONG-BONE",)
    prophylaxis = card(run(orif(femur)), "ho-prophylaxis")
    assert prophylaxis.indicator.value == "warning"  # the indicator does not change
    assert not suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    assert suggested_codes(prophylaxis) & RADIOTHERAPY_CODES
    assert "LIT-NONUNION-LONG-BONE" in prophylaxis.rules
    assert "Indomethacin is not suggested" in prophylaxis.detail


def test_acetabular_orif_with_an_old_fracture_is_suggested_with_the_nonunion_caution(kb: Knowledge, run: Run) -> None:
    old = condition("S72.301A", days_ago=400, clinical_status="resolved")
    s = screen(kb, orif(old), acetabular_orif=True)
    assert s.decision is Decision.SUGGEST_WITH_CAUTIONS
    assert set(s.rules) == {"LIT-NONUNION-ACETABULUM", "LIT-ACETABULAR-NO-BENEFIT"}
    prophylaxis = card(run(orif(old)), "ho-prophylaxis")
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    caution = prophylaxis.detail.split("**Caution**")[1]
    assert "62 % vs 19 %" in caution
    assert {"LIT-NONUNION-ACETABULUM", "LIT-ACETABULAR-NO-BENEFIT"} <= set(prophylaxis.rules)


def test_the_nonunion_rows_do_not_apply_outside_acetabular_orif(kb: Knowledge) -> None:
    s = screen(kb, [patient("male", 50), GOOD_KIDNEYS, condition("S72.301A", days_ago=3)])
    assert not codes_of(s) & {"nonunion_long_bone", "nonunion_acetabulum"}


# ----- row 6: anticoagulant or antiplatelet, active or drafted -----


@pytest.mark.parametrize(
    ("record", "drugs"),
    [
        ([medication_request(text=ENOXAPARIN, days_ago=1)], "Enoxaparin"),
        ([medication_request("309362", "Clopidogrel 75 MG Oral Tablet", days_ago=100)], "Clopidogrel"),
        ([medication_request("243670", "Aspirin 81 MG Oral Tablet", days_ago=5)], "Aspirin"),
    ],
)
def test_bleeding_row_active(kb: Knowledge, run: Run, record: list[Resource], drugs: str) -> None:
    s = screen(kb, [patient("male", 50), GOOD_KIDNEYS, *record])
    assert s.decision is Decision.SUGGEST_WITH_CAUTIONS
    assert set(s.rules) == {"LIT-BEERS-ANTICOAG", "P-04"}
    prophylaxis = tha_card(run, GOOD_KIDNEYS, *record, age=50)
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    caution = prophylaxis.detail.split("**Caution**")[1]
    assert drugs in caution and "bleeding" in caution


def test_bleeding_row_stopped_anticoagulant_is_no_finding(kb: Knowledge) -> None:
    s = screen(kb, [patient("male", 50), GOOD_KIDNEYS, medication_request(text=ENOXAPARIN, status="stopped")])
    assert s.decision is Decision.SUGGEST


def test_an_anticoagulant_drafted_in_the_same_session_counts_as_active(run: Run) -> None:
    draft = medication_request(text=ENOXAPARIN, days_ago=0, status="draft")
    prophylaxis = tha_card(run, GOOD_KIDNEYS, drafts=[draft])
    assert "Drafted in this order session: Enoxaparin" in prophylaxis.detail
    assert "LIT-BEERS-ANTICOAG" in prophylaxis.rules


# ----- row 7: moderate kidney impairment -----


@pytest.mark.parametrize(
    ("record", "caution"),
    [
        ([condition("N18.30", days_ago=400)], True),
        ([condition(snomed="433144002", days_ago=400)], True),
        ([observation(EGFR, 45, "mL/min/{1.73_m2}", days_ago=20)], True),
        ([observation(EGFR, 59, "mL/min/{1.73_m2}", days_ago=20)], True),
        ([observation(EGFR, 60, "mL/min/{1.73_m2}", days_ago=20)], False),
    ],
)
def test_moderate_kidney_row(kb: Knowledge, run: Run, record: list[Resource], caution: bool) -> None:
    s = screen(kb, [patient("male", 50), *record])
    assert (s.decision is Decision.SUGGEST_WITH_CAUTIONS) is caution
    assert s.decision is not Decision.NOT_SUGGESTED
    assert (s.rules == ("LIT-BEERS-RENAL",)) is caution
    prophylaxis = tha_card(run, *record, age=50)
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    assert ("check kidney function during the course" in prophylaxis.detail) is caution


# ----- row 9: no kidney function in the record -----


def test_no_kidney_function_is_suggested_with_check_it_first(kb: Knowledge, run: Run) -> None:
    s = screen(kb, [patient("male", 50)])
    assert s.decision is Decision.SUGGEST_WITH_CAUTIONS
    assert s.unchecked == ("kidney_function",)
    assert [f.effect for f in s.findings] == [Effect.CAUTION]
    prophylaxis = tha_card(run, age=50)
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    assert "Kidney function not in the record" in prophylaxis.detail
    assert "check it before starting" in prophylaxis.detail


def test_a_kidney_diagnosis_answers_the_kidney_question(kb: Knowledge) -> None:
    assert "kidney_function" not in screen(kb, [patient("male", 50), condition("N18.30", days_ago=400)]).unchecked


# ================= the card when nothing can be suggested =================


def test_not_suggested_and_radiotherapy_window_past_suggests_nothing_and_says_why(run: Run) -> None:
    ulcer = condition("K26.9", days_ago=40)
    prophylaxis = card(run(orif(ulcer, days_ago=4)), "ho-prophylaxis")
    assert prophylaxis.indicator.value == "warning"
    assert prophylaxis.suggestions == ()
    assert "Nothing is suggested" in prophylaxis.detail
    assert "72 hours" in prophylaxis.detail
    assert "LIT-BEERS-ULCER" in prophylaxis.rules


def test_s11_like_card_states_both_findings_with_their_sources(run: Run) -> None:
    record = [condition("M16.0", days_ago=900), observation(EGFR, 22, "mL/min/{1.73_m2}", days_ago=21, id="egfr-1")]
    prophylaxis = tha_card(run, *record, age=72, sex="female")
    assert {"LIT-BEERS-INDOMETHACIN", "LIT-BEERS-RENAL"} <= set(prophylaxis.rules)
    assert "eGFR 22 on" in prophylaxis.detail and "Observation/egfr-1" in prophylaxis.detail
    assert "radiotherapy" in prophylaxis.summary
    assert "[LIT]" in prophylaxis.detail
    assert len(prophylaxis.summary) < 140


# ================= §5 (1.1): an NSAID drafted beside the THA =================


@pytest.mark.parametrize(
    "nsaid",
    [
        medication_request("198014", "Naproxen 500 MG Oral Tablet", days_ago=0, status="draft"),
        medication_request("197817", "indomethacin 25 MG Oral Capsule", days_ago=0, status="draft"),
        medication_request(text="Ibuprofen 600 mg tablet", days_ago=0, status="draft"),
    ],
)
def test_a_drafted_nsaid_beside_the_tha_is_the_prophylaxis(run: Run, nsaid: Resource) -> None:
    prophylaxis = tha_card(run, GOOD_KIDNEYS, drafts=[nsaid])
    assert prophylaxis.indicator.value == "info"
    assert not suggested_codes(prophylaxis) & NSAID_CODES
    assert not any("ndomethacin" in s.label for s in prophylaxis.suggestions)
    assert "serves as HO prophylaxis" in prophylaxis.summary
    assert "no second NSAID is suggested" in prophylaxis.detail


def test_a_drafted_nsaid_carries_the_screen_findings_as_cautions(run: Run) -> None:
    record = [observation(EGFR, 22, "mL/min/{1.73_m2}", days_ago=21), condition("I50.22", days_ago=400)]
    naproxen = medication_request("198014", "Naproxen 500 MG Oral Tablet", days_ago=0, status="draft")
    heparin = medication_request(text="Heparin 5000 unit injection", days_ago=0, status="draft")
    prophylaxis = tha_card(run, *record, drafts=[naproxen, heparin])
    caution = prophylaxis.detail.split("**Caution**")[1]
    assert "The NSAID ordered here meets a finding for which NSAIDs are avoided: eGFR 22" in caution
    assert "heart failure" in caution
    assert "Drafted in this order session: Heparin" in caution
    assert {"LIT-BEERS-RENAL", "LIT-BEERS-HF", "LIT-BEERS-ANTICOAG"} <= set(prophylaxis.rules)
    assert prophylaxis.suggestions == ()
    assert prophylaxis.indicator.value == "info"


def test_a_drafted_nsaid_beside_a_low_risk_tha_gives_no_card(run: Run) -> None:
    naproxen = medication_request("198014", "Naproxen 500 MG Oral Tablet", days_ago=0, status="draft")
    evaluation = run([patient("female", 60)], hook="order-sign", draft_orders=[tha_order(), naproxen])
    assert "ho-prophylaxis" not in topics(evaluation)


# ================= §6 (1.1): "from post-operative day 1" only on days 1-5 =================


def excision(days_ago: float) -> list[Resource]:
    return [
        patient("male", 45),
        GOOD_KIDNEYS,
        condition("S24.111A", days_ago=700),
        condition("M61.251", days_ago=500),
        procedure(HO_EXCISION, days_ago=days_ago),
    ]


@pytest.mark.parametrize("days_ago", [1, 3, 5.5])
def test_early_post_resection_card_states_the_day_1_start(run: Run, days_ago: float) -> None:
    prophylaxis = card(run(excision(days_ago)), "ho-prophylaxis")
    label = next(s.label for s in prophylaxis.suggestions if "ndomethacin" in s.label)
    assert "from post-operative day 1" in label
    assert "evidence for a later start is weak" not in prophylaxis.detail


@pytest.mark.parametrize("days_ago", [6, 9, 13])
def test_late_post_resection_card_says_the_late_start_evidence_is_weak(run: Run, days_ago: float) -> None:
    prophylaxis = card(run(excision(days_ago)), "ho-prophylaxis")
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    assert "from post-operative day 1" not in prophylaxis.detail
    assert all("from post-operative day 1" not in s.label for s in prophylaxis.suggestions)
    med = next(s.resource for s in prophylaxis.suggestions if s.resource["resourceType"] == "MedicationRequest")
    assert "day 1" not in med["dosageInstruction"][0]["text"]
    assert f"Post-operative day {int(days_ago)}" in prophylaxis.detail
    assert "evidence for a later start is weak" in prophylaxis.detail


def test_the_late_start_day_is_a_parameter(kb: Knowledge) -> None:
    assert kb.param("prophylaxis", "indomethacin_start_by_day") == 5


# ================= §1 (1.1): radiotherapy coding =================


def test_radiotherapy_is_megavoltage_77402_with_snomed_and_dose_in_text(run: Run) -> None:
    prophylaxis = tha_card(run, GOOD_KIDNEYS)
    rt = next(s.resource for s in prophylaxis.suggestions if s.resource["resourceType"] == "ServiceRequest")
    codes = {(c["system"], c["code"]) for c in rt["code"]["coding"]}
    assert ("http://www.ama-assn.org/go/cpt", "77402") in codes
    assert ("http://snomed.info/sct", "108290001") in codes
    assert "77401" not in {c for _, c in codes}
    assert "7 Gy" in rt["code"]["text"] and "72 h" in rt["code"]["text"]


def test_a_recorded_77401_still_counts_as_radiotherapy_given(run: Run) -> None:
    assert "ho-prophylaxis" not in topics(run(orif(procedure("77401", days_ago=1), days_ago=3)))


# ================= the observations prefetch asks for kidney function =================


def test_the_observations_prefetch_template_carries_the_kidney_function_codes(kb: Knowledge) -> None:
    from cds_hooks.services import prefetch_templates

    template = prefetch_templates(kb)["observations"]
    for code in (EGFR, EGFR_2021, "62238-1", "48642-3", "48643-1", CREATININE, "38483-4", CREATININE_UMOL):
        assert f"http://loinc.org|{code}" in template


# ================= thresholds are knowledge: an operator edits one place =================


def test_an_operator_copy_moves_the_age_threshold_and_the_card_text_follows(tmp_path: Any) -> None:
    from pathlib import Path

    from hofhir.clinical.evaluate import evaluate
    from hofhir.fhir.read import from_hook_request
    from hofhir.knowledge import load
    from tests.builders import request

    source = Path(__file__).resolve().parents[2] / "hofhir" / "knowledge" / "parameters.toml"
    edited = source.read_text().replace("avoid_from_age_years = 65", "avoid_from_age_years = 70")
    assert edited != source.read_text()
    (tmp_path / "parameters.toml").write_text(edited)
    k = load(tmp_path)
    record = [patient("male", 67), GOOD_KIDNEYS]
    assert screen(k, record).decision is Decision.SUGGEST
    old = [patient("male", 72), GOOD_KIDNEYS]
    s = screen(k, old)
    assert s.decision is Decision.NOT_SUGGESTED
    assert "from age 70" in s.avoid[0].text
    evaluation = evaluate(from_hook_request(request("order-sign", record, [tha_order()]), k.terminology), NOW, k)
    assert suggested_codes(card(evaluation, "ho-prophylaxis")) & INDOMETHACIN_CODES


def test_an_nsaid_ordered_with_a_coded_ho_reason_is_the_prophylaxis(run: Run) -> None:
    order = medication_request("197817", "indomethacin 25 MG Oral Capsule", days_ago=0, status="draft")
    order["reasonCode"] = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M61.251"}]}]
    evaluation = run([patient("male", 35), GOOD_KIDNEYS], hook="order-sign", draft_orders=[order])
    assert card(evaluation, "ho-prophylaxis").summary.startswith("This NSAID order")


def test_an_nsaid_whose_id_merely_contains_the_word_is_not_for_ho(run: Run) -> None:
    order = medication_request(
        "197817", "indomethacin 25 MG Oral Capsule", days_ago=0, status="draft", id="heterotopic-1"
    )
    assert run([patient("male", 35)], hook="order-sign", draft_orders=[order]).guidance == []


def test_on_order_select_an_nsaid_drafted_earlier_in_the_session_still_counts(run: Run) -> None:
    tha = tha_order()
    naproxen = medication_request("198014", "Naproxen 500 MG Oral Tablet", days_ago=0, status="draft")
    evaluation = run(
        [patient("male", 60), GOOD_KIDNEYS],
        hook="order-select",
        draft_orders=[tha, naproxen],
        selections=[f"ServiceRequest/{tha['id']}"],
    )
    prophylaxis = card(evaluation, "ho-prophylaxis")
    assert not suggested_codes(prophylaxis) & NSAID_CODES
    assert "Naproxen 500 MG Oral Tablet is drafted with this hip arthroplasty" in prophylaxis.detail

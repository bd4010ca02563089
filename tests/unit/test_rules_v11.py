"""ho-rules-v1 1.1, part B: the relevance window (§3a), current signs, HO already diagnosed, SAP by
population and unit, the DVT verification status and side (§4), the hip-radiograph intent and the
excision anchor (§5), and the TBI/SCI answers of §2/§3. One test (or a parametrized group) per rule.
"""

from __future__ import annotations

from typing import Any

import pytest

from hofhir.clinical.facts import PatientFacts, build_facts
from hofhir.clinical.rules.pictures import derive_populations
from hofhir.fhir.read import from_hook_request
from hofhir.knowledge import Knowledge
from hofhir.worker.writeback import detected_issue, risk_assessment
from tests.builders import (
    NOW,
    Resource,
    Run,
    card,
    condition,
    diagnostic_report,
    factor_status,
    factors,
    gcs,
    observation,
    patient,
    procedure,
    request,
    service_request,
    suggested_codes,
    temperature,
    topics,
)

SCI = "S24.131A"  # incomplete thoracic SCI: moderate for a 45-year-old
HO = "M61.251"
HO_EXCISION = "27036"
THA = "27130"
FEMUR_FRACTURE = "S72.301A"
HIP_STIFFNESS = "M25.651"
ERYTHEMA = "247441003"
TENDERNESS = "247348008"
LEFT_LEG_SWELLING = "R22.42"
LIMB_SWELLING = "80068009"  # SNOMED: swelling of limb (no side, no limb)
JOINT_SWELLING = "271771009"
DVT = "I82.401"
COMA = "R40.20"
CONCUSSION_BRIEF_LOC = "S06.0X1A"  # LOC of 30 minutes or less
TBI_LOC_UNSPECIFIED = "S06.2X9A"
HIP_XRAY = "73502"
ALP_LOINC = "6768-6"
CHART_TOPICS = {"ho-risk", "ho-surveillance", "ho-rehabilitation", "ho-education"}


def sci_at(days_ago: float, *extra: Resource) -> list[Resource]:
    return [patient("male", 45), condition(SCI, days_ago=days_ago), *extra]


def facts_of(kb: Knowledge, resources: list[Resource]) -> PatientFacts:
    inputs = from_hook_request(request("patient-view", resources), kb.terminology)
    facts = build_facts(inputs, kb, NOW)
    derive_populations(facts, kb)
    return facts


# ================= §3a the relevance window =================


@pytest.mark.parametrize(("days", "inside"), [(364, True), (365, True), (366, False), (3650, False)])
def test_relevance_window_edges_day_365_inside_366_outside(run: Run, days: int, inside: bool) -> None:
    evaluation = run(sci_at(days))
    assert ("ho-risk" in topics(evaluation)) is inside
    assert evaluation.trace["relevanceWindow"]["inside"] is inside
    assert evaluation.trace["relevanceWindow"]["windowDays"] == 365
    # Outside, the evaluation still runs: the assessment is in the trace, and the trace says why.
    assert evaluation.trace["riskLevel"] == "moderate"
    if not inside:
        assert evaluation.guidance == []
        assert evaluation.no_cards_reason == "outside-relevance-window"
        assert {w["topic"] for w in evaluation.trace["withheld"]} == {"ho-risk", "ho-rehabilitation"}


def test_the_window_length_is_a_parameter(kb: Knowledge, run: Run) -> None:
    from dataclasses import replace

    from hofhir.clinical.evaluate import evaluate

    longer = replace(kb, parameters={**kb.parameters, "relevance": {"window_days": 400}})
    inputs = from_hook_request(request("patient-view", sci_at(380)), kb.terminology)
    assert "ho-risk" in {g.topic.value for g in evaluate(inputs, NOW, longer).guidance}
    assert "ho-risk" not in topics(run(sci_at(380)))


def test_an_active_ho_keeps_the_chart_cards_for_an_old_injury(run: Run) -> None:
    evaluation = run(sci_at(5 * 365, condition(HO, days_ago=100)))
    assert {"ho-risk", "ho-rehabilitation"} <= topics(evaluation)
    assert evaluation.trace["relevanceWindow"]["reason"] == "active-ho"
    assert {"RH-05", "RH-12"} <= set(card(evaluation, "ho-rehabilitation").rules)


def test_an_old_or_resolved_ho_does_not_open_the_window(run: Run) -> None:
    assert topics(run(sci_at(5 * 365, condition(HO, days_ago=500)))) == set()
    assert topics(run(sci_at(5 * 365, condition(HO, days_ago=100, abated_days_ago=50)))) == set()


def test_an_ho_excision_in_the_last_12_months_keeps_the_chart_cards(run: Run) -> None:
    evaluation = run(sci_at(5 * 365, procedure(HO_EXCISION, days_ago=200)))
    assert "ho-risk" in topics(evaluation)
    assert evaluation.trace["relevanceWindow"]["reason"] == "recent-ho-excision"


def test_ho_suspected_now_opens_the_window(run: Run) -> None:
    # A resolved HO 60 days ago is history (not "HO active"), but new hip stiffness after it is suspicion.
    old_ho = condition(HO, days_ago=60, abated_days_ago=40)
    evaluation = run(sci_at(5 * 365, old_ho, condition(HIP_STIFFNESS, days_ago=3)))
    assert "ho-suspected" in topics(evaluation)
    assert evaluation.trace["relevanceWindow"]["reason"] == "ho-suspected"
    assert "ho-risk" in topics(evaluation)


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_order_hook_ignores_the_window(run: Run, hook: str) -> None:
    records = sci_at(10 * 365, condition(HO, days_ago=9 * 365))
    evaluation = run(records, hook=hook, draft_orders=[service_request(HO_EXCISION, id="excision")])
    readiness = card(evaluation, "ho-surgical-readiness")
    assert "sci" in readiness.populations
    assert evaluation.trace["relevanceWindow"]["inside"] is False
    assert evaluation.trace["withheld"] == []


def test_discharge_outside_the_window_gets_no_education(run: Run) -> None:
    assert run(sci_at(400), hook="encounter-discharge").guidance == []
    assert {"ho-risk", "ho-education"} <= topics(run(sci_at(40), hook="encounter-discharge"))


def test_no_cards_reason_codes(run: Run) -> None:
    assert run([patient(), condition("I10")]).no_cards_reason == "no-population"
    assert run([patient("male", 45, deceased=True), condition(SCI, days_ago=40)]).no_cards_reason == "deceased"
    assert run(sci_at(40)).no_cards_reason is None
    assert run(sci_at(40), hook="order-sign", draft_orders=[]).no_cards_reason == "no-relevant-orders"


def test_writeback_records_the_assessment_outside_the_window(run: Run) -> None:
    evaluation = run(sci_at(1000))
    assert evaluation.guidance == []
    assessment = risk_assessment(evaluation, "pt-1", NOW)
    (prediction,) = assessment["prediction"]
    assert prediction["qualitativeRisk"]["coding"][0]["code"] == "moderate"
    assert prediction["rationale"].startswith("Moderate risk")
    assert "N-05" in assessment["note"][0]["text"]
    assert detected_issue(evaluation, "pt-1", NOW) is None  # the DetectedIssue rules do not change


def test_writeback_inside_the_window_is_unchanged(run: Run) -> None:
    evaluation = run(sci_at(40))
    assessment = risk_assessment(evaluation, "pt-1", NOW)
    assert assessment["prediction"][0]["rationale"] == card(evaluation, "ho-risk").summary


# ================= §4 current signs =================


def sign(code: str, **kwargs: Any) -> Resource:
    return condition(snomed=code, **kwargs) if code.isdigit() else condition(code, **kwargs)


@pytest.mark.parametrize(
    ("label", "erythema_kwargs", "fires"),
    [
        ("active, 5 days", {"days_ago": 5}, True),
        ("no clinicalStatus, 5 days", {"days_ago": 5, "clinical_status": None}, True),
        ("resolved", {"days_ago": 20, "clinical_status": "resolved"}, False),
        ("abated 10 days ago (resolved)", {"days_ago": 20, "abated_days_ago": 10}, False),
        ("past abatement, no clinicalStatus", {"days_ago": 20, "abated_days_ago": 10, "clinical_status": None}, False),
        ("inactive", {"days_ago": 5, "clinical_status": "inactive"}, False),
        ("remission", {"days_ago": 5, "clinical_status": "remission"}, False),
        ("active but onset 31 days ago", {"days_ago": 31}, False),
    ],
)
def test_a_sign_counts_only_while_current(run: Run, label: str, erythema_kwargs: dict[str, Any], fires: bool) -> None:
    both = [sign(ERYTHEMA, **erythema_kwargs), sign(TENDERNESS, **erythema_kwargs)]
    evaluation = run(sci_at(60, *both))
    assert ("ho-suspected" in topics(evaluation)) is fires, label


def test_an_observed_sign_older_than_30_days_is_not_current(run: Run) -> None:
    stiff_obs = observation(snomed="249914008", value_boolean=True, days_ago=31)
    assert "ho-suspected" not in topics(run(sci_at(60, stiff_obs)))
    recent = observation(snomed="249914008", value_boolean=True, days_ago=29)
    assert "ho-suspected" in topics(run(sci_at(60, recent)))


def test_resolved_signs_after_tha_give_surveillance_without_sap_and_no_suspicion(run: Run) -> None:
    # Vignette s16 in small: THA 30 days ago in a man (R-01: moderate), erythema and tenderness resolved.
    resolved = [sign(ERYTHEMA, days_ago=20, abated_days_ago=10), sign(TENDERNESS, days_ago=20, abated_days_ago=10)]
    evaluation = run([patient("male", 57), procedure(THA, days_ago=30), *resolved])
    assert {"ho-risk", "ho-surveillance"} <= topics(evaluation)
    assert not {"ho-suspected", "dvt-differential"} & topics(evaluation)
    assert ALP_LOINC not in suggested_codes(card(evaluation, "ho-surveillance"))


# ================= §4 HO already diagnosed =================


def test_ho_on_imaging_after_the_injury_means_no_suspicion_and_no_imaging(run: Run) -> None:
    report = diagnostic_report(
        cpt="78315", conclusion="Increased uptake consistent with heterotopic ossification, right hip", days_ago=5
    )
    evaluation = run(sci_at(60, report, condition(HIP_STIFFNESS, days_ago=3)))
    assert "ho-suspected" not in topics(evaluation)
    assert not any(suggested_codes(g) & {"78315", HIP_XRAY} for g in evaluation.guidance)
    assert {"RH-05", "RH-12"} <= set(card(evaluation, "ho-rehabilitation").rules)


def test_a_negative_imaging_report_is_not_ho_diagnosed(run: Run) -> None:
    report = diagnostic_report(cpt="78315", conclusion="No evidence of heterotopic ossification.", days_ago=5)
    assert "ho-suspected" in topics(run(sci_at(60, report, condition(HIP_STIFFNESS, days_ago=3))))


def test_an_active_ho_before_the_latest_injury_does_not_close_the_question(run: Run) -> None:
    # HO after an injury years ago, a new SCI 60 days ago and new stiffness: is this new HO? Still the question.
    old_ho = condition(HO, days_ago=800)
    evaluation = run([patient("male", 45), condition(SCI, days_ago=60), old_ho, condition(HIP_STIFFNESS, days_ago=3)])
    assert "ho-suspected" in topics(evaluation)


# ================= §4 SAP: which populations, which weeks =================


def test_no_sap_suggestion_after_surgery_the_card_says_it_is_non_specific(run: Run) -> None:
    surveillance = card(run([patient("male", 60), procedure(THA, days_ago=30)]), "ho-surveillance")
    assert ALP_LOINC not in suggested_codes(surveillance)
    assert "non-specific here (L-01)" in surveillance.detail


@pytest.mark.parametrize(("days", "suggested"), [(13, False), (14, True), (84, True), (85, False), (200, False)])
def test_sap_for_sci_only_in_weeks_2_to_12(run: Run, days: int, suggested: bool) -> None:
    surveillance = card(run(sci_at(days)), "ho-surveillance")
    assert (ALP_LOINC in suggested_codes(surveillance)) is suggested


def test_sap_any_time_in_the_window_when_ho_is_suspected(run: Run) -> None:
    evaluation = run(sci_at(200, condition(HIP_STIFFNESS, days_ago=3)))
    assert "ho-suspected" in topics(evaluation)
    assert ALP_LOINC in suggested_codes(card(evaluation, "ho-surveillance"))


# ================= §4 units =================


@pytest.mark.parametrize(
    ("value", "unit", "converted", "read_as", "above"),
    [
        (100.0, "U/L", 100.0, "U/L", False),
        (200.0, "U/L", 200.0, "U/L", True),
        (200.0, "IU/L", 200.0, "IU/L", True),  # read as is (1 IU/L = 1 U/L)
        (3.6, "ukat/L", 216.0, "U/L", True),  # 3.6 µkat/L = 216 U/L, over the default 147
        (1.5, "ukat/L", 90.0, "U/L", False),
    ],
)
def test_alp_units_are_read_or_converted(
    kb: Knowledge, value: float, unit: str, converted: float, read_as: str, above: bool
) -> None:
    facts = facts_of(kb, [patient(), observation(ALP_LOINC, value, unit, days_ago=1)])
    m = facts.latest_result("alp")
    assert m is not None and m.unit_known
    assert (m.value, m.unit) == (converted, read_as)
    assert m.range_source.startswith("default")
    assert m.above_range is above


def test_alp_in_ukat_with_a_lab_range_converts_the_range_too(kb: Knowledge) -> None:
    facts = facts_of(kb, [patient(), observation(ALP_LOINC, 3.0, "ukat/L", 1, 0.6, 2.0)])
    m = facts.latest_result("alp")
    assert m is not None and (m.value, m.low, m.high, m.range_source) == (180.0, 36.0, 120.0, "lab")
    assert m.above_range is True
    assert m.original == "3 ukat/L"


def test_alp_in_an_unknown_unit_is_unknown_with_its_unit(kb: Knowledge, run: Run) -> None:
    facts = facts_of(kb, [patient(), observation(ALP_LOINC, 200.0, "mmol/L", days_ago=1)])
    m = facts.latest_result("alp")
    assert m is not None and not m.unit_known and m.above_range is None
    surveillance = card(run(sci_at(40, observation(ALP_LOINC, 200.0, "mmol/L", days_ago=1))), "ho-surveillance")
    assert "200 mmol/L" in surveillance.detail and "cannot read" in surveillance.detail
    readiness = card(
        run(
            sci_at(400, observation(ALP_LOINC, 200.0, "mmol/L", days_ago=1)),
            hook="order-sign",
            draft_orders=[service_request(HO_EXCISION)],
        ),
        "ho-surgical-readiness",
    )
    assert "Unknown: latest ALP within range (ALP 200 mmol/L: unit not readable)" in readiness.detail


def test_temperature_in_fahrenheit_is_converted_before_the_threshold(kb: Knowledge) -> None:
    facts = facts_of(kb, [patient(), temperature(101.0, "[degF]")])
    m = facts.latest_result("body_temperature")
    assert m is not None and m.unit == "Cel" and m.value == pytest.approx(38.33, abs=0.01)


# ================= §4 DVT =================


@pytest.mark.parametrize(
    ("verification", "fires"),
    [("confirmed", False), (None, False), ("unconfirmed", True), ("provisional", True), ("differential", True)],
)
def test_dvt_is_established_only_when_confirmed_or_unstated(run: Run, verification: str | None, fires: bool) -> None:
    dvt = condition(DVT, days_ago=1, verification=verification)
    evaluation = run(sci_at(30, condition(LEFT_LEG_SWELLING, days_ago=1), dvt))
    assert ("dvt-differential" in topics(evaluation)) is fires
    if fires:
        assert f"DVT recorded as {verification}" in card(evaluation, "dvt-differential").detail


def test_dvt_summary_names_swelling_only_when_swelling_is_recorded(run: Run) -> None:
    swollen = card(run(sci_at(40, condition(LEFT_LEG_SWELLING, days_ago=2))), "dvt-differential")
    assert "limb swelling" in swollen.summary
    suspected = card(run(sci_at(40, condition(HIP_STIFFNESS, days_ago=2))), "dvt-differential")
    assert suspected.summary.startswith("Suspected HO: rule out DVT")
    assert "swelling" not in suspected.summary.lower()
    assert "Limb swelling recorded" not in suspected.detail


def test_the_duplex_names_the_side_the_record_gives(run: Run) -> None:
    dvt = card(run(sci_at(40, condition(LEFT_LEG_SWELLING, days_ago=2))), "dvt-differential")
    (suggestion,) = dvt.suggestions
    assert "93971" in suggested_codes(dvt)
    assert suggestion.resource["bodySite"][0]["text"] == "left lower extremity"
    assert "left" in suggestion.description
    by_text = card(run(sci_at(40, condition("R22.43", days_ago=2, body_site="Right calf"))), "dvt-differential")
    assert "93970" in suggested_codes(by_text)  # R22.43 is bilateral: not one side


def test_upper_limb_swelling_alone_is_no_reason_for_a_leg_duplex(run: Run) -> None:
    # SNOMED 80068009 "Swelling of limb" and 271771009 "Joint swelling" say no limb: the bodySite does.
    forearm = condition(snomed=LIMB_SWELLING, days_ago=2, body_site="Left forearm")
    assert "dvt-differential" not in topics(run(sci_at(40, forearm)))
    elbow = condition(snomed=JOINT_SWELLING, days_ago=2, body_site="Right elbow")
    assert "dvt-differential" not in topics(run(sci_at(40, elbow)))
    calf = card(run(sci_at(40, condition(snomed=LIMB_SWELLING, days_ago=2, body_site="Left calf"))), "dvt-differential")
    assert calf.suggestions[0].resource["bodySite"][0]["text"] == "left lower extremity"
    # Upper-limb swelling beside suspected HO: the card fires for the suspicion, and names no swelling.
    suspected = run(sci_at(40, forearm, condition(HIP_STIFFNESS, days_ago=2)))
    assert card(suspected, "dvt-differential").summary.startswith("Suspected HO")


# ================= §5 hip radiograph intent =================


def xray(**kwargs: Any) -> Resource:
    return service_request(HIP_XRAY, text="XR hip 2-3 views", **kwargs)


def test_a_routine_film_after_tha_gets_no_card(run: Run) -> None:
    order = xray(reason_text="Post-operative implant check")
    evaluation = run([patient(), procedure(THA, days_ago=2)], hook="order-sign", draft_orders=[order])
    assert evaluation.guidance == []


def test_a_film_whose_reason_names_ho_gets_the_card(run: Run) -> None:
    order = xray(reason_text="Rule out heterotopic ossification")
    evaluation = run([patient(), procedure(THA, days_ago=10)], hook="order-sign", draft_orders=[order])
    assert "ho-imaging" in topics(evaluation)


def test_a_film_whose_reason_reference_is_a_sign_gets_the_card(run: Run) -> None:
    stiff = condition(HIP_STIFFNESS, days_ago=1, id="stiff-1")
    order = xray()
    order["reasonReference"] = [{"reference": "Condition/stiff-1"}]
    evaluation = run(sci_at(10, stiff), hook="order-select", draft_orders=[order])
    assert "ho-imaging" in topics(evaluation)


def test_a_film_for_a_patient_meeting_ho_suspected_now_gets_the_card(run: Run) -> None:
    evaluation = run(sci_at(16, condition(HIP_STIFFNESS, days_ago=1)), hook="order-sign", draft_orders=[xray()])
    assert "ho-imaging" in topics(evaluation)
    assert run(sci_at(16), hook="order-sign", draft_orders=[xray()]).guidance == []


# ================= §5 excision anchor =================


def test_excision_is_anchored_on_the_injury_before_the_ho_not_a_later_fracture(run: Run) -> None:
    records = [
        patient("male", 45),
        condition(SCI, days_ago=913),  # about 30 months ago
        condition(HO, days_ago=800),
        condition(FEMUR_FRACTURE, days_ago=60),  # unrelated, later
    ]
    readiness = card(
        run(records, hook="order-sign", draft_orders=[service_request(HO_EXCISION)]), "ho-surgical-readiness"
    )
    assert "Met: 12 months or more since the injury (30 months since" in readiness.detail
    assert "under 12 months" not in readiness.summary


def test_excision_without_an_ho_onset_uses_the_most_recent_index_event(run: Run) -> None:
    records = [
        patient("male", 45),
        condition(SCI, days_ago=913),
        condition(HO, days_ago=None),
        condition(FEMUR_FRACTURE, days_ago=60),
    ]
    readiness = card(
        run(records, hook="order-sign", draft_orders=[service_request(HO_EXCISION)]), "ho-surgical-readiness"
    )
    assert "Not met: 12 months or more since the injury (2 months since" in readiness.detail
    assert "under 12 months" in readiness.summary


# ================= §2/§3 TBI and SCI answers =================


def test_a_recorded_gcs_15_makes_severe_injury_absent(run: Run) -> None:
    evaluation = run([patient("male", 40), condition(TBI_LOC_UNSPECIFIED, days_ago=40), gcs(15, days_ago=39)])
    assert factor_status(evaluation, "tbi", "N-07") == "absent"
    detail = card(evaluation, "ho-risk").detail
    assert "no GCS" not in detail
    assert "lowest GCS recorded 15" in detail


def test_no_gcs_is_said_only_when_none_is_recorded(run: Run) -> None:
    evaluation = run([patient("male", 40), condition(TBI_LOC_UNSPECIFIED, days_ago=40)])
    assert factor_status(evaluation, "tbi", "N-07") == "unknown"
    assert "no GCS recorded" in card(evaluation, "ho-risk").detail


def test_a_concussion_with_brief_loc_makes_loc_over_24h_absent(run: Run) -> None:
    evaluation = run([patient("male", 40), condition(CONCUSSION_BRIEF_LOC, days_ago=40)])
    (n07,) = factors(evaluation, "tbi")["N-07"]
    assert "loss of consciousness over 24 h: absent" in n07["evidence"]
    assert "no loss-of-consciousness" not in n07["evidence"]


def test_n01_uses_the_age_at_the_earliest_sci_event(run: Run) -> None:
    # 45 now; SCI 20 years ago at 25 (not over 30); a later SCI-coded entry a month ago (at 44).
    evaluation = run([patient("male", 45), condition(SCI, days_ago=20 * 365.25), condition("S24.101A", days_ago=30)])
    assert factor_status(evaluation, "sci", "N-01") == "absent"
    (n01,) = factors(evaluation, "sci")["N-01"]
    assert n01["evidence"] == "25 years"


def test_coma_is_tbi_only_within_30_days_of_a_trauma_code(run: Run) -> None:
    near = run([patient(), condition(FEMUR_FRACTURE, days_ago=100), condition(COMA, days_ago=95)])
    assert "tbi" in near.trace["populations"]
    far = run([patient(), condition(FEMUR_FRACTURE, days_ago=800), condition(COMA, days_ago=95)])
    assert "tbi" not in far.trace["populations"]


def test_chart_topics_outside_the_window_are_all_chart_card_topics(run: Run) -> None:
    evaluation = run(sci_at(2000, condition("L89.154", days_ago=1900)))
    assert {w["topic"] for w in evaluation.trace["withheld"]} <= CHART_TOPICS


def test_alp_in_ukat_without_a_range_is_read_as_raised_on_the_card(run: Run) -> None:
    surveillance = card(run(sci_at(40, observation(ALP_LOINC, 3.6, "ukat/L", days_ago=1))), "ho-surveillance")
    assert "The latest ALP (216 U/L, recorded as 3.6 ukat/L) is above the reference range" in surveillance.detail


def test_the_no_cards_reason_reads_in_plain_words(kb: Knowledge, run: Run) -> None:
    from hofhir.clinical.evaluate import no_cards_message

    assert no_cards_message(run(sci_at(40)), kb) is None
    message = no_cards_message(run(sci_at(400)), kb)
    assert message is not None and "relevance window" in message and "365 days" in message
    assert no_cards_message(run([patient(), condition("I10")]), kb) == (
        "No heterotopic ossification risk population in the record."
    )

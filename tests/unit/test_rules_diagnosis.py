"""Surveillance, suspicion, the DVT differential and imaging by time (ho-rules-v1 §4)."""

from __future__ import annotations

import pytest

from tests.builders import (
    SNOMED_ABSENT,
    Resource,
    Run,
    alp,
    card,
    condition,
    diagnostic_report,
    medication_request,
    observation,
    patient,
    procedure,
    service_request,
    suggested_codes,
    temperature,
    topics,
)

SCI = "S24.131A"  # incomplete thoracic SCI: moderate for a 45-year-old (1 of 4 factors)
STROKE = "I63.9"
HIP_STIFFNESS = "M25.651"  # D-10
LEG_SWELLING = "R22.41"  # D-11 swelling, right lower limb
ERYTHEMA = "247441003"  # D-11 (SNOMED)
TENDERNESS = "247348008"  # D-11 (SNOMED)
HIP_STIFF_SNOMED = "249914008"
BONE_SCAN = "78315"
HIP_XRAY = "73502"
DUPLEX_CODES = {"93970", "93971"}
ALP_LOINC = "6768-6"


def sci_at(days_ago: float, *extra: Resource) -> list[Resource]:
    return [patient("male", 45), condition(SCI, days_ago=days_ago), *extra]


def erythema(days_ago: float = 3) -> Resource:
    return condition(snomed=ERYTHEMA, days_ago=days_ago)


def swelling(days_ago: float = 3, **kwargs: object) -> Resource:
    return condition(LEG_SWELLING, days_ago=days_ago, **kwargs)  # type: ignore[arg-type]


def stiffness(days_ago: float = 3) -> Resource:
    return condition(HIP_STIFFNESS, days_ago=days_ago)


# ================= surveillance window and SAP =================


@pytest.mark.parametrize(("days", "fires"), [(0, True), (14, True), (84, True), (365, True), (366, False)])
def test_surveillance_window_edges(run: Run, days: float, fires: bool) -> None:
    evaluation = run(sci_at(days))
    assert ("ho-surveillance" in topics(evaluation)) is fires


def test_surveillance_card_is_info_and_cites_the_timeline(run: Run) -> None:
    surveillance = card(run(sci_at(40)), "ho-surveillance")
    assert surveillance.indicator.value == "info"
    assert {"D-01", "D-02", "D-04", "L-01"} <= set(surveillance.rules)
    assert surveillance.populations == ("sci",)


MODERATE_OR_HIGH = {
    "sci": [patient("male", 45), condition(SCI, days_ago=40)],
    "tbi": [patient(), condition("S06.2X6A", days_ago=40)],
    "tha": [patient("male", 60), procedure("27130", days_ago=40)],
    "acetabular-orif": [patient(), procedure("27226", days_ago=40)],
    "burn": [patient(), condition("T24.311A", days_ago=40)],
    "stroke": [patient(), condition(STROKE, days_ago=40), condition("Z74.01", days_ago=30)],
    "fracture": [patient(), condition("S72.301A", days_ago=40), condition("Z74.01", days_ago=30)],
}


@pytest.mark.parametrize("population", sorted(MODERATE_OR_HIGH))
def test_every_moderate_or_high_population_gets_surveillance(run: Run, population: str) -> None:
    surveillance = card(run(MODERATE_OR_HIGH[population]), "ho-surveillance")
    assert surveillance.populations == (population,)


@pytest.mark.parametrize("population", sorted(MODERATE_OR_HIGH))
def test_every_population_can_raise_suspicion(run: Run, population: str) -> None:
    suspected = card(run([*MODERATE_OR_HIGH[population], stiffness(days_ago=2)]), "ho-suspected")
    assert suspected.populations == (population,)


def test_low_risk_gets_no_surveillance(run: Run) -> None:
    evaluation = run([patient(), condition(STROKE, days_ago=40)])
    assert "ho-risk" in topics(evaluation)
    assert "ho-surveillance" not in topics(evaluation)


def test_high_risk_inside_the_window_gets_surveillance(run: Run) -> None:
    assert "ho-surveillance" in topics(run([patient(), procedure("27226", days_ago=20)]))


def test_undated_index_event_gets_no_surveillance(run: Run) -> None:
    evaluation = run([patient("male", 45), condition(SCI, days_ago=None)])
    # 1.1 §3a: an undated event cannot place the patient in the relevance window: no chart card,
    # the assessment stays in the trace.
    assert "ho-risk" not in topics(evaluation)
    assert evaluation.trace["riskLevel"] == "moderate"
    assert "ho-surveillance" not in topics(evaluation)


@pytest.mark.parametrize(("days", "suggested"), [(13, False), (14, True), (40, True)])
def test_alp_is_suggested_only_from_day_14(run: Run, days: float, suggested: bool) -> None:
    surveillance = card(run(sci_at(days)), "ho-surveillance")
    assert (ALP_LOINC in suggested_codes(surveillance)) is suggested


def test_alp_suggestion_is_a_valid_lab_service_request(run: Run) -> None:
    surveillance = card(run(sci_at(40)), "ho-surveillance")
    (suggestion,) = surveillance.suggestions
    assert suggestion.resource["resourceType"] == "ServiceRequest"
    assert suggestion.resource["subject"] == {"reference": "Patient/pt-1"}


def test_no_alp_suggested_when_one_resulted_in_the_last_14_days(run: Run) -> None:
    surveillance = card(run(sci_at(40, alp(90, days_ago=10))), "ho-surveillance")
    assert surveillance.suggestions == ()


def test_alp_suggested_when_the_last_one_is_older_than_14_days(run: Run) -> None:
    surveillance = card(run(sci_at(40, alp(90, days_ago=20))), "ho-surveillance")
    assert ALP_LOINC in suggested_codes(surveillance)


def test_no_alp_suggested_when_an_alp_order_is_active(run: Run) -> None:
    order = service_request(loinc=ALP_LOINC, status="active", days_ago=20)
    surveillance = card(run(sci_at(40, order)), "ho-surveillance")
    assert surveillance.suggestions == ()


def test_revoked_alp_order_does_not_suppress_the_suggestion(run: Run) -> None:
    order = service_request(loinc=ALP_LOINC, status="revoked", days_ago=5)
    surveillance = card(run(sci_at(40, order)), "ho-surveillance")
    assert ALP_LOINC in suggested_codes(surveillance)


def test_elevated_alp_is_stated_as_non_specific_and_does_not_raise_suspicion(run: Run) -> None:
    evaluation = run(sci_at(40, alp(310, days_ago=2)))
    assert "ho-suspected" not in topics(evaluation)
    detail = card(evaluation, "ho-surveillance").detail
    assert "(310 U/L) is above the reference range" in detail
    assert "non-specific on its own; examine for clinical signs" in detail


def test_elevated_alp_judged_by_the_default_range_when_the_lab_gives_none(run: Run) -> None:
    raised = alp(180, days_ago=2, ref_low=None, ref_high=None)
    detail = card(run(sci_at(40, raised)), "ho-surveillance").detail
    assert "(180 U/L) is above the reference range (44-147 U/L, default)" in detail


def test_alp_within_the_lab_range_is_not_called_elevated(run: Run) -> None:
    # 180 U/L is above the default 147 but inside this lab's range
    detail = card(run(sci_at(40, alp(180, days_ago=2, ref_low=50, ref_high=200))), "ho-surveillance").detail
    assert "above the reference range" not in detail


def test_alp_at_the_upper_limit_is_not_above_it(run: Run) -> None:
    detail = card(run(sci_at(40, alp(130, days_ago=2, ref_low=40, ref_high=130))), "ho-surveillance").detail
    assert "above the reference range" not in detail


@pytest.mark.parametrize(("days", "said"), [(40, True), (84, True), (120, False)])
def test_weeks_2_to_12_are_the_period_of_greatest_attention(run: Run, days: float, said: bool) -> None:
    detail = card(run(sci_at(days)), "ho-surveillance").detail
    assert ("greatest attention" in detail) is said


# ================= suspicion (D-10..D-14) =================


def test_decreased_hip_rom_alone_raises_suspicion(run: Run) -> None:
    suspected = card(run(sci_at(40, stiffness())), "ho-suspected")
    assert suspected.indicator.value == "warning"
    assert "D-10" in suspected.rules
    assert suspected.populations == ("sci",)


def test_two_local_signs_raise_suspicion(run: Run) -> None:
    suspected = card(run(sci_at(40, erythema(), condition(snomed=TENDERNESS, days_ago=2))), "ho-suspected")
    assert "D-11" in suspected.rules


def test_one_local_sign_alone_does_not_raise_suspicion(run: Run) -> None:
    assert "ho-suspected" not in topics(run(sci_at(40, erythema())))


def test_one_local_sign_with_fever_raises_suspicion(run: Run) -> None:
    suspected = card(run(sci_at(40, erythema(), temperature(38.4, days_ago=1))), "ho-suspected")
    assert {"D-11", "D-12"} <= set(suspected.rules)


def test_fever_threshold_is_38_celsius(run: Run) -> None:
    assert "ho-suspected" in topics(run(sci_at(40, erythema(), temperature(38.0, days_ago=1))))
    assert "ho-suspected" not in topics(run(sci_at(40, erythema(), temperature(37.9, days_ago=1))))


def test_fever_in_fahrenheit_is_converted(run: Run) -> None:
    assert "ho-suspected" in topics(run(sci_at(40, erythema(), temperature(101.0, "[degF]", days_ago=1))))
    assert "ho-suspected" not in topics(run(sci_at(40, erythema(), temperature(99.5, "[degF]", days_ago=1))))


def test_one_local_sign_with_new_spasticity_raises_suspicion(run: Run) -> None:
    spasticity = condition(snomed="221360009", days_ago=5)
    suspected = card(run(sci_at(40, erythema(), spasticity)), "ho-suspected")
    assert {"D-11", "D-14"} <= set(suspected.rules)


def test_fever_alone_does_not_raise_suspicion(run: Run) -> None:
    assert "ho-suspected" not in topics(run(sci_at(40, temperature(39.0, days_ago=1))))


@pytest.mark.parametrize(("index_days", "fires"), [(10, False), (16, True), (360, True), (400, False)])
def test_suspicion_only_from_2_weeks_to_12_months(run: Run, index_days: float, fires: bool) -> None:
    evaluation = run(sci_at(index_days, stiffness(days_ago=1)))
    assert ("ho-suspected" in topics(evaluation)) is fires


def test_undated_sign_cannot_be_placed_in_the_window(run: Run) -> None:
    assert "ho-suspected" not in topics(run(sci_at(40, condition(HIP_STIFFNESS, days_ago=None))))


def test_undated_index_event_raises_no_suspicion(run: Run) -> None:
    evaluation = run([patient("male", 45), condition(SCI, days_ago=None), stiffness()])
    assert "ho-suspected" not in topics(evaluation)


def test_sign_recorded_before_the_window_does_not_count(run: Run) -> None:
    # stiffness recorded on day 5 after the injury (before bone formation can start)
    assert "ho-suspected" not in topics(run(sci_at(40, stiffness(days_ago=35))))


def test_resolved_sign_does_not_count(run: Run) -> None:
    old = condition(HIP_STIFFNESS, days_ago=80, abated_days_ago=60)
    assert "ho-suspected" not in topics(run(sci_at(120, old)))


def test_suspicion_in_a_low_risk_population_too(run: Run) -> None:
    evaluation = run([patient(), condition(STROKE, days_ago=60), stiffness()])
    assert card(evaluation, "ho-risk").risk_level == "low"
    assert "ho-suspected" in topics(evaluation)


def test_suspicion_from_ho_history(run: Run) -> None:
    # 1.1 §4: an active HO condition is HO already diagnosed: no ho-suspected card; the rehabilitation
    # card gives the active-HO guidance instead.
    evaluation = run([patient(), condition("M61.251", days_ago=60), stiffness()])
    assert "ho-suspected" not in topics(evaluation)
    assert {"RH-05", "RH-12"} <= set(card(evaluation, "ho-rehabilitation").rules)
    # A resolved HO of an earlier episode is history: the new signs still raise the question.
    resolved = condition("M61.251", days_ago=60, abated_days_ago=30)
    assert "ho-history" in card(run([patient(), resolved, stiffness()]), "ho-suspected").populations


def test_no_population_no_suspicion(run: Run) -> None:
    assert run([patient(), stiffness(), erythema(), swelling()]).guidance == []


def test_sign_as_positive_observation_counts(run: Run) -> None:
    finding = observation(snomed=HIP_STIFF_SNOMED, value_boolean=True, days_ago=2)
    assert "D-10" in card(run(sci_at(40, finding)), "ho-suspected").rules


@pytest.mark.parametrize(
    "negative",
    [{"value_boolean": False}, {"value_concept": SNOMED_ABSENT}],
    ids=["valueBoolean-false", "snomed-absent"],
)
def test_sign_recorded_as_absent_is_not_a_sign(run: Run, negative: Resource) -> None:
    finding = observation(snomed=HIP_STIFF_SNOMED, days_ago=2, id="no-stiffness", **negative)
    evaluation = run(sci_at(40, finding))
    assert "ho-suspected" not in topics(evaluation)
    assert any(item.startswith("Observation/no-stiffness") for item in evaluation.trace["ignored"])


def test_elevated_alp_with_signs_strengthens_the_wording(run: Run) -> None:
    with_alp = card(run(sci_at(40, stiffness(), alp(250, days_ago=5))), "ho-suspected")
    without = card(run(sci_at(40, stiffness())), "ho-suspected")
    assert "L-01" in with_alp.rules
    assert "raised ALP" in with_alp.summary
    assert "raised ALP" not in without.summary


def test_elevated_alp_older_than_4_weeks_does_not_strengthen(run: Run) -> None:
    suspected = card(run(sci_at(80, stiffness(), alp(250, days_ago=40))), "ho-suspected")
    assert "raised ALP" not in suspected.summary


# ================= imaging by time since the index date =================


def test_under_2_months_suggests_a_bone_scan_only(run: Run) -> None:
    suspected = card(run(sci_at(30, stiffness())), "ho-suspected")
    codes = suggested_codes(suspected)
    assert BONE_SCAN in codes
    assert HIP_XRAY not in codes
    assert "I-01" in suspected.rules


def test_later_suggests_radiograph_and_bone_scan(run: Run) -> None:
    suspected = card(run(sci_at(90, stiffness())), "ho-suspected")
    assert {BONE_SCAN, HIP_XRAY} <= suggested_codes(suspected)
    assert {"I-01", "I-02"} <= set(suspected.rules)


def test_ultrasound_is_mentioned_as_an_option(run: Run) -> None:
    suspected = card(run(sci_at(30, stiffness())), "ho-suspected")
    assert "I-03" in suspected.rules
    assert "Ultrasound" in suspected.detail


def test_no_imaging_suggested_when_a_bone_scan_was_done_in_the_last_14_days(run: Run) -> None:
    suspected = card(run(sci_at(30, stiffness(), procedure(BONE_SCAN, days_ago=5))), "ho-suspected")
    assert suspected.suggestions == ()


def test_bone_scan_report_in_the_last_14_days_also_counts(run: Run) -> None:
    report = diagnostic_report("39883-4", conclusion="Increased uptake right hip", days_ago=4)
    suspected = card(run(sci_at(30, stiffness(), report)), "ho-suspected")
    assert BONE_SCAN not in suggested_codes(suspected)


def test_later_bone_scan_done_is_not_suggested_again(run: Run) -> None:
    suspected = card(run(sci_at(90, stiffness(), procedure(BONE_SCAN, days_ago=5))), "ho-suspected")
    assert BONE_SCAN not in suggested_codes(suspected)


def test_bone_scan_older_than_14_days_is_suggested_again(run: Run) -> None:
    suspected = card(run(sci_at(40, stiffness(), procedure(BONE_SCAN, days_ago=20))), "ho-suspected")
    assert BONE_SCAN in suggested_codes(suspected)


# ================= DVT differential (DD-03) =================


def test_swelling_without_duplex_gives_the_dvt_card(run: Run) -> None:
    dvt = card(run(sci_at(40, swelling())), "dvt-differential")
    assert dvt.indicator.value == "warning"
    assert "DD-03" in dvt.rules
    assert suggested_codes(dvt) & DUPLEX_CODES
    assert dvt.override_reasons


def test_unilateral_swelling_suggests_a_unilateral_duplex(run: Run) -> None:
    dvt = card(run(sci_at(40, swelling(body_site="Right lower leg"))), "dvt-differential")
    assert "93971" in suggested_codes(dvt)


def test_suspected_ho_without_swelling_also_gives_the_dvt_card(run: Run) -> None:
    evaluation = run(sci_at(40, stiffness()))
    assert {"ho-suspected", "dvt-differential"} <= topics(evaluation)


def test_no_dvt_card_when_a_duplex_was_done_in_the_last_7_days(run: Run) -> None:
    assert "dvt-differential" not in topics(run(sci_at(40, swelling(), procedure("93970", days_ago=3))))


def test_no_dvt_card_when_a_duplex_is_ordered(run: Run) -> None:
    order = service_request("93971", status="active", days_ago=1)
    assert "dvt-differential" not in topics(run(sci_at(40, swelling(), order)))


def test_dvt_card_when_the_last_duplex_is_older_than_7_days(run: Run) -> None:
    assert "dvt-differential" in topics(run(sci_at(40, swelling(), procedure("93970", days_ago=10))))


def test_no_dvt_card_when_a_dvt_is_established(run: Run) -> None:
    evaluation = run(sci_at(40, swelling(), condition("I82.401", days_ago=2)))
    assert "dvt-differential" not in topics(evaluation)


def test_resolved_dvt_does_not_answer_the_differential(run: Run) -> None:
    old_dvt = condition("I82.401", days_ago=300, abated_days_ago=200)
    assert "dvt-differential" in topics(run(sci_at(40, swelling(), old_dvt)))


def test_swelling_without_an_at_risk_population_gives_no_dvt_card(run: Run) -> None:
    assert run([patient(), swelling()]).guidance == []


def test_dvt_card_also_for_a_low_risk_population(run: Run) -> None:
    evaluation = run([patient(), condition("S72.301A", days_ago=30), swelling()])
    assert "dvt-differential" in topics(evaluation)


def test_anticoagulant_does_not_hide_the_dvt_differential(run: Run) -> None:
    drug = medication_request(text="Enoxaparin sodium 40 MG/0.4 ML Prefilled Syringe", days_ago=2)
    assert "dvt-differential" in topics(run(sci_at(40, swelling(), drug)))

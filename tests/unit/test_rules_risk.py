"""Index populations (ho-rules-v1 §2), risk levels and factors (§3), and what is ignored (§9)."""

from __future__ import annotations

import pytest

from tests.builders import (
    NOW,
    Resource,
    Run,
    card,
    condition,
    factor_status,
    factors,
    gcs,
    level,
    medication_request,
    observation,
    patient,
    procedure,
    temperature,
    topics,
)

# Codes used throughout (ICD-10-CM unless marked).
SCI_T1_COMPLETE = "S24.111A"
SCI_T1_INCOMPLETE = "S24.131A"  # anterior cord syndrome at T1
SCI_T1_UNSPECIFIED = "S24.101A"  # neither complete nor incomplete said
SCI_L1_INCOMPLETE = "S34.121A"
SCI_L1_COMPLETE = "S34.111A"
PRESSURE_ULCER = "L89.154"
SPASTICITY_SNOMED = "221360009"
TBI_BRIEF_LOC = "S06.0X1A"  # concussion, LOC 30 min or less
TBI_LOC_OVER_24H = "S06.2X6A"
COMA = "R40.20"
FEMUR_FRACTURE = "S72.301A"
STROKE = "I63.9"
BED_CONFINEMENT = "Z74.01"
THA = "27130"
REVISION_THA = "27134"
HEMIARTHROPLASTY = "27125"
ACETABULAR_ORIF = "27226"
ANKYLOSING_SPONDYLITIS = "M45.9"
BURN_THIRD_DEGREE_THIGH = "T24.311A"
BURN_SECOND_DEGREE_THIGH = "T24.211A"


def sci_case(
    code: str = SCI_T1_COMPLETE,
    *extra: Resource,
    age: int | None = 45,
    days_ago: float = 40,
) -> list[Resource]:
    return [patient("male", age), condition(code, days_ago=days_ago), *extra]


# ================= populations (§2) =================


@pytest.mark.parametrize(
    ("resource", "population"),
    [
        (condition(SCI_T1_COMPLETE), "sci"),
        (condition("G82.21"), "sci"),
        (condition(snomed="698754002"), "sci"),  # chronic paralysis due to lesion of spinal cord (Synthea)
        (condition(TBI_BRIEF_LOC), "tbi"),
        (condition(snomed="127295002"), "tbi"),
        (condition(snomed="275272006"), "tbi"),  # brain damage - traumatic
        (procedure(THA), "tha"),
        (procedure(REVISION_THA), "tha"),
        (procedure(HEMIARTHROPLASTY), "tha"),
        (procedure(ACETABULAR_ORIF), "acetabular-orif"),
        (condition(BURN_THIRD_DEGREE_THIGH), "burn"),
        (condition(STROKE), "stroke"),
        (condition(snomed="230690007"), "stroke"),
        (condition(FEMUR_FRACTURE), "fracture"),
        (condition(snomed="359817006"), "fracture"),  # closed fracture of hip
        (condition("S32.401A"), "fracture"),  # acetabular fracture
        (condition("M61.251"), "ho-history"),
        (condition(snomed="444748003"), "ho-history"),
    ],
)
def test_index_population_is_recognised(run: Run, resource: Resource, population: str) -> None:
    evaluation = run([patient(), resource])
    if population == "ho-history":
        assert "ho-history" in card(evaluation, "ho-rehabilitation").populations
    else:
        assert population in evaluation.trace["populations"]
        assert population in card(evaluation, "ho-risk").populations


@pytest.mark.parametrize(
    "resource",
    [
        condition("I10"),  # hypertension
        condition(snomed="48522003"),  # spinal cord disorder: too broad for SCI
        condition(BURN_SECOND_DEGREE_THIGH),
        condition("T31.20"),  # 20-29 % burns, under 10 % third degree
        condition(snomed="403191005"),  # second-degree burn (Synthea)
        condition("M61.10"),  # FOP is not acquired HO
        condition("M61.40"),  # calcification without ossification
        condition(snomed="609588000"),  # total knee replacement recorded as a condition
        condition(snomed="52734007"),  # "total replacement of hip" on a Condition is not a procedure done
        procedure("27447"),  # total knee arthroplasty
    ],
)
def test_no_population_no_cards(run: Run, resource: Resource) -> None:
    evaluation = run([patient(), resource])
    assert evaluation.trace["populations"] == {}
    assert evaluation.guidance == []


def test_index_date_is_the_most_recent_relevant_event(run: Run) -> None:
    older = condition(FEMUR_FRACTURE, days_ago=400, id="fx-old")
    newer = condition("S82.201A", days_ago=20, id="fx-new")
    evaluation = run([patient(), older, newer])
    assert evaluation.trace["populations"]["fracture"]["index"] == "Condition/fx-new"


def test_highest_level_across_populations_is_reported_and_all_populations_are_listed(run: Run) -> None:
    evaluation = run([patient(), condition(SCI_T1_UNSPECIFIED), condition(FEMUR_FRACTURE)])
    assert level(evaluation, "fracture") == "low"
    assert level(evaluation) == level(evaluation, "sci") == "moderate"
    assert {"sci", "fracture"} <= set(card(evaluation, "ho-risk").populations)


def test_risk_card_states_the_level_in_the_explanation(run: Run) -> None:
    risk = card(run(sci_case(SCI_T1_UNSPECIFIED)), "ho-risk")
    assert risk.risk_level == "moderate"
    assert risk.indicator.value == "info"
    assert risk.explanation()["riskLevel"] == "moderate"
    assert risk.explanation()["knowledgeVersion"]


# ================= SCI (N-01..N-06) =================


@pytest.mark.parametrize(
    ("age", "code", "extra", "count", "expected"),
    [
        (20, SCI_T1_INCOMPLETE, [], 0, "moderate"),
        (45, SCI_T1_INCOMPLETE, [], 1, "moderate"),
        (45, SCI_T1_COMPLETE, [], 2, "high"),
        (45, SCI_T1_COMPLETE, [condition(PRESSURE_ULCER, days_ago=10)], 3, "high"),
        (
            45,
            SCI_T1_COMPLETE,
            [condition(PRESSURE_ULCER, days_ago=10), condition(snomed=SPASTICITY_SNOMED, days_ago=10)],
            4,
            "high",
        ),
    ],
)
def test_sci_additive_factor_count_sets_the_level(
    run: Run, age: int, code: str, extra: list[Resource], count: int, expected: str
) -> None:
    evaluation = run(sci_case(code, *extra, age=age))
    present = [f for f in evaluation.trace["populations"]["sci"]["factors"] if f["status"] == "present"]
    assert len(present) == count
    assert level(evaluation, "sci") == expected
    assert f"{count} of 4" in card(evaluation, "ho-risk").detail
    assert "N-05" in card(evaluation, "ho-risk").rules


def test_sci_high_risk_card_is_a_warning(run: Run) -> None:
    risk = card(run(sci_case(SCI_T1_COMPLETE)), "ho-risk")
    assert (risk.risk_level, risk.indicator.value) == ("high", "warning")
    assert {"N-01", "N-02"} <= set(risk.rules)


def test_sci_lumbar_only_with_no_factor_is_low(run: Run) -> None:
    evaluation = run(sci_case(SCI_L1_INCOMPLETE, age=20))
    assert level(evaluation, "sci") == "low"
    assert "N-06" in card(evaluation, "ho-risk").rules


def test_sci_lumbar_with_one_factor_stays_moderate_with_the_lumbar_note(run: Run) -> None:
    evaluation = run(sci_case(SCI_L1_INCOMPLETE, age=45))
    assert level(evaluation, "sci") == "moderate"
    risk = card(evaluation, "ho-risk")
    assert "N-06" in risk.rules
    assert "Lumbar/sacral level" in risk.detail


def test_sci_lumbar_with_two_factors_is_high(run: Run) -> None:
    assert level(run(sci_case(SCI_L1_COMPLETE, age=45)), "sci") == "high"


def test_sci_lumbar_and_thoracic_codes_are_not_lumbar_only(run: Run) -> None:
    evaluation = run([*sci_case(SCI_L1_INCOMPLETE, age=20), condition(SCI_T1_INCOMPLETE)])
    assert level(evaluation, "sci") == "moderate"
    assert "N-06" not in card(evaluation, "ho-risk").rules


def test_sci_without_level_and_no_factor_is_moderate(run: Run) -> None:
    assert level(run([patient("male", 20), condition(snomed="698754002")]), "sci") == "moderate"


def test_spasticity_not_recorded_is_unknown_not_absent(run: Run) -> None:
    evaluation = run(sci_case(SCI_T1_INCOMPLETE))
    assert factor_status(evaluation, "sci", "N-03") == "unknown"
    n03 = factors(evaluation, "sci")["N-03"][0]
    assert n03["evidence"] == "not recorded"
    detail = card(evaluation, "ho-risk").detail
    assert "spasticity: not recorded" in detail
    absent_line = next((line for line in detail.splitlines() if "Factors absent" in line), "")
    assert "spasticity" not in absent_line


def test_pressure_ulcer_not_recorded_is_unknown(run: Run) -> None:
    evaluation = run(sci_case(SCI_T1_INCOMPLETE))
    assert factor_status(evaluation, "sci", "N-04") == "unknown"
    assert "pressure ulcer: not recorded" in card(evaluation, "ho-risk").detail


def test_spasticity_condition_is_present(run: Run) -> None:
    evaluation = run(sci_case(SCI_T1_INCOMPLETE, condition(snomed=SPASTICITY_SNOMED, days_ago=5)))
    assert factor_status(evaluation, "sci", "N-03") == "present"


def test_spasticity_by_baclofen_product_named_in_the_display(run: Run) -> None:
    baclofen = medication_request("197446", "Baclofen 10 MG Oral Tablet", days_ago=3)
    evaluation = run(sci_case(SCI_T1_INCOMPLETE, baclofen))
    assert factor_status(evaluation, "sci", "N-03") == "present"
    assert "Baclofen" in factors(evaluation, "sci")["N-03"][0]["evidence"]


def test_spasm_code_is_not_spasticity(run: Run) -> None:
    evaluation = run(sci_case(SCI_T1_INCOMPLETE, condition("R25.2", days_ago=5)))
    assert factor_status(evaluation, "sci", "N-03") == "unknown"


def test_stopped_baclofen_is_not_spasticity(run: Run) -> None:
    baclofen = medication_request(text="Baclofen 10 MG Oral Tablet", status="stopped", id="bac")
    evaluation = run(sci_case(SCI_T1_INCOMPLETE, baclofen))
    assert factor_status(evaluation, "sci", "N-03") == "unknown"
    assert any(item.startswith("MedicationRequest/bac") for item in evaluation.trace["ignored"])


def test_complete_injury_present_incomplete_absent_unspecified_unknown(run: Run) -> None:
    assert factor_status(run(sci_case(SCI_T1_COMPLETE)), "sci", "N-02") == "present"
    assert factor_status(run(sci_case(SCI_T1_INCOMPLETE)), "sci", "N-02") == "absent"
    assert factor_status(run(sci_case(SCI_T1_UNSPECIFIED)), "sci", "N-02") == "unknown"


def test_age_over_30_is_judged_at_the_injury_date(run: Run) -> None:
    # 31 today, but 29 when injured 2 years ago: N-01 is absent.
    evaluation = run(sci_case(SCI_T1_INCOMPLETE, age=31, days_ago=2 * 365 + 10))
    assert factor_status(evaluation, "sci", "N-01") == "absent"
    assert factor_status(run(sci_case(SCI_T1_INCOMPLETE, age=45)), "sci", "N-01") == "present"


def test_age_over_30_is_strictly_over(run: Run) -> None:
    # ages at NOW; the birthday was yesterday, so 40 or 300 days ago each patient was one year younger
    assert factor_status(run(sci_case(SCI_T1_INCOMPLETE, age=30)), "sci", "N-01") == "absent"
    assert factor_status(run(sci_case(SCI_T1_INCOMPLETE, age=31, days_ago=300)), "sci", "N-01") == "absent"
    assert factor_status(run(sci_case(SCI_T1_INCOMPLETE, age=32, days_ago=300)), "sci", "N-01") == "present"


def test_age_unknown_without_birth_date(run: Run) -> None:
    evaluation = run(sci_case(SCI_T1_INCOMPLETE, age=None))
    assert factor_status(evaluation, "sci", "N-01") == "unknown"
    assert level(evaluation, "sci") == "moderate"


def test_anticoagulant_in_sci_is_context_not_scored(run: Run) -> None:
    enoxaparin = medication_request(text="Enoxaparin sodium 40 MG/0.4 ML Prefilled Syringe", days_ago=2)
    without = run(sci_case(SCI_T1_INCOMPLETE))
    with_drug = run(sci_case(SCI_T1_INCOMPLETE, enoxaparin))
    assert level(with_drug) == level(without) == "moderate"
    assert "P-04" in card(with_drug, "ho-risk").rules
    assert "P-04" not in card(without, "ho-risk").rules


def test_flaccid_limb_is_shown_as_a_note_not_scored(run: Run) -> None:
    flaccid = condition(text="Flaccid paralysis of the left lower limb", days_ago=30)
    evaluation = run(sci_case(SCI_T1_INCOMPLETE, flaccid))
    assert level(evaluation, "sci") == "moderate"
    risk = card(evaluation, "ho-risk")
    assert "N-11" in risk.rules
    assert "flaccid" in risk.detail.lower()


# ================= TBI (N-07..N-10) =================


def tbi_case(code: str = TBI_BRIEF_LOC, *extra: Resource, days_ago: float = 40) -> list[Resource]:
    return [patient("male", 40), condition(code, days_ago=days_ago), *extra]


def test_tbi_without_severity_data_is_low_and_severity_unknown(run: Run) -> None:
    evaluation = run(tbi_case())
    assert level(evaluation, "tbi") == "low"
    assert factor_status(evaluation, "tbi", "N-07") == "unknown"
    assert factor_status(evaluation, "tbi", "N-08") == "unknown"
    assert card(evaluation, "ho-risk").risk_level == "low"


def test_tbi_severe_by_gcs_8_or_less_is_moderate(run: Run) -> None:
    evaluation = run(tbi_case(TBI_BRIEF_LOC, gcs(7, days_ago=39)))
    assert factor_status(evaluation, "tbi", "N-07") == "present"
    assert level(evaluation, "tbi") == "moderate"


def test_tbi_gcs_8_is_severe(run: Run) -> None:
    assert factor_status(run(tbi_case(TBI_BRIEF_LOC, gcs(8, days_ago=39))), "tbi", "N-07") == "present"


def test_tbi_gcs_9_is_not_severe(run: Run) -> None:
    evaluation = run(tbi_case(TBI_BRIEF_LOC, gcs(9, days_ago=39)))
    assert factor_status(evaluation, "tbi", "N-07") != "present"
    assert level(evaluation, "tbi") == "low"


@pytest.mark.parametrize("code", ["S06.2X6A", "S06.5X5A", "S06.1X7A"])
def test_tbi_severe_by_sixth_character_loc_over_24h(run: Run, code: str) -> None:
    evaluation = run(tbi_case(code))
    assert factor_status(evaluation, "tbi", "N-07") == "present"
    assert level(evaluation, "tbi") == "moderate"


@pytest.mark.parametrize("code", ["S06.2X4A", "S06.2X9A"])
def test_tbi_sixth_character_under_24h_or_unspecified_is_not_severe(run: Run, code: str) -> None:
    evaluation = run(tbi_case(code))
    assert factor_status(evaluation, "tbi", "N-07") == "unknown"


def test_tbi_severe_by_coma_condition(run: Run) -> None:
    coma = condition(COMA, days_ago=39, abated_days_ago=35)
    evaluation = run(tbi_case(TBI_BRIEF_LOC, coma))
    assert factor_status(evaluation, "tbi", "N-07") == "present"
    assert factor_status(evaluation, "tbi", "N-08") == "absent"  # 4 days of coma
    assert level(evaluation, "tbi") == "moderate"


def test_coma_over_14_days_from_a_coma_condition_span(run: Run) -> None:
    coma = condition(COMA, days_ago=39, abated_days_ago=19)  # 20 days
    evaluation = run(tbi_case(TBI_BRIEF_LOC, coma))
    assert factor_status(evaluation, "tbi", "N-08") == "present"
    assert level(evaluation, "tbi") == "high"  # N-07 (coma) + N-08


def test_coma_of_14_days_exactly_is_not_over_14(run: Run) -> None:
    coma = condition(snomed="371632003", days_ago=39, abated_days_ago=25)
    assert factor_status(run(tbi_case(TBI_BRIEF_LOC, coma)), "tbi", "N-08") == "absent"


def test_coma_over_14_days_from_a_gcs_series(run: Run) -> None:
    series = [gcs(5, days_ago=38), gcs(6, days_ago=30), gcs(7, days_ago=21)]  # 17 days at GCS <= 8
    evaluation = run(tbi_case(TBI_BRIEF_LOC, *series, gcs(13, days_ago=15)))
    assert factor_status(evaluation, "tbi", "N-08") == "present"
    assert level(evaluation, "tbi") == "high"


def test_gcs_series_interrupted_by_a_better_score_is_not_one_coma(run: Run) -> None:
    series = [gcs(5, days_ago=38), gcs(12, days_ago=33), gcs(6, days_ago=30), gcs(14, days_ago=22)]
    evaluation = run(tbi_case(TBI_BRIEF_LOC, *series))
    assert factor_status(evaluation, "tbi", "N-08") == "absent"
    assert level(evaluation, "tbi") == "moderate"


def test_tbi_severe_plus_long_bone_fracture_is_high(run: Run) -> None:
    evaluation = run(tbi_case(TBI_LOC_OVER_24H, condition(FEMUR_FRACTURE, days_ago=40)))
    assert factor_status(evaluation, "tbi", "N-09") == "present"
    assert level(evaluation, "tbi") == "high"
    assert card(evaluation, "ho-risk").indicator.value == "warning"


def test_tbi_one_factor_other_than_severity_is_moderate(run: Run) -> None:
    tizanidine = medication_request(text="tizanidine 4 MG Oral Tablet", days_ago=3)
    evaluation = run(tbi_case(TBI_BRIEF_LOC, tizanidine))
    assert factor_status(evaluation, "tbi", "N-10") == "present"
    assert level(evaluation, "tbi") == "moderate"


def test_coma_after_trauma_is_the_tbi_population(run: Run) -> None:
    """§2: tbi is recognised by S06.-, SNOMED TBI / traumatic brain damage, or coma after trauma."""
    trauma = [patient(), condition(FEMUR_FRACTURE, days_ago=30), condition(COMA, days_ago=30, abated_days_ago=20)]
    evaluation = run(trauma)
    assert "tbi" in evaluation.trace["populations"]
    assert "tbi" in card(evaluation, "ho-risk").populations


def test_tbi_fracture_not_recorded_is_unknown(run: Run) -> None:
    assert factor_status(run(tbi_case()), "tbi", "N-09") == "unknown"


# ================= THA (R-01..R-17) =================


def tha_case(*extra: Resource, gender: str = "female", cpt: str = THA, days_ago: float = 10) -> list[Resource]:
    return [patient(gender, 60), procedure(cpt, days_ago=days_ago, id="tha"), *extra]


def test_tha_without_factors_is_low(run: Run) -> None:
    evaluation = run(tha_case())
    assert level(evaluation, "tha") == "low"
    assert factor_status(evaluation, "tha", "R-01") == "absent"
    assert factor_status(evaluation, "tha", "R-02") == "unknown"


def test_tha_one_other_factor_male_is_moderate(run: Run) -> None:
    evaluation = run(tha_case(gender="male"))
    assert factor_status(evaluation, "tha", "R-01") == "present"
    assert level(evaluation, "tha") == "moderate"


def test_tha_sex_not_recorded_is_unknown(run: Run) -> None:
    evaluation = run([patient(None, 60), procedure(THA, days_ago=10)])
    assert factor_status(evaluation, "tha", "R-01") == "unknown"


def test_tha_strong_factor_ankylosing_spondylitis_is_high(run: Run) -> None:
    evaluation = run(tha_case(condition(ANKYLOSING_SPONDYLITIS, days_ago=3000)))
    assert factor_status(evaluation, "tha", "R-07") == "present"
    assert level(evaluation, "tha") == "high"
    assert "R-07" in card(evaluation, "ho-risk").rules


@pytest.mark.parametrize("code", ["M48.10", "M88.85"])  # DISH, Paget disease of the thigh
def test_tha_other_bone_forming_disorders_are_strong(run: Run, code: str) -> None:
    assert level(run(tha_case(condition(code, days_ago=3000))), "tha") == "high"


def test_tha_strong_factor_prior_ho_after_hip_surgery_is_high(run: Run) -> None:
    earlier_tha = procedure(THA, days_ago=3 * 365, id="tha-old")
    prior_ho = condition("M61.552", days_ago=2 * 365)
    evaluation = run(tha_case(earlier_tha, prior_ho))
    assert factor_status(evaluation, "tha", "R-02") == "present"
    assert level(evaluation, "tha") == "high"


def test_tha_two_other_factors_are_high(run: Run) -> None:
    evaluation = run(tha_case(condition(BED_CONFINEMENT, days_ago=8), condition("M96.840", days_ago=5)))
    assert factor_status(evaluation, "tha", "R-13") == "present"
    assert factor_status(evaluation, "tha", "R-17") == "present"
    assert level(evaluation, "tha") == "high"


def test_revision_arthroplasty_is_a_factor(run: Run) -> None:
    evaluation = run(tha_case(cpt=REVISION_THA))
    assert factor_status(evaluation, "tha", "R-11") == "present"
    assert level(evaluation, "tha") == "moderate"


def test_bilateral_hip_disease_from_a_bilateral_code_or_both_sides(run: Run) -> None:
    assert factor_status(run(tha_case(condition("M16.0", days_ago=900))), "tha", "R-03") == "present"
    both_sides = [condition("M16.11", days_ago=900), condition("M16.12", days_ago=900)]
    assert factor_status(run(tha_case(*both_sides)), "tha", "R-03") == "present"
    assert factor_status(run(tha_case(condition("M16.11", days_ago=900))), "tha", "R-03") == "unknown"


def test_fever_at_surgery_present_absent_unknown(run: Run) -> None:
    assert factor_status(run(tha_case(temperature(38.6, days_ago=10))), "tha", "R-06") == "present"
    assert factor_status(run(tha_case(temperature(36.8, days_ago=10))), "tha", "R-06") == "absent"
    assert factor_status(run(tha_case()), "tha", "R-06") == "unknown"


def test_fever_at_surgery_in_fahrenheit_is_converted(run: Run) -> None:
    assert factor_status(run(tha_case(temperature(101.3, "[degF]", days_ago=10))), "tha", "R-06") == "present"
    assert factor_status(run(tha_case(temperature(98.6, "[degF]", days_ago=10))), "tha", "R-06") == "absent"


def test_postoperative_fever_over_five_days(run: Run) -> None:
    fevers = [temperature(38.4, days_ago=d) for d in (9, 8, 7, 6, 5, 4)]  # six days
    assert factor_status(run(tha_case(*fevers)), "tha", "R-16") == "present"
    assert factor_status(run(tha_case(*fevers[:5])), "tha", "R-16") == "absent"


def test_prosthesis_dislocation_in_the_first_week(run: Run) -> None:
    early = condition("T84.020A", days_ago=7)  # 3 days after the THA
    late = condition("T84.020A", days_ago=1)  # 9 days after
    assert factor_status(run(tha_case(early)), "tha", "R-15") == "present"
    assert factor_status(run(tha_case(late)), "tha", "R-15") == "unknown"


def test_tha_population_needs_a_completed_procedure(run: Run) -> None:
    evaluation = run([patient("female", 60), procedure(THA, days_ago=10, status="not-done", id="nd")])
    assert "tha" not in evaluation.trace["populations"]
    assert any(item.startswith("Procedure/nd") for item in evaluation.trace["ignored"])


# ================= acetabular ORIF, burn, stroke, fracture =================


def test_acetabular_orif_is_high(run: Run) -> None:
    evaluation = run([patient(), procedure(ACETABULAR_ORIF, days_ago=30)])
    risk = card(evaluation, "ho-risk")
    assert (risk.risk_level, risk.indicator.value) == ("high", "warning")
    assert "E-07" in risk.rules


def test_full_thickness_burn_is_moderate_with_extent_unknown(run: Run) -> None:
    evaluation = run([patient(), condition(BURN_THIRD_DEGREE_THIGH, days_ago=30)])
    assert level(evaluation, "burn") == "moderate"
    assert factor_status(evaluation, "burn", "LIT-LEVI-2015") == "unknown"
    assert "R-10" in card(evaluation, "ho-risk").rules


def test_full_thickness_burn_over_30_percent_is_high_and_labelled_literature(run: Run) -> None:
    evaluation = run([patient(), condition(BURN_THIRD_DEGREE_THIGH, days_ago=30), condition("T31.32", days_ago=30)])
    assert level(evaluation, "burn") == "high"
    risk = card(evaluation, "ho-risk")
    assert "LIT-LEVI-2015" in risk.rules
    assert "[LIT]" in risk.detail


def test_burn_extent_code_with_third_degree_share_alone_is_a_full_thickness_burn(run: Run) -> None:
    evaluation = run([patient(), condition("T31.32", days_ago=30)])  # 30-39 % TBSA, 20-29 % third degree
    assert level(evaluation, "burn") == "high"


def test_full_thickness_burn_under_30_percent_stays_moderate(run: Run) -> None:
    evaluation = run([patient(), condition(BURN_THIRD_DEGREE_THIGH, days_ago=30), condition("T31.21", days_ago=30)])
    assert level(evaluation, "burn") == "moderate"
    assert factor_status(evaluation, "burn", "LIT-LEVI-2015") == "absent"


def test_stroke_without_general_factors_is_low_with_factors_unknown(run: Run) -> None:
    evaluation = run([patient(), condition(STROKE, days_ago=90)])
    assert level(evaluation, "stroke") == "low"
    statuses = {f["name"]: f["status"] for f in evaluation.trace["populations"]["stroke"]["factors"]}
    assert set(statuses.values()) == {"unknown"}
    assert "prolonged immobility: not recorded" in card(evaluation, "ho-risk").detail


@pytest.mark.parametrize(
    "extra",
    [
        condition(BED_CONFINEMENT, days_ago=60),  # prolonged immobility
        condition("R22.41", days_ago=5),  # swelling of the right lower limb
        condition(PRESSURE_ULCER, days_ago=20),
        condition(COMA, days_ago=89, abated_days_ago=60),  # coma of 29 days
    ],
)
def test_stroke_with_a_general_factor_is_moderate(run: Run, extra: Resource) -> None:
    evaluation = run([patient(), condition(STROKE, days_ago=90), extra])
    assert level(evaluation, "stroke") == "moderate"
    assert "R-19" in card(evaluation, "ho-risk").rules


def test_recorded_short_coma_is_an_absent_general_factor_not_an_unknown_one(run: Run) -> None:
    evaluation = run([patient(), condition(STROKE, days_ago=90), condition(COMA, days_ago=89, abated_days_ago=84)])
    assert factor_status(evaluation, "stroke", "R-19", "coma") == "absent"
    assert level(evaluation, "stroke") == "low"


def test_fracture_without_general_factors_is_low(run: Run) -> None:
    assert level(run([patient(), condition(FEMUR_FRACTURE, days_ago=30)]), "fracture") == "low"


def test_fracture_with_immobility_is_moderate(run: Run) -> None:
    evaluation = run([patient(), condition(FEMUR_FRACTURE, days_ago=30), condition(BED_CONFINEMENT, days_ago=20)])
    assert level(evaluation, "fracture") == "moderate"


# ================= modifiers =================


def test_age_under_10_sets_the_level_to_low(run: Run) -> None:
    evaluation = run([patient("male", 8), condition(SCI_T1_COMPLETE, days_ago=40)])
    risk = card(evaluation, "ho-risk")
    assert risk.risk_level == "low"
    assert "E-06" in risk.rules
    assert risk.indicator.value == "info"


def test_age_under_10_lowers_even_a_large_full_thickness_burn(run: Run) -> None:
    burn = [condition(BURN_THIRD_DEGREE_THIGH, days_ago=30), condition("T31.43", days_ago=30)]
    assert level(run([patient("female", 5), *burn])) == "low"


def test_age_10_is_not_lowered(run: Run) -> None:
    evaluation = run([patient("male", 10), condition(SCI_T1_INCOMPLETE, days_ago=40)])
    assert level(evaluation) == "moderate"
    assert "E-06" not in card(evaluation, "ho-risk").rules


def test_young_child_gets_no_moderate_risk_cards(run: Run) -> None:
    """§3 modifiers apply last: a child's low level means no surveillance or rehabilitation for moderate risk."""
    evaluation = run([patient("male", 8), condition(SCI_T1_INCOMPLETE, days_ago=40)])
    assert level(evaluation) == "low"
    assert "ho-surveillance" not in topics(evaluation)
    assert "ho-rehabilitation" not in topics(evaluation)


# ================= §9: what is ignored, and the deceased =================


@pytest.mark.parametrize("verification", ["entered-in-error", "refuted"])
def test_entered_in_error_or_refuted_condition_is_ignored_and_traced(run: Run, verification: str) -> None:
    evaluation = run([patient(), condition(SCI_T1_COMPLETE, verification=verification, id="bad")])
    assert evaluation.trace["populations"] == {}
    assert evaluation.guidance == []
    assert any(item.startswith("Condition/bad") and verification in item for item in evaluation.trace["ignored"])


def test_unconfirmed_but_not_refuted_condition_still_counts(run: Run) -> None:
    evaluation = run([patient(), condition(SCI_T1_COMPLETE, verification="provisional")])
    assert "sci" in evaluation.trace["populations"]


@pytest.mark.parametrize("status", ["not-done", "stopped", "entered-in-error"])
def test_procedure_not_completed_is_ignored(run: Run, status: str) -> None:
    evaluation = run([patient(), procedure(ACETABULAR_ORIF, days_ago=3, status=status, id="orif")])
    assert evaluation.trace["populations"] == {}
    assert "ho-prophylaxis" not in topics(evaluation)
    assert any(item.startswith("Procedure/orif") for item in evaluation.trace["ignored"])


@pytest.mark.parametrize("status", ["cancelled", "stopped", "entered-in-error"])
def test_cancelled_or_stopped_medication_is_ignored(run: Run, status: str) -> None:
    drug = medication_request(text="Tizanidine 4 MG Oral Tablet", status=status, id="tiz")
    evaluation = run(tbi_case(TBI_BRIEF_LOC, drug))
    assert factor_status(evaluation, "tbi", "N-10") == "unknown"
    assert any(item.startswith("MedicationRequest/tiz") for item in evaluation.trace["ignored"])


def test_entered_in_error_observation_is_ignored(run: Run) -> None:
    wrong = gcs(5, days_ago=39)
    wrong["status"] = "entered-in-error"
    evaluation = run(tbi_case(TBI_BRIEF_LOC, wrong))
    assert factor_status(evaluation, "tbi", "N-07") == "unknown"
    assert len(evaluation.trace["ignored"]) == 1


def test_deceased_patient_gets_no_cards_but_the_trace_keeps_the_assessment(run: Run) -> None:
    evaluation = run([patient("male", 45, deceased=True), condition(SCI_T1_COMPLETE, days_ago=40)])
    assert evaluation.guidance == []
    assert evaluation.trace["deceased"] is True
    assert level(evaluation, "sci") == "high"


def test_deceased_boolean_also_withholds_cards(run: Run) -> None:
    pat = patient("male", 45)
    pat["deceasedBoolean"] = True
    assert run([pat, condition(SCI_T1_COMPLETE, days_ago=40)]).guidance == []


def test_evaluation_is_reproducible_at_the_same_now(run: Run) -> None:
    case = sci_case(SCI_T1_COMPLETE, condition(PRESSURE_ULCER, days_ago=10))
    first, second = run(case, now=NOW), run(case, now=NOW)
    assert [g.as_dict() for g in first.guidance] == [g.as_dict() for g in second.guidance]


def test_observation_without_value_does_not_invent_a_finding(run: Run) -> None:
    empty_gcs = observation("9269-2", days_ago=39)
    evaluation = run(tbi_case(TBI_BRIEF_LOC, empty_gcs))
    assert factor_status(evaluation, "tbi", "N-07") == "unknown"

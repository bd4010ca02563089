"""Orders (ho-rules-v1 §5), prophylaxis outside orders (§6) and which topics each hook answers (§8)."""

from __future__ import annotations

import pytest

from hofhir.fhir.read import InputError, from_hook_request
from hofhir.knowledge import Knowledge
from tests.builders import (
    NOW,
    Resource,
    Run,
    alp,
    card,
    condition,
    diagnostic_report,
    medication_request,
    patient,
    procedure,
    request,
    service_request,
    suggested_codes,
    topics,
)

SCI = "S24.131A"
SCI_COMPLETE = "S24.111A"
HO_NEUROGENIC = "M61.251"
HIP_STIFFNESS = "M25.651"
HIP_XRAY = "73502"
BONE_SCAN = "78315"
HO_EXCISION = "27036"
THA = "27130"
REVISION_THA = "27134"
HEMIARTHROPLASTY = "27125"
ACETABULAR_ORIF = "27226"
INDOMETHACIN_CODES = {"5781", "197817", "310992"}
RADIOTHERAPY_CODES = {"77401", "77402", "77407", "77412", "108290001", "33195004"}
ALENDRONATE = "46041"
ORDER_TOPICS = {"ho-imaging", "ho-surgical-readiness", "ho-prophylaxis", "ho-postoperative-rehab"}

ENOXAPARIN = "Enoxaparin sodium 40 MG/0.4 ML Prefilled Syringe"
INDOMETHACIN = "Indomethacin 25 MG Oral Capsule"


def enoxaparin(days_ago: float = 1, status: str = "active") -> Resource:
    return medication_request(text=ENOXAPARIN, days_ago=days_ago, status=status)


def indomethacin(days_ago: float = 1, status: str = "active", **kwargs: object) -> Resource:
    return medication_request("197817", INDOMETHACIN, days_ago=days_ago, status=status, **kwargs)  # type: ignore[arg-type]


def hip_xray_order(**kwargs: object) -> Resource:
    return service_request(HIP_XRAY, text="XR hip 2-3 views", **kwargs)  # type: ignore[arg-type]


# ================= §5 imaging orders =================


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_hip_radiograph_within_3_weeks_of_the_index_date_gives_imaging_info(run: Run, hook: str) -> None:
    # 1.1 §5: only a film "to look for HO" (here its reasonCode names HO) gets the card.
    order = hip_xray_order(reason_icd=HO_NEUROGENIC, reason_text="Rule out heterotopic ossification")
    evaluation = run([patient(), condition(SCI, days_ago=10)], hook=hook, draft_orders=[order])
    imaging = card(evaluation, "ho-imaging")
    assert imaging.indicator.value == "info"
    assert {"D-06", "I-01", "I-02"} <= set(imaging.rules)
    assert imaging.populations == ("sci",)
    assert imaging.override_reasons


def test_hip_radiograph_after_3_weeks_gives_no_imaging_card(run: Run) -> None:
    evaluation = run([patient(), condition(SCI, days_ago=30)], hook="order-select", draft_orders=[hip_xray_order()])
    assert evaluation.guidance == []


def test_hip_radiograph_without_an_at_risk_population_gives_no_card(run: Run) -> None:
    evaluation = run([patient(), condition("I10", days_ago=10)], hook="order-sign", draft_orders=[hip_xray_order()])
    assert evaluation.guidance == []


def test_hip_radiograph_early_after_ho_history_alone_gives_no_card(run: Run) -> None:
    # ho-history is not an index injury: "within 3 weeks of the index date" needs an injury or operation
    ho = condition(HO_NEUROGENIC, days_ago=10)
    assert run([patient(), ho], hook="order-sign", draft_orders=[hip_xray_order()]).guidance == []


def test_hip_radiograph_after_an_undated_injury_gives_no_card(run: Run) -> None:
    evaluation = run([patient(), condition(SCI, days_ago=None)], hook="order-sign", draft_orders=[hip_xray_order()])
    assert evaluation.guidance == []


def test_order_select_looks_only_at_the_selected_orders(run: Run) -> None:
    xray = hip_xray_order(id="xr")
    evaluation = run(
        [patient(), condition(SCI, days_ago=10)],
        hook="order-select",
        draft_orders=[xray, service_request(loinc="6768-6", id="lab")],
        selections=["ServiceRequest/lab"],
    )
    assert evaluation.guidance == []


def test_cancelled_draft_order_is_not_read(run: Run) -> None:
    evaluation = run(
        [patient(), condition(SCI, days_ago=10)], hook="order-sign", draft_orders=[hip_xray_order(status="revoked")]
    )
    assert evaluation.guidance == []


def test_biopsy_of_suspected_ho_gives_an_imaging_warning(run: Run) -> None:
    biopsy = service_request("27041", text="Biopsy of suspected heterotopic ossification, right hip")
    evaluation = run([patient(), condition(SCI, days_ago=60)], hook="order-sign", draft_orders=[biopsy])
    imaging = card(evaluation, "ho-imaging")
    assert imaging.indicator.value == "warning"
    assert "I-05" in imaging.rules
    assert imaging.override_reasons


def test_biopsy_with_an_ho_reason_code_gives_an_imaging_warning(run: Run) -> None:
    biopsy = service_request("27041", reason_icd="M61.551")
    evaluation = run([patient(), condition("S72.301A", days_ago=90)], hook="order-sign", draft_orders=[biopsy])
    assert card(evaluation, "ho-imaging").indicator.value == "warning"


def test_biopsy_for_another_lesion_without_ho_gives_no_card(run: Run) -> None:
    biopsy = service_request("27041", text="Biopsy, soft tissue of pelvis and hip area; deep", reason_icd="D21.22")
    evaluation = run([patient(), condition("S72.301A", days_ago=400)], hook="order-sign", draft_orders=[biopsy])
    assert evaluation.guidance == []


def test_biopsy_of_a_hip_mass_in_a_patient_with_ho_history_gives_an_imaging_warning(run: Run) -> None:
    biopsy = service_request(snomed="86273004", text="Core needle biopsy, right hip mass")
    evaluation = run([patient(), condition("M61.251", days_ago=700)], hook="order-sign", draft_orders=[biopsy])
    assert card(evaluation, "ho-imaging").indicator.value == "warning"


def test_biopsy_elsewhere_in_a_patient_with_ho_history_gives_no_card(run: Run) -> None:
    """I-05 is about a biopsy of a suspected HO lesion, not every biopsy of a patient who once had HO."""
    liver = service_request(snomed="86273004", text="Percutaneous liver biopsy", reason_icd="K76.0")
    evaluation = run([patient(), condition("M61.251", days_ago=700)], hook="order-sign", draft_orders=[liver])
    assert evaluation.guidance == []


# ================= §5 HO excision readiness (S-02) =================


def excision_order(**kwargs: object) -> Resource:
    return service_request(HO_EXCISION, text="Excision of heterotopic bone, hip", **kwargs)  # type: ignore[arg-type]


def mature_record(*extra: Resource, sci_days: float = 500) -> list[Resource]:
    return [
        patient("male", 45),
        condition(SCI_COMPLETE, days_ago=sci_days),
        condition(HO_NEUROGENIC, days_ago=sci_days - 60),
        *extra,
    ]


STABLE_SCAN = diagnostic_report("39883-4", conclusion="Three-phase bone scan: activity stable compared with prior")


def test_readiness_met_gives_an_info_card(run: Run) -> None:
    evaluation = run(
        mature_record(alp(100, days_ago=10, ref_low=40, ref_high=130), STABLE_SCAN),
        hook="order-sign",
        draft_orders=[excision_order()],
    )
    readiness = card(evaluation, "ho-surgical-readiness")
    assert readiness.indicator.value == "info"
    assert {"S-02", "L-02"} <= set(readiness.rules)
    assert {"sci", "ho-history"} <= set(readiness.populations)


def test_readiness_alp_above_the_lab_range_is_a_warning_with_override_reasons(run: Run) -> None:
    evaluation = run(
        mature_record(alp(180, days_ago=10, ref_low=40, ref_high=130), STABLE_SCAN),
        hook="order-sign",
        draft_orders=[excision_order()],
    )
    readiness = card(evaluation, "ho-surgical-readiness")
    assert readiness.indicator.value == "warning"
    assert "ALP raised" in readiness.summary
    assert "Early wedge resection planned" in {o.display for o in readiness.override_reasons}
    assert "S-03" in readiness.rules


def test_readiness_under_12_months_is_a_warning(run: Run) -> None:
    evaluation = run(
        mature_record(alp(100, days_ago=10), STABLE_SCAN, sci_days=240),
        hook="order-sign",
        draft_orders=[excision_order()],
    )
    readiness = card(evaluation, "ho-surgical-readiness")
    assert readiness.indicator.value == "warning"
    assert "under 12 months" in readiness.summary


def test_readiness_unknown_criteria_are_a_warning(run: Run) -> None:
    evaluation = run(mature_record(), hook="order-sign", draft_orders=[excision_order()])
    readiness = card(evaluation, "ho-surgical-readiness")
    assert readiness.indicator.value == "warning"
    assert "ALP raised unknown" in readiness.summary
    assert "bone scan not documented" in readiness.summary
    assert readiness.override_reasons


def test_readiness_injury_date_unknown_is_a_warning(run: Run) -> None:
    record = [patient("male", 45), condition(SCI_COMPLETE, days_ago=None), alp(100, days_ago=10), STABLE_SCAN]
    readiness = card(run(record, hook="order-sign", draft_orders=[excision_order()]), "ho-surgical-readiness")
    assert readiness.indicator.value == "warning"
    assert "under 12 months unknown" in readiness.summary


def test_readiness_alp_without_any_range_is_unknown(run: Run) -> None:
    child_range_unknown = alp(100, days_ago=10, ref_low=None, ref_high=None)
    evaluation = run(
        [patient("male", 15), condition(SCI_COMPLETE, days_ago=500), child_range_unknown, STABLE_SCAN],
        hook="order-sign",
        draft_orders=[excision_order()],
    )
    assert "ALP raised unknown" in card(evaluation, "ho-surgical-readiness").summary


@pytest.mark.parametrize(
    "conclusion",
    [
        "Increased uptake in the right hip, activity increasing",
        "Activity not stable: increased uptake compared with prior",
        "Heterotopic bone not yet at steady state",
        "Unstable uptake pattern, immature heterotopic bone",
    ],
)
def test_readiness_bone_scan_that_is_not_stable_is_unmet(run: Run, conclusion: str) -> None:
    report = diagnostic_report("39883-4", conclusion=conclusion)
    evaluation = run(mature_record(alp(100, days_ago=10), report), hook="order-sign", draft_orders=[excision_order()])
    readiness = card(evaluation, "ho-surgical-readiness")
    assert readiness.indicator.value == "warning"
    assert "Not met: bone-scan activity at steady state" in readiness.detail


def test_readiness_for_an_excision_named_only_in_text(run: Run) -> None:
    order = service_request(text="Resection of heterotopic ossification, left hip")
    evaluation = run(mature_record(), hook="order-select", draft_orders=[order])
    assert "ho-surgical-readiness" in topics(evaluation)


def test_readiness_mentions_location_when_the_order_gives_one(run: Run) -> None:
    evaluation = run(mature_record(), hook="order-sign", draft_orders=[excision_order(body_site="Posterior hip")])
    readiness = card(evaluation, "ho-surgical-readiness")
    assert "S-05" in readiness.rules
    assert "Posterior bone formation" in readiness.detail


def test_readiness_without_location_has_no_location_note(run: Run) -> None:
    readiness = card(run(mature_record(), hook="order-sign", draft_orders=[excision_order()]), "ho-surgical-readiness")
    assert "S-05" not in readiness.rules
    assert "S-04" in readiness.rules  # wedge vs wide is always mentioned


# ================= §5 THA orders =================


def tha_order(cpt: str = THA) -> Resource:
    return service_request(cpt, text="Hip arthroplasty", body_site="Left hip")


def test_tha_order_without_risk_factors_gives_no_card(run: Run) -> None:
    assert run([patient("female", 60)], hook="order-select", draft_orders=[tha_order()]).guidance == []


def test_tha_order_for_a_man_is_moderate_and_suggests_indomethacin_and_radiotherapy(run: Run) -> None:
    evaluation = run([patient("male", 60)], hook="order-select", draft_orders=[tha_order()])
    prophylaxis = card(evaluation, "ho-prophylaxis")
    assert prophylaxis.indicator.value == "info"
    assert {"PX-01", "R-01"} <= set(prophylaxis.rules)
    codes = suggested_codes(prophylaxis)
    assert codes & INDOMETHACIN_CODES
    assert codes & RADIOTHERAPY_CODES
    assert prophylaxis.risk_level is None
    assert "Moderate" in prophylaxis.summary


def test_tha_order_with_ankylosing_spondylitis_is_high(run: Run) -> None:
    evaluation = run(
        [patient("female", 60), condition("M45.9", days_ago=3000)], hook="order-sign", draft_orders=[tha_order()]
    )
    prophylaxis = card(evaluation, "ho-prophylaxis")
    assert "R-07" in prophylaxis.rules
    assert "High" in prophylaxis.summary


def test_tha_order_after_ho_following_the_other_hip_cites_r02(run: Run) -> None:
    record = [
        patient("female", 70),
        condition("Z96.641", days_ago=4 * 365),
        condition("M61.551", days_ago=3 * 365, body_site="Right hip"),
    ]
    prophylaxis = card(run(record, hook="order-select", draft_orders=[tha_order()]), "ho-prophylaxis")
    assert "R-02" in prophylaxis.rules
    assert "ho-history" in prophylaxis.populations


def test_tha_order_with_sex_unknown_and_no_other_factor_gives_no_card(run: Run) -> None:
    assert run([patient(None, 60)], hook="order-select", draft_orders=[tha_order()]).guidance == []


def test_revision_order_is_a_risk_factor(run: Run) -> None:
    prophylaxis = card(
        run([patient("female", 60)], hook="order-select", draft_orders=[tha_order(REVISION_THA)]), "ho-prophylaxis"
    )
    assert "R-11" in prophylaxis.rules


def test_hemiarthroplasty_order_gives_no_tha_prophylaxis_card(run: Run) -> None:
    record = [patient("male", 80), condition("M45.9", days_ago=3000)]
    assert run(record, hook="order-select", draft_orders=[tha_order(HEMIARTHROPLASTY)]).guidance == []


def test_tha_order_does_not_suggest_indomethacin_already_taken(run: Run) -> None:
    evaluation = run([patient("male", 60), indomethacin()], hook="order-select", draft_orders=[tha_order()])
    prophylaxis = card(evaluation, "ho-prophylaxis")
    assert not suggested_codes(prophylaxis) & INDOMETHACIN_CODES
    assert suggested_codes(prophylaxis) & RADIOTHERAPY_CODES


def test_tha_order_still_suggests_indomethacin_after_an_old_finished_nsaid_course(run: Run) -> None:
    """§1: suggestions skip only what is done or ordered within the window that makes it redundant."""
    old_course = medication_request("197805", "Ibuprofen 400 MG Oral Tablet", days_ago=700, status="completed")
    prophylaxis = card(
        run([patient("male", 60), old_course], hook="order-select", draft_orders=[tha_order()]), "ho-prophylaxis"
    )
    assert suggested_codes(prophylaxis) & INDOMETHACIN_CODES


def test_tha_order_card_carries_an_anticoagulant_caution(run: Run) -> None:
    evaluation = run([patient("male", 60), enoxaparin()], hook="order-select", draft_orders=[tha_order()])
    detail = card(evaluation, "ho-prophylaxis").detail
    assert "**Caution**" in detail
    assert "Enoxaparin" in detail


def test_prophylaxis_suggestions_never_include_alendronate(run: Run) -> None:
    prophylaxis = card(run([patient("male", 60)], hook="order-select", draft_orders=[tha_order()]), "ho-prophylaxis")
    assert ALENDRONATE not in suggested_codes(prophylaxis)
    assert all(
        "alendronate" not in s.resource.get("medicationCodeableConcept", {}).get("text", "").lower()
        for s in prophylaxis.suggestions
    )
    assert "Alendronate is not suggested" in prophylaxis.detail


# ================= §5 NSAID orders =================


def orif_record(*extra: Resource, days_ago: float = 2) -> list[Resource]:
    return [patient("male", 35), procedure(ACETABULAR_ORIF, days_ago=days_ago), *extra]


def nsaid_draft() -> Resource:
    return indomethacin(days_ago=0, status="draft")


def test_nsaid_order_while_acetabular_prophylaxis_is_indicated_is_the_prophylaxis(run: Run) -> None:
    evaluation = run(orif_record(), hook="order-sign", draft_orders=[nsaid_draft()])
    prophylaxis = card(evaluation, "ho-prophylaxis")
    assert prophylaxis.indicator.value == "info"
    assert "PX-01" in prophylaxis.rules
    assert "acetabular-orif" in prophylaxis.populations
    # 1.1 §5a applies to the NSAID being ordered: the acetabular nonunion line and the unchecked kidney function.
    assert {"LIT-NONUNION-ACETABULUM", "LIT-ACETABULAR-NO-BENEFIT"} <= set(prophylaxis.rules)
    assert "Kidney function not in the record" in prophylaxis.detail
    assert "anticoagulant" not in prophylaxis.detail.split("**Caution**")[1].split("**Evidence**")[0]


def test_nsaid_order_with_active_enoxaparin_carries_a_caution(run: Run) -> None:
    evaluation = run(orif_record(enoxaparin()), hook="order-sign", draft_orders=[nsaid_draft()])
    detail = card(evaluation, "ho-prophylaxis").detail
    assert "**Caution**" in detail
    assert "Enoxaparin" in detail


def test_nsaid_order_with_a_stopped_anticoagulant_carries_no_bleeding_caution(run: Run) -> None:
    evaluation = run(orif_record(enoxaparin(status="stopped")), hook="order-sign", draft_orders=[nsaid_draft()])
    prophylaxis = card(evaluation, "ho-prophylaxis")
    assert "Enoxaparin" not in prophylaxis.detail
    assert "LIT-BEERS-ANTICOAG" not in prophylaxis.rules


def test_nsaid_order_without_an_indication_gives_no_card(run: Run) -> None:
    assert run([patient("male", 35)], hook="order-sign", draft_orders=[nsaid_draft()]).guidance == []


def test_nsaid_order_for_heterotopic_ossification_gives_a_card(run: Run) -> None:
    order = nsaid_draft()
    order["reasonCode"] = [{"text": "Prevention of heterotopic ossification"}]
    assert "ho-prophylaxis" in topics(run([patient("male", 35)], hook="order-sign", draft_orders=[order]))


# ================= §6 prophylaxis in patient-view =================


def test_acetabular_orif_2_days_ago_without_prophylaxis_is_a_warning_with_both_suggestions(run: Run) -> None:
    prophylaxis = card(run(orif_record(days_ago=2)), "ho-prophylaxis")
    assert prophylaxis.indicator.value == "warning"
    assert {"PX-07", "E-07"} <= set(prophylaxis.rules)
    codes = suggested_codes(prophylaxis)
    assert codes & INDOMETHACIN_CODES
    assert codes & RADIOTHERAPY_CODES
    assert prophylaxis.override_reasons


def test_acetabular_orif_5_days_ago_is_past_the_72_hour_radiotherapy_window(run: Run) -> None:
    prophylaxis = card(run(orif_record(days_ago=5)), "ho-prophylaxis")
    codes = suggested_codes(prophylaxis)
    assert codes & INDOMETHACIN_CODES
    assert not codes & RADIOTHERAPY_CODES
    assert "72 hours" in prophylaxis.detail


def test_acetabular_orif_over_14_days_ago_gives_no_prophylaxis_card(run: Run) -> None:
    assert "ho-prophylaxis" not in topics(run(orif_record(days_ago=20)))


def test_undated_acetabular_orif_is_high_risk_but_no_prophylaxis_gap_can_be_timed(run: Run) -> None:
    evaluation = run([patient(), procedure(ACETABULAR_ORIF, days_ago=None)])
    # 1.1 §3a: an undated index event cannot place the patient in the relevance window: the assessment
    # (high) stays in the trace, the chart gets no ho-risk card.
    assert evaluation.trace["populations"]["acetabular-orif"]["level"] == "high"
    assert "ho-risk" not in topics(evaluation)
    assert "ho-prophylaxis" not in topics(evaluation)


def test_no_prophylaxis_card_when_an_nsaid_was_started_after_the_orif(run: Run) -> None:
    assert "ho-prophylaxis" not in topics(run(orif_record(indomethacin(days_ago=1), days_ago=3)))


def test_no_prophylaxis_card_when_radiotherapy_was_given(run: Run) -> None:
    assert "ho-prophylaxis" not in topics(run(orif_record(procedure("77401", days_ago=1), days_ago=3)))


def test_nsaid_finished_long_before_the_orif_does_not_count(run: Run) -> None:
    old = indomethacin(days_ago=200, status="completed")
    assert "ho-prophylaxis" in topics(run(orif_record(old, days_ago=3)))


def test_stopped_nsaid_after_the_orif_does_not_count(run: Run) -> None:
    assert "ho-prophylaxis" in topics(run(orif_record(indomethacin(days_ago=1, status="stopped"), days_ago=3)))


def test_aspirin_is_not_prophylaxis(run: Run) -> None:
    aspirin = medication_request("243670", "Aspirin 81 MG Oral Tablet", days_ago=1)
    assert "ho-prophylaxis" in topics(run(orif_record(aspirin, days_ago=3)))


def test_radiotherapy_years_ago_does_not_stop_the_radiotherapy_suggestion(run: Run) -> None:
    prophylaxis = card(run(orif_record(procedure("77402", days_ago=3 * 365), days_ago=2)), "ho-prophylaxis")
    assert suggested_codes(prophylaxis) & RADIOTHERAPY_CODES


def test_acetabular_gap_card_carries_an_anticoagulant_caution(run: Run) -> None:
    assert "**Caution**" in card(run(orif_record(enoxaparin(), days_ago=2)), "ho-prophylaxis").detail


def excision_record(*extra: Resource, days_ago: float = 5, population: Resource | None = None) -> list[Resource]:
    return [
        patient("male", 45),
        population or condition(SCI_COMPLETE, days_ago=700),
        condition(HO_NEUROGENIC, days_ago=500),
        procedure(HO_EXCISION, days_ago=days_ago),
        *extra,
    ]


def test_post_resection_without_prophylaxis_is_a_warning(run: Run) -> None:
    prophylaxis = card(run(excision_record()), "ho-prophylaxis")
    assert prophylaxis.indicator.value == "warning"
    assert {"S-07", "PX-02", "PX-03"} <= set(prophylaxis.rules)
    assert "ho-history" in prophylaxis.populations


def test_post_resection_in_sci_says_consider(run: Run) -> None:
    prophylaxis = card(run(excision_record()), "ho-prophylaxis")
    assert "LIT-SCI-PROPHYLAXIS" in prophylaxis.rules
    assert "consider it" in prophylaxis.detail


def test_post_resection_mentions_etidronate_only_where_available_and_never_suggests_bisphosphonates(run: Run) -> None:
    prophylaxis = card(run(excision_record()), "ho-prophylaxis")
    assert "etidronate (where available)" in prophylaxis.detail
    texts = " ".join(str(s.resource).lower() for s in prophylaxis.suggestions)
    assert "etidronate" not in texts
    assert "alendronate" not in texts


def test_post_resection_etidronate_by_name_counts_as_prophylaxis(run: Run) -> None:
    etidronate = medication_request(text="Etidronate Disodium 400 MG Oral Tablet", days_ago=3)
    assert "ho-prophylaxis" not in topics(run(excision_record(etidronate)))


def test_post_resection_nsaid_counts_as_prophylaxis(run: Run) -> None:
    assert "ho-prophylaxis" not in topics(run(excision_record(indomethacin(days_ago=4))))


def test_post_resection_alendronate_is_not_prophylaxis(run: Run) -> None:
    alendronate = medication_request("904419", "Alendronate 70 MG Oral Tablet", days_ago=3)
    assert "ho-prophylaxis" in topics(run(excision_record(alendronate)))


def test_post_resection_over_14_days_ago_gives_no_prophylaxis_card(run: Run) -> None:
    assert "ho-prophylaxis" not in topics(run(excision_record(days_ago=20)))


def test_excision_not_done_gives_no_prophylaxis_card(run: Run) -> None:
    record = excision_record(days_ago=5)
    record[3]["status"] = "not-done"
    assert "ho-prophylaxis" not in topics(run(record))


# ================= §8 which topics each hook answers =================


def busy_record() -> list[Resource]:
    """High-risk SCI in the window, with signs, swelling and a recent acetabular ORIF: every chart card."""
    return [
        patient("male", 45),
        condition(SCI_COMPLETE, days_ago=20),
        condition(HIP_STIFFNESS, days_ago=2),
        condition("R22.41", days_ago=2),
        procedure(ACETABULAR_ORIF, days_ago=2),
    ]


@pytest.mark.parametrize("hook", ["patient-view", "encounter-start"])
def test_chart_hooks_return_the_chart_topics(run: Run, hook: str) -> None:
    assert {
        "ho-risk",
        "ho-surveillance",
        "ho-suspected",
        "dvt-differential",
        "ho-prophylaxis",
        "ho-rehabilitation",
    } <= topics(run(busy_record(), hook=hook))


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_order_hooks_never_return_chart_cards(run: Run, hook: str) -> None:
    evaluation = run(busy_record(), hook=hook, draft_orders=[hip_xray_order(), nsaid_draft()])
    found = topics(evaluation)
    assert found <= ORDER_TOPICS
    assert {"ho-imaging", "ho-prophylaxis"} <= found
    assert card(evaluation, "ho-prophylaxis").indicator.value == "info"  # the NSAID order, not the §6 gap


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_order_hooks_without_relevant_drafts_return_nothing(run: Run, hook: str) -> None:
    evaluation = run(busy_record(), hook=hook, draft_orders=[service_request(loinc="2160-0", text="Creatinine")])
    assert evaluation.guidance == []


def test_discharge_returns_only_risk_and_education(run: Run) -> None:
    assert topics(run(busy_record(), hook="encounter-discharge")) == {"ho-risk", "ho-education"}


def test_every_response_has_at_most_one_card_per_topic(run: Run) -> None:
    for hook, drafts in (
        ("patient-view", None),
        ("order-sign", [hip_xray_order(), service_request(BONE_SCAN), nsaid_draft(), tha_order()]),
    ):
        evaluation = run(busy_record(), hook=hook, draft_orders=drafts)
        names = [g.topic.value for g in evaluation.guidance]
        assert len(names) == len(set(names))


def test_unsupported_hook_is_an_input_error(kb: Knowledge) -> None:
    from hofhir.clinical.evaluate import evaluate

    inputs = from_hook_request(request("medication-prescribe", [patient()]), kb.terminology)
    with pytest.raises(InputError):
        evaluate(inputs, NOW, kb)


def test_the_stiffness_fixture_is_a_sign_in_chart_hooks(run: Run) -> None:
    # guards the order-hook tests above: the same record does raise chart cards
    assert "ho-suspected" in topics(run(busy_record()))
    assert "ho-risk" not in topics(run(busy_record(), hook="order-sign", draft_orders=[hip_xray_order()]))

"""Rehabilitation, motion after HO resection and discharge education (ho-rules-v1 §5, §7)."""

from __future__ import annotations

import pytest

from tests.builders import (
    Resource,
    Run,
    card,
    condition,
    medication_request,
    patient,
    procedure,
    service_request,
    topics,
)

SCI = "S24.131A"  # moderate for a 45-year-old
SCI_LUMBAR = "S34.121A"  # low for a 20-year-old
TBI_BRIEF = "S06.0X1A"  # low without other data
TBI_SEVERE = "S06.2X6A"  # moderate
BURN = "T24.311A"
STROKE = "I63.9"
HO = "M61.251"
HO_EXCISION = "27036"


def record(population: Resource, *extra: Resource, age: int = 45) -> list[Resource]:
    return [patient("male", age), population, *extra]


# ================= ho-rehabilitation (RH-xx) =================


def test_sci_moderate_gets_rehabilitation_with_sci_positioning(run: Run) -> None:
    rehab = card(run(record(condition(SCI, days_ago=40))), "ho-rehabilitation")
    assert rehab.indicator.value == "info"
    assert {"RH-07", "RH-03", "RH-04", "RH-10", "RH-06"} <= set(rehab.rules)
    assert "RH-09" not in rehab.rules
    assert rehab.populations == ("sci",)
    assert "every 2 hours" in rehab.detail
    assert "every 3 hours" in rehab.detail


def test_tbi_moderate_gets_rehabilitation_with_sitting_out_of_bed(run: Run) -> None:
    rehab = card(run(record(condition(TBI_SEVERE, days_ago=40))), "ho-rehabilitation")
    assert "RH-09" in rehab.rules
    assert "RH-06" not in rehab.rules
    assert rehab.populations == ("tbi",)


def test_tbi_low_gets_no_rehabilitation(run: Run) -> None:
    evaluation = run(record(condition(TBI_BRIEF, days_ago=40)))
    assert card(evaluation, "ho-risk").risk_level == "low"
    assert "ho-rehabilitation" not in topics(evaluation)


def test_sci_low_gets_no_rehabilitation(run: Run) -> None:
    evaluation = run(record(condition(SCI_LUMBAR, days_ago=40), age=20))
    assert card(evaluation, "ho-risk").risk_level == "low"
    assert "ho-rehabilitation" not in topics(evaluation)


def test_low_risk_stroke_gets_no_rehabilitation(run: Run) -> None:
    assert "ho-rehabilitation" not in topics(run(record(condition(STROKE, days_ago=60))))


def test_moderate_stroke_gets_no_rehabilitation_card(run: Run) -> None:
    # §7 names sci, tbi and ho-history only
    evaluation = run(record(condition(STROKE, days_ago=60), condition("Z74.01", days_ago=50)))
    assert card(evaluation, "ho-risk").risk_level == "moderate"
    assert "ho-rehabilitation" not in topics(evaluation)


def test_ho_history_alone_gets_rehabilitation(run: Run) -> None:
    # 1.1 §3a/§7: inside the relevance window (an active HO with onset in 12 months).
    rehab = card(run(record(condition(HO, days_ago=100))), "ho-rehabilitation")
    assert "ho-history" in rehab.populations
    # An HO from 700 days ago is outside the window: no chart card.
    assert "ho-rehabilitation" not in topics(run(record(condition(HO, days_ago=700))))


def test_resolved_ho_history_still_gets_rehabilitation_but_not_the_active_stage_advice(run: Run) -> None:
    # 1.1 §3a: a resolved HO alone is outside the relevance window, so an index event keeps it inside.
    resolved = condition(HO, days_ago=900, abated_days_ago=400)
    rehab = card(run(record(condition(SCI, days_ago=40), resolved)), "ho-rehabilitation")
    assert "ho-history" in rehab.populations
    assert "RH-05" not in rehab.rules


def test_active_ho_adds_active_stage_advice(run: Run) -> None:
    rehab = card(run(record(condition(SCI, days_ago=40), condition(HO, days_ago=5))), "ho-rehabilitation")
    assert {"RH-05", "RH-12"} <= set(rehab.rules)
    assert "pain-free range" in rehab.detail
    assert "contralateral ischium" in rehab.detail


def test_suspected_ho_adds_active_stage_advice(run: Run) -> None:
    rehab = card(run(record(condition(SCI, days_ago=40), condition("M25.651", days_ago=2))), "ho-rehabilitation")
    assert "RH-05" in rehab.rules


def test_no_active_stage_advice_without_active_ho(run: Run) -> None:
    rehab = card(run(record(condition(SCI, days_ago=40))), "ho-rehabilitation")
    assert "RH-05" not in rehab.rules


@pytest.mark.parametrize("hook", ["encounter-discharge", "order-sign"])
def test_rehabilitation_is_a_chart_card_only(run: Run, hook: str) -> None:
    assert "ho-rehabilitation" not in topics(run(record(condition(SCI, days_ago=40)), hook=hook))


# ================= ho-postoperative-rehab timeline (PO-xx) =================


def after_excision(population: Resource | None, days_ago: float = 10) -> list[Resource]:
    resources = [patient("male", 45), condition(HO, days_ago=300), procedure(HO_EXCISION, days_ago=days_ago)]
    return resources + ([population] if population else [])


@pytest.mark.parametrize(
    ("population", "code", "rules", "words"),
    [
        ("sci", SCI, {"PO-01"}, "no passive motion on days 0-14"),
        ("burn", BURN, {"PO-02"}, "48-72 hours"),
        ("tbi", TBI_BRIEF, {"PO-03", "PO-04"}, "one week"),
    ],
)
def test_postoperative_timeline_by_population(
    run: Run, population: str, code: str, rules: set[str], words: str
) -> None:
    postop = card(run(after_excision(condition(code, days_ago=500))), "ho-postoperative-rehab")
    assert postop.indicator.value == "info"
    assert rules <= set(postop.rules)
    assert population in postop.populations
    assert words in postop.detail
    assert "expert series" in postop.detail


def test_postoperative_timeline_without_a_neurological_population_shows_all_series(run: Run) -> None:
    postop = card(run(after_excision(None)), "ho-postoperative-rehab")
    assert {"PO-01", "PO-02", "PO-03", "PO-04"} <= set(postop.rules)


@pytest.mark.parametrize(("days", "shown"), [(0.5, True), (42, True), (43, False), (60, False)])
def test_postoperative_timeline_for_6_weeks(run: Run, days: float, shown: bool) -> None:
    evaluation = run(after_excision(condition(SCI, days_ago=500), days_ago=days))
    assert ("ho-postoperative-rehab" in topics(evaluation)) is shown


def test_undated_excision_gives_no_timeline(run: Run) -> None:
    record = [
        patient(),
        condition(SCI, days_ago=500),
        condition(HO, days_ago=300),
        procedure(HO_EXCISION, days_ago=None),
    ]
    assert "ho-postoperative-rehab" not in topics(run(record))


def test_excision_ordered_but_not_performed_gives_no_timeline(run: Run) -> None:
    planned = [patient(), condition(HO, days_ago=300), service_request(HO_EXCISION, status="active", days_ago=3)]
    assert "ho-postoperative-rehab" not in topics(run(planned))


# ================= §5: passive ROM / CPM ordered too early after resection in SCI =================


@pytest.mark.parametrize(
    "order",
    [
        service_request("97110", text="Therapeutic exercise"),
        service_request(text="Passive range of motion exercises, both hips"),
        service_request(snomed="91251008", text="Physical therapy: continuous passive motion (CPM), right hip"),
    ],
    ids=["cpt-97110", "passive-rom-text", "pt-with-cpm-text"],
)
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_rom_order_5_days_after_resection_in_sci_is_a_warning(run: Run, order: Resource, hook: str) -> None:
    evaluation = run(after_excision(condition(SCI, days_ago=500), days_ago=5), hook=hook, draft_orders=[order])
    warning = card(evaluation, "ho-postoperative-rehab")
    assert warning.indicator.value == "warning"
    assert "PO-01" in warning.rules
    assert "sci" in warning.populations
    assert warning.override_reasons


def test_rom_order_after_resection_in_a_non_sci_patient_gives_no_warning(run: Run) -> None:
    order = service_request(text="Passive range of motion exercises, both hips")
    evaluation = run(
        after_excision(condition(TBI_BRIEF, days_ago=500), days_ago=5), hook="order-sign", draft_orders=[order]
    )
    assert evaluation.guidance == []


def test_rom_order_20_days_after_resection_gives_no_warning(run: Run) -> None:
    order = service_request(text="Passive range of motion exercises, both hips")
    evaluation = run(after_excision(condition(SCI, days_ago=500), days_ago=20), hook="order-sign", draft_orders=[order])
    assert evaluation.guidance == []


def test_generic_physical_therapy_order_is_not_a_rom_order(run: Run) -> None:
    order = service_request(snomed="91251008", text="Physical therapy: gait training")
    evaluation = run(after_excision(condition(SCI, days_ago=500), days_ago=5), hook="order-sign", draft_orders=[order])
    assert evaluation.guidance == []


def test_rom_order_without_a_resection_gives_no_warning(run: Run) -> None:
    order = service_request(text="Passive range of motion exercises, both hips")
    evaluation = run(record(condition(SCI, days_ago=40)), hook="order-sign", draft_orders=[order])
    assert evaluation.guidance == []


# ================= ho-education at discharge (RH-13) =================


def test_discharge_of_a_moderate_risk_patient_gets_education(run: Run) -> None:
    evaluation = run(record(condition(SCI, days_ago=40)), hook="encounter-discharge")
    education = card(evaluation, "ho-education")
    assert education.indicator.value == "info"
    assert {"RH-13", "RH-04"} <= set(education.rules)
    assert "sci" in education.populations
    assert card(evaluation, "ho-risk").risk_level == "moderate"


def test_discharge_of_a_high_risk_patient_gets_education(run: Run) -> None:
    evaluation = run([patient(), procedure("27226", days_ago=6)], hook="encounter-discharge")
    assert "ho-education" in topics(evaluation)


def test_discharge_of_a_low_risk_patient_gets_no_education(run: Run) -> None:
    evaluation = run(record(condition(STROKE, days_ago=10)), hook="encounter-discharge")
    assert topics(evaluation) == {"ho-risk"}


def test_discharge_with_ho_history_gets_education(run: Run) -> None:
    evaluation = run(record(condition(HO, days_ago=100)), hook="encounter-discharge")
    assert "ho-history" in card(evaluation, "ho-education").populations
    # 1.1 §7: outside the relevance window (HO onset 700 days ago), no education card.
    assert run(record(condition(HO, days_ago=700)), hook="encounter-discharge").guidance == []


def test_discharge_without_any_population_gets_no_cards(run: Run) -> None:
    assert run([patient(), condition("I10")], hook="encounter-discharge").guidance == []


@pytest.mark.parametrize("hook", ["patient-view", "encounter-start"])
def test_education_only_at_discharge(run: Run, hook: str) -> None:
    assert "ho-education" not in topics(run(record(condition(SCI, days_ago=40)), hook=hook))


def test_discharge_of_a_young_child_at_low_risk_gets_no_education(run: Run) -> None:
    evaluation = run(record(condition(SCI, days_ago=40), age=6), hook="encounter-discharge")
    assert topics(evaluation) == {"ho-risk"}


def test_discharge_education_is_not_withheld_by_an_unrelated_medication(run: Run) -> None:
    drug = medication_request(text="Lisinopril 10 MG Oral Tablet", days_ago=3)
    assert "ho-education" in topics(run(record(condition(SCI, days_ago=40), drug), hook="encounter-discharge"))

"""Rehabilitation, motion after resection and discharge education (ho-rules-v1 §5, §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hofhir.clinical.facts import PatientFacts
from hofhir.clinical.model import Finding, Indicator, Population, RiskLevel, Topic
from hofhir.clinical.rules.common import advice_lines, latest_procedure, override, population_names, say
from hofhir.clinical.rules.diagnosis import Suspicion, ho_diagnosed
from hofhir.clinical.rules.risk import RiskAssessment
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge


def _active_ho(facts: PatientFacts, suspected: Suspicion | None) -> bool:
    """Suspected now, or already diagnosed (§4, 1.1): the card gives the active-HO guidance (RH-05, RH-12)."""
    return (
        suspected is not None
        or ho_diagnosed(facts) is not None
        or any(e.active for e in facts.recorded("ho") if e.resource_type == "Condition")
    )


def rehabilitation(
    facts: PatientFacts, risk: RiskAssessment, k: Knowledge, suspected: Suspicion | None
) -> Finding | None:
    """SCI or TBI at moderate/high risk, or HO history -> positioning, turning, ROM (RH-xx)."""
    neuro = [
        p.population
        for p in risk.populations
        if p.population in (Population.SCI, Population.TBI) and p.level.at_least(RiskLevel.MODERATE)
    ]
    history = bool(facts.recorded("ho"))
    if not neuro and not history:
        return None
    rules = ["RH-01", "RH-07", "RH-03", "RH-04", "RH-10"]
    advice = list(advice_lines(k, "rehabilitation"))
    if Population.SCI in facts.populations():
        advice.append(say(k, "advice", "rehabilitation_sci"))
        rules.append("RH-06")
    if Population.TBI in facts.populations():
        advice.append(say(k, "advice", "rehabilitation_tbi"))
        rules.append("RH-09")
    active = _active_ho(facts, suspected)
    if active:
        advice += list(advice_lines(k, "rehabilitation_active"))
        rules += ["RH-05", "RH-12"]
    populations = tuple(neuro) + ((Population.HO_HISTORY,) if history else ())
    reasons = []
    for p in risk.populations:
        if p.population in neuro:
            reasons.append(f"{p.level.value.capitalize()} HO risk after {population_names(k, [p.population])}.")
    if history:
        reasons.append(say(k, "reasons", "ho_on_record", display=facts.recorded("ho")[0].display))
    diagnosed = ho_diagnosed(facts)
    if diagnosed is not None:
        when = diagnosed.when.date() if diagnosed.when else "date not recorded"
        reasons.append(say(k, "reasons", "ho_diagnosed", display=diagnosed.display, date=when))
    advice.append(say(k, "advice_more", "rehabilitation_therapists"))
    rules.append("RH-02")
    return Finding(
        topic=Topic.HO_REHABILITATION,
        indicator=Indicator.INFO,
        rules=tuple(dict.fromkeys(rules)),
        summary=say(k, "summaries", "rehabilitation_active" if active else "rehabilitation"),
        populations=populations,
        reasons=tuple(reasons),
        advice=tuple(advice),
        override_reasons=override(k, "protocol_differs"),
    )


def _protocol(facts: PatientFacts) -> tuple[str, tuple[str, ...], Population | None]:
    present = facts.populations()
    if Population.SCI in present:
        return "sci", ("PO-01", "PO-05"), Population.SCI
    if Population.BURN in present:
        return "burn", ("PO-02",), Population.BURN
    if Population.TBI in present:
        return "tbi", ("PO-03", "PO-04"), Population.TBI
    return "other", ("PO-01", "PO-02", "PO-03", "PO-04"), None


def postoperative(facts: PatientFacts, k: Knowledge, now: datetime) -> Finding | None:
    """HO excision performed within 6 weeks -> the motion timeline for the patient's population."""
    surgery = latest_procedure(facts, "ho_excision", now, k.window("post_resection_rehab_days"))
    if surgery is None:
        return None
    assert surgery.when is not None
    days = int(days_between(surgery.when, now))
    key, rules, population = _protocol(facts)
    protocol = str(k.cards["advice"]["postop_rehab"][key])
    name = population_names(k, [population]) if population else "this patient"
    return Finding(
        topic=Topic.HO_POSTOPERATIVE_REHAB,
        indicator=Indicator.INFO,
        rules=rules,
        summary=say(k, "summaries", "postop_rehab", days=days, population=name),
        populations=((population,) if population else ()) + (Population.HO_HISTORY,),
        reasons=(f"{surgery.display} on {surgery.when.date()} ({days} days ago).",),
        advice=(protocol, say(k, "advice", "postop_rehab_expert")),
        override_reasons=override(k, "protocol_differs"),
    )


def rom_order_after_resection(
    facts: PatientFacts, k: Knowledge, now: datetime, order: dict[str, Any]
) -> Finding | None:
    """PO-01: passive ROM / CPM ordered within 14 days after HO resection in SCI -> warning."""
    if Population.SCI not in facts.populations():
        return None
    surgery = latest_procedure(facts, "ho_excision", now, k.window("no_passive_motion_after_resection_days"))
    if surgery is None:
        return None
    assert surgery.when is not None
    days = int(days_between(surgery.when, now))
    return Finding(
        topic=Topic.HO_POSTOPERATIVE_REHAB,
        indicator=Indicator.WARNING,
        rules=("PO-01", "PO-05"),
        summary=say(k, "summaries", "postop_rehab_violation", days=days),
        populations=(Population.SCI, Population.HO_HISTORY),
        reasons=(
            f"{surgery.display} on {surgery.when.date()} ({days} days ago); a range-of-motion or CPM order is being placed.",
            say(k, "reasons", "postop_no_passive", days=k.window("no_passive_motion_after_resection_days")),
        ),
        advice=(str(k.cards["advice"]["postop_rehab"]["sci"]), say(k, "advice", "postop_rehab_expert")),
        override_reasons=override(k, "protocol_differs", "surgeon_reviewed"),
        priority=2,
    )


def education(facts: PatientFacts, risk: RiskAssessment, k: Knowledge) -> Finding | None:
    """encounter-discharge of a patient at moderate/high risk or with HO -> RH-13, RH-04."""
    history = bool(facts.recorded("ho"))
    at_risk = risk.level is not None and risk.level.at_least(RiskLevel.MODERATE)
    if not at_risk and not history:
        return None
    populations = tuple(p.population for p in risk.populations if p.level.at_least(RiskLevel.MODERATE))
    return Finding(
        topic=Topic.HO_EDUCATION,
        indicator=Indicator.INFO,
        rules=("RH-13", "RH-04", "RH-01"),
        summary=say(k, "summaries", "education"),
        populations=populations + ((Population.HO_HISTORY,) if history else ()),
        reasons=(
            f"Discharge with {'HO' if history and not at_risk else (risk.level.value if risk.level else '') + ' HO risk'}.",
        ),
        advice=advice_lines(k, "education"),
        override_reasons=override(k, "not_indicated"),
    )

"""Prophylaxis: THA and NSAID orders (ho-rules-v1 §5) and gaps after acetabular ORIF or HO resection (§6)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hofhir.clinical.facts import Entry, PatientFacts
from hofhir.clinical.model import Factor, FactorStatus, Finding, Indicator, Population, RiskLevel, Suggestion, Topic
from hofhir.clinical.rules.common import advice_lines, latest_procedure, override, say, within_days
from hofhir.clinical.rules.risk import tha_factors, tha_level
from hofhir.fhir import build
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge

PROPHYLAXIS_SETS = ("nsaid", "radiotherapy")


def _anticoagulant_caution(facts: PatientFacts, k: Knowledge, now: datetime) -> tuple[str, ...]:
    active = [
        e
        for e in facts.recorded("anticoagulant")
        if e.active or within_days(e.when, now, k.window("medication_recent_days"))
    ]
    return (say(k, "advice", "nsaid_anticoagulant", drug=active[0].display),) if active else ()


def _regimens(k: Knowledge) -> tuple[dict[str, Any], dict[str, Any]]:
    regimens = k.parameters["regimens"]
    return regimens["indomethacin"], regimens["radiotherapy"]


def _given_since(
    facts: PatientFacts, since: datetime | None, concepts: tuple[str, ...], now: datetime, k: Knowledge
) -> list[Entry]:
    """Prophylaxis on record: given or ordered since the operation (a day's margin), or active now."""
    margin = timedelta(days=1)
    return [
        e
        for e in facts.of(*concepts)
        if e.active or (e.when is not None and (since is None or e.when >= since - margin) and e.when <= now + margin)
    ]


def _suggestions(
    facts: PatientFacts, k: Knowledge, reason: str, hours_since_surgery: float | None, now: datetime
) -> tuple[list[Suggestion], list[str]]:
    nsaid_regimen, rt_regimen = _regimens(k)
    suggestions: list[Suggestion] = []
    notes: list[str] = []
    # ho-rules-v1 §1: skip only what is active or recent enough to make the suggestion redundant
    # (an NSAID course or radiotherapy finished years ago does not).
    recent = now - timedelta(days=k.window("medication_recent_days"))
    if not _given_since(facts, recent, ("nsaid",), now, k):
        suggestions.append(
            Suggestion(
                f"Start {nsaid_regimen['label'].lower()}",
                nsaid_regimen["label"] + " ([LIT] regimen)",
                build.indomethacin_order(facts.patient_id, reason, nsaid_regimen),
            )
        )
    post_limit = float(rt_regimen["post_op_hours"])
    if hours_since_surgery is not None and hours_since_surgery > post_limit:
        notes.append(say(k, "advice", "prophylaxis_radiotherapy_late", hours=int(hours_since_surgery)))
    elif not _given_since(facts, recent, ("radiotherapy",), now, k):
        suggestions.append(
            Suggestion(
                "Refer for prophylactic radiotherapy",
                rt_regimen["label"] + " ([LIT] regimen)",
                build.radiotherapy_order(facts.patient_id, reason, rt_regimen),
            )
        )
    return suggestions, notes


# ---------- orders ----------


def tha_order(
    facts: PatientFacts, k: Knowledge, now: datetime, order: dict[str, Any], concepts: set[str]
) -> Finding | None:
    """THA or revision ordered, THA factors moderate/high -> NSAID and radiotherapy suggestions (PX-01)."""
    revision = "tha_revision" in concepts
    strong, other = tha_factors(facts, k, None, now, planned_revision=revision)
    level, basis = tha_level(strong, other)
    if not level.at_least(RiskLevel.MODERATE):
        return None
    present = [f for f in strong + other if f.status is FactorStatus.PRESENT]
    reason = "Prophylaxis of heterotopic ossification after hip arthroplasty (PX-01)"
    suggestions, notes = _suggestions(facts, k, reason, None, now)
    nsaid_regimen, rt_regimen = _regimens(k)
    reasons = [f"{level.value.capitalize()} THA risk: {basis}."] + [f"{f.rule} {f.name}: {f.evidence}" for f in present]
    if _given_since(facts, now - timedelta(days=k.window("medication_recent_days")), PROPHYLAXIS_SETS, now, k):
        reasons.append("An NSAID or radiotherapy is already on record: check that it covers the operation.")
    advice = [
        *advice_lines(k, "prophylaxis_tha"),
        say(
            k,
            "advice",
            "prophylaxis_regimens",
            nsaid=nsaid_regimen["label"],
            radiotherapy=rt_regimen["label"],
        ),
        *notes,
        say(k, "advice", "prophylaxis_alendronate"),
    ]
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.INFO,
        rules=tuple(dict.fromkeys(["PX-01", *(f.rule for f in present), "E-05", "LIT-REGIMENS"])),
        summary=say(k, "summaries", "prophylaxis_tha", level_title=level.value.capitalize()),
        populations=(Population.THA,) + ((Population.HO_HISTORY,) if facts.recorded("ho") else ()),
        reasons=tuple(reasons),
        advice=tuple(advice),
        factors=tuple(strong + other),
        risk_level=None,
        suggestions=tuple(suggestions),
        override_reasons=override(k, "prophylaxis_elsewhere", "contraindicated", "not_indicated"),
        cautions=_anticoagulant_caution(facts, k, now),
        priority=1,
    )


def nsaid_order(
    facts: PatientFacts, k: Knowledge, now: datetime, order: dict[str, Any], indicated: list[Finding]
) -> Finding | None:
    """An NSAID ordered where prophylaxis is indicated (or for HO) is the prophylaxis: say so, with cautions."""
    text = str(order).lower()
    for_ho = "heterotopic" in text or any(
        "ho" in k.terminology.sets_for_concept(r) for r in order.get("reasonCode") or []
    )
    if not indicated and not for_ho:
        return None
    pops = tuple(dict.fromkeys(p for f in indicated for p in f.populations)) or (
        (Population.HO_HISTORY,) if facts.recorded("ho") else ()
    )
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.INFO,
        rules=("PX-01", "LIT-NSAID-SAFETY"),
        summary=say(k, "summaries", "prophylaxis_nsaid_order"),
        populations=pops,
        reasons=(
            "An NSAID is ordered while HO prophylaxis is indicated: the order itself is the prophylaxis (PX-01).",
        ),
        advice=(say(k, "advice", "prophylaxis_alendronate"),),
        cautions=_anticoagulant_caution(facts, k, now),
        override_reasons=override(k, "not_indicated"),
    )


# ---------- patient-view (§6) ----------


def acetabular_gap(facts: PatientFacts, k: Knowledge, now: datetime) -> Finding | None:
    surgery = latest_procedure(facts, "acetabular_orif", now, k.window("acetabular_orif_prophylaxis_days"))
    if surgery is None:
        return None
    if _given_since(facts, surgery.when, PROPHYLAXIS_SETS, now, k):
        return None
    hours = days_between(surgery.when, now) * 24 if surgery.when else None
    suggestions, notes = _suggestions(
        facts, k, "Prophylaxis of heterotopic ossification after acetabular fracture fixation (PX-07)", hours, now
    )
    nsaid_regimen, rt_regimen = _regimens(k)
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.WARNING,
        rules=("PX-07", "E-07", "PX-01", "LIT-REGIMENS"),
        summary=say(k, "summaries", "prophylaxis_acetabular"),
        populations=(Population.ACETABULAR_ORIF,),
        reasons=(
            f"{surgery.display} on {surgery.when.date() if surgery.when else '?'} ({int((hours or 0) / 24)} days ago).",
            "No NSAID or radiotherapy recorded since the operation.",
        ),
        advice=(
            say(k, "advice", "prophylaxis_acetabular"),
            say(
                k,
                "advice",
                "prophylaxis_regimens",
                nsaid=nsaid_regimen["label"],
                radiotherapy=rt_regimen["label"],
            ),
            *notes,
            say(k, "advice", "prophylaxis_alendronate"),
        ),
        suggestions=tuple(suggestions),
        override_reasons=override(k, "prophylaxis_elsewhere", "contraindicated"),
        cautions=_anticoagulant_caution(facts, k, now),
        priority=2,
    )


def post_resection_gap(facts: PatientFacts, k: Knowledge, now: datetime) -> Finding | None:
    surgery = latest_procedure(facts, "ho_excision", now, k.window("post_resection_prophylaxis_days"))
    if surgery is None:
        return None
    if _given_since(facts, surgery.when, (*PROPHYLAXIS_SETS, "etidronate"), now, k):
        return None
    hours = days_between(surgery.when, now) * 24 if surgery.when else None
    suggestions, notes = _suggestions(
        facts, k, "Prophylaxis of recurrence after heterotopic bone resection (S-07, PX-02)", hours, now
    )
    advice = [
        say(k, "advice", "prophylaxis_post_resection"),
        *notes,
        say(k, "advice", "prophylaxis_alendronate"),
    ]
    rules = ["S-07", "PX-02", "PX-03", "PX-01", "LIT-REGIMENS"]
    populations: list[Population] = [Population.HO_HISTORY]
    if Population.SCI in facts.populations():
        advice.insert(1, say(k, "advice", "prophylaxis_sci"))
        rules.append("LIT-SCI-PROPHYLAXIS")
        populations.insert(0, Population.SCI)
    return Finding(
        topic=Topic.HO_PROPHYLAXIS,
        indicator=Indicator.WARNING,
        rules=tuple(rules),
        summary=say(k, "summaries", "prophylaxis_post_resection"),
        populations=tuple(populations),
        reasons=(
            f"{surgery.display} on {surgery.when.date() if surgery.when else '?'}; no NSAID, radiotherapy or etidronate recorded since.",
        ),
        advice=tuple(advice),
        suggestions=tuple(suggestions),
        override_reasons=override(k, "prophylaxis_elsewhere", "contraindicated"),
        cautions=_anticoagulant_caution(facts, k, now),
        priority=2,
    )


def prophylaxis_indicated(facts: PatientFacts, k: Knowledge, now: datetime) -> list[Finding]:
    return [f for f in (acetabular_gap(facts, k, now), post_resection_gap(facts, k, now)) if f is not None]


__all__ = [
    "Factor",
    "acetabular_gap",
    "nsaid_order",
    "post_resection_gap",
    "prophylaxis_indicated",
    "tha_order",
]

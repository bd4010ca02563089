"""HO excision readiness (ho-rules-v1 §5, S-02): maturity criteria met, unmet or unknown."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from hofhir.clinical.facts import PatientFacts
from hofhir.clinical.model import Factor, FactorStatus, Finding, Indicator, Population, Suggestion, Topic
from hofhir.clinical.rules.common import (
    advice_lines,
    at_risk_events,
    done_or_ordered_since,
    override,
    recent_since,
    say,
)
from hofhir.fhir import build
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge

STABLE_WORDS = ("stable", "steady state", "steady-state", "mature", "no increase", "unchanged")
ACTIVE_WORDS = ("increased uptake", "active", "immature", "increasing", "progress")
# Whole words only ("unstable" is not "stable", "immature" is not "mature"), and a negated stable word
# ("not stable", "not yet at steady state", "no longer stable") says the activity is not at steady state.
_STABLE = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in STABLE_WORDS) + r")\b")
_ACTIVE = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in ACTIVE_WORDS) + r")")
_NOT_STABLE = re.compile(
    r"\b(?:unstable|immature|(?:not|no longer)\s+(?:yet\s+)?(?:at\s+(?:a\s+)?)?(?:stable|steady[- ]state|mature))\b"
)


def bone_scan_activity(facts: PatientFacts) -> Factor:
    """S-02(a): serial bone-scan activity at steady state; only what a report or result says counts."""
    scans = sorted(
        (e for e in facts.recorded("bone_scan") if e.note), key=lambda e: e.when or datetime.min, reverse=True
    )
    for scan in scans:
        note = scan.note.lower()
        if not _NOT_STABLE.search(note) and _STABLE.search(note):
            return Factor(
                "S-02",
                "bone-scan activity at steady state",
                FactorStatus.PRESENT,
                f"{scan.display}: {scan.note[:80]}",
            )
        if _NOT_STABLE.search(note) or _ACTIVE.search(note) or note.split()[-1:] in (["h"], ["a"]):
            return Factor(
                "S-02",
                "bone-scan activity at steady state",
                FactorStatus.ABSENT,
                f"{scan.display}: {scan.note[:80]}",
            )
    return Factor("S-02", "bone-scan activity at steady state", FactorStatus.UNKNOWN, "not documented")


def readiness(facts: PatientFacts, k: Knowledge, now: datetime, order: dict[str, Any]) -> Finding:
    criteria: list[Factor] = []
    sap = facts.latest_result("alp")
    if sap is None:
        criteria.append(Factor("L-02", "latest ALP within range", FactorStatus.UNKNOWN, "no ALP result"))
    elif sap.above_range is None:
        criteria.append(
            Factor(
                "L-02",
                "latest ALP within range",
                FactorStatus.UNKNOWN,
                f"ALP {sap.value:g} {sap.unit}: no reference range",
            )
        )
    else:
        status = FactorStatus.ABSENT if sap.above_range else FactorStatus.PRESENT
        rng = f"{sap.low:g}-{sap.high:g}" if sap.low is not None and sap.high is not None else "range"
        criteria.append(
            Factor(
                "L-02",
                "latest ALP within range",
                status,
                f"ALP {sap.value:g} {sap.unit} ({rng}) on {sap.when.date() if sap.when else '?'}",
            )
        )
    criteria.append(bone_scan_activity(facts))
    maturity_days = k.window("surgical_maturity_days")
    injuries = [e for e in at_risk_events(facts, include_history=False) if e.when is not None]
    if injuries:
        event = max(injuries, key=lambda e: e.when)  # type: ignore[arg-type,return-value]
        assert event.when is not None
        months = days_between(event.when, now) / 30.44
        status = FactorStatus.PRESENT if days_between(event.when, now) >= maturity_days else FactorStatus.ABSENT
        criteria.append(
            Factor(
                "S-02",
                "12 months or more since the injury",
                status,
                f"{months:.0f} months since {event.display}",
            )
        )
        populations: tuple[Population, ...] = (
            (event.population, Population.HO_HISTORY) if facts.recorded("ho") else (event.population,)
        )
    else:
        criteria.append(
            Factor("S-02", "12 months or more since the injury", FactorStatus.UNKNOWN, "injury date not recorded")
        )
        populations = (Population.HO_HISTORY,) if facts.recorded("ho") else ()
    unmet = [c for c in criteria if c.status is not FactorStatus.PRESENT]
    names = {
        "latest ALP within range": "ALP raised",
        "bone-scan activity at steady state": "bone scan",
        "12 months or more since the injury": "under 12 months",
    }
    reasons = [
        f"{'Met' if c.status is FactorStatus.PRESENT else ('Unknown' if c.status is FactorStatus.UNKNOWN else 'Not met')}: "
        f"{c.name} ({c.evidence})."
        for c in criteria
    ]
    reasons.insert(
        0,
        "Traditional criteria, all three: bone-scan activity at steady state, ALP back to normal, usually 12-18 months after injury (S-02, L-02).",
    )
    advice = list(advice_lines(k, "readiness"))
    site = (
        " ".join(str(s) for s in (order.get("bodySite") or [])).lower()
        + " "
        + " ".join(e.site.lower() for e in facts.recorded("ho"))
    )
    for word, line in k.cards["advice"]["readiness_location"].items():
        if word in site:
            advice.append(str(line))
    suggestions: list[Suggestion] = []
    if not done_or_ordered_since(facts, "ct_planning", recent_since(now, 90)):
        suggestions.append(
            Suggestion(
                "Order a CT of the pelvis for planning",
                "CT can help plan the resection (I-04)",
                build.ct_order(facts.patient_id, "Planning of heterotopic bone resection (I-04)"),
            )
        )
    rules = ("S-02", "L-02", "S-01", "S-03", "S-04", "S-07", "I-04") + (
        ("S-05",) if any("(S-05)" in a for a in advice) else ()
    )
    if unmet:
        short = ", ".join(
            dict.fromkeys(
                names[c.name] if c.status is FactorStatus.ABSENT else f"{names[c.name]} unknown" for c in unmet
            )
        )
        return Finding(
            topic=Topic.HO_SURGICAL_READINESS,
            indicator=Indicator.WARNING,
            rules=rules,
            summary=say(
                k,
                "summaries",
                "readiness_unmet",
                unmet=short.replace("bone scan unknown", "bone scan not documented"),
            ),
            populations=populations,
            reasons=tuple(reasons),
            advice=tuple(advice),
            factors=tuple(criteria),
            suggestions=tuple(suggestions),
            override_reasons=override(k, "early_wedge", "maturity_documented", "surgeon_reviewed"),
            priority=2,
        )
    return Finding(
        topic=Topic.HO_SURGICAL_READINESS,
        indicator=Indicator.INFO,
        rules=rules,
        summary=say(k, "summaries", "readiness_met"),
        populations=populations,
        reasons=tuple(reasons),
        advice=tuple(advice),
        factors=tuple(criteria),
        suggestions=tuple(suggestions),
    )

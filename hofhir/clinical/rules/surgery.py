"""HO excision readiness (ho-rules-v1 §5, S-02): maturity criteria met, unmet or unknown."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from hofhir.clinical.facts import IndexEvent, PatientFacts
from hofhir.clinical.model import Factor, FactorStatus, Finding, Indicator, Population, Suggestion, Topic
from hofhir.clinical.rules.common import (
    advice_lines,
    done_or_ordered_since,
    factor,
    months,
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


def bone_scan_activity(facts: PatientFacts, k: Knowledge) -> Factor:
    """S-02(a): serial bone-scan activity at steady state; only what a report or result says counts."""
    scans = sorted(
        (e for e in facts.recorded("bone_scan") if e.note), key=lambda e: e.when or datetime.min, reverse=True
    )
    for scan in scans:
        note = scan.note.lower()
        if not _NOT_STABLE.search(note) and _STABLE.search(note):
            return factor(k, "bone_scan_stable", "S-02", FactorStatus.PRESENT, f"{scan.display}: {scan.note[:80]}")
        if _NOT_STABLE.search(note) or _ACTIVE.search(note) or note.split()[-1:] in (["h"], ["a"]):
            return factor(k, "bone_scan_stable", "S-02", FactorStatus.ABSENT, f"{scan.display}: {scan.note[:80]}")
    return factor(k, "bone_scan_stable", "S-02", FactorStatus.UNKNOWN, "not documented")


def injury_of_the_ho(facts: PatientFacts) -> tuple[IndexEvent | None, datetime | None]:
    """ho-rules-v1 §5 (1.1): the index event that caused the HO, and the HO onset it was anchored on.

    The most recent index event on or before the HO's onset date (the latest dated HO condition); without
    an HO onset date, the most recent index event. A later, unrelated event does not restart the clock.
    """
    events = [
        e
        for population, listed in facts.index_events.items()
        if population is not Population.HO_HISTORY
        for e in listed
        if e.when is not None
    ]
    if not events:
        return None, None
    onsets = [e.when for e in facts.recorded("ho") if e.resource_type == "Condition" and e.when is not None]
    onset = max(onsets) if onsets else None
    before = [e for e in events if onset is None or e.when <= onset]  # type: ignore[operator]
    if not before:
        before = events  # every recorded injury is after the HO onset: the most recent one, as without an onset
        onset = None
    return max(before, key=lambda e: e.when), onset  # type: ignore[arg-type,return-value]


def _alp_criterion(facts: PatientFacts, k: Knowledge) -> Factor:
    sap = facts.latest_result("alp")
    if sap is None:
        return factor(k, "alp_in_range", "L-02", FactorStatus.UNKNOWN, "no ALP result")
    if sap.above_range is None:
        why = "unit not readable" if not sap.unit_known else "no reference range"
        value = f"ALP {sap.value:g} {sap.unit}" if sap.value is not None else "ALP without a value"
        return factor(k, "alp_in_range", "L-02", FactorStatus.UNKNOWN, f"{value}: {why}")
    status = FactorStatus.ABSENT if sap.above_range else FactorStatus.PRESENT
    rng = f"{sap.low:g}-{sap.high:g}" if sap.low is not None and sap.high is not None else "range"
    when = sap.when.date() if sap.when else "?"
    value = f"{sap.value:g} {sap.unit}" if sap.value is not None else sap.interpretation
    return factor(k, "alp_in_range", "L-02", status, f"ALP {value} ({rng}) on {when}")


def _short(k: Knowledge, criterion: Factor, **fields: object) -> str:
    """The readiness summary's short name of an unmet (or unknown) criterion, by its code."""
    absent, unknown = k.cards["factor_short"][criterion.code]
    template = str(absent if criterion.status is FactorStatus.ABSENT else unknown)
    return template.format(**fields)


def readiness(facts: PatientFacts, k: Knowledge, now: datetime, order: dict[str, Any]) -> Finding:
    criteria: list[Factor] = [_alp_criterion(facts, k), bone_scan_activity(facts, k)]
    maturity_days = k.window("surgical_maturity_days")
    maturity_months = months(maturity_days)
    event, onset = injury_of_the_ho(facts)
    anchor: list[str] = []
    if event is not None:
        assert event.when is not None
        elapsed = days_between(event.when, now)
        status = FactorStatus.PRESENT if elapsed >= maturity_days else FactorStatus.ABSENT
        criteria.append(
            factor(
                k,
                "maturity_time",
                "S-02",
                status,
                f"{elapsed / 30.44:.0f} months since {event.display}",
                months=maturity_months,
            )
        )
        if onset is not None:
            anchor.append(
                say(k, "reasons", "readiness_anchor", event=event.display, date=event.when.date(), onset=onset.date())
            )
        populations: tuple[Population, ...] = (
            (event.population, Population.HO_HISTORY) if facts.recorded("ho") else (event.population,)
        )
    else:
        criteria.append(
            factor(k, "maturity_time", "S-02", FactorStatus.UNKNOWN, "injury date not recorded", months=maturity_months)
        )
        populations = (Population.HO_HISTORY,) if facts.recorded("ho") else ()
    unmet = [c for c in criteria if c.status is not FactorStatus.PRESENT]
    reasons = [
        say(k, "reasons", "readiness_criteria", months=maturity_months),
        *anchor,
        *(
            f"{'Met' if c.status is FactorStatus.PRESENT else ('Unknown' if c.status is FactorStatus.UNKNOWN else 'Not met')}: "
            f"{c.name} ({c.evidence})."
            for c in criteria
        ),
    ]
    advice = list(advice_lines(k, "readiness"))
    site = (
        " ".join(str(s) for s in (order.get("bodySite") or [])).lower()
        + " "
        + " ".join(e.site.lower() for e in facts.recorded("ho"))
    )
    location_notes = [str(line) for word, line in k.cards["advice"]["readiness_location"].items() if word in site]
    advice += location_notes
    suggestions: list[Suggestion] = []
    if not done_or_ordered_since(facts, "ct_planning", recent_since(now, 90)):
        suggestions.append(
            Suggestion(
                "Order a CT of the pelvis for planning",
                "CT can help plan the resection (I-04)",
                build.ct_order(facts.patient_id, "Planning of heterotopic bone resection (I-04)"),
            )
        )
    rules = ("S-02", "L-02", "S-01", "S-03", "S-04", "S-07", "I-04") + (("S-05",) if location_notes else ())
    if unmet:
        short = ", ".join(dict.fromkeys(_short(k, c, months=maturity_months) for c in unmet))
        return Finding(
            topic=Topic.HO_SURGICAL_READINESS,
            indicator=Indicator.WARNING,
            rules=rules,
            summary=say(k, "summaries", "readiness_unmet", unmet=short),
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

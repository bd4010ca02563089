"""Surveillance, suspicion, the DVT differential (ho-rules-v1 §4) and imaging orders (§5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from hofhir.clinical.facts import Entry, IndexEvent, Measurement, PatientFacts
from hofhir.clinical.model import Finding, Indicator, Population, RiskLevel, Suggestion, Topic
from hofhir.clinical.rules.common import (
    advice_lines,
    at_risk_events,
    current,
    days_since,
    done_or_ordered_since,
    override,
    population_names,
    recent_since,
    say,
    within_days,
)
from hofhir.clinical.rules.risk import RiskAssessment
from hofhir.fhir import build
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge

SIGN_NAMES = {
    "poor_hip_rom": "decreased hip range of motion",
    "sign_swelling": "swelling",
    "sign_erythema": "erythema",
    "sign_warmth": "warmth",
    "sign_tenderness": "tenderness",
    "fever": "fever",
    "spasticity": "increased spasticity",
}
LOCAL_SIGNS = ("sign_swelling", "sign_erythema", "sign_warmth", "sign_tenderness")


def _fmt_range(m: Measurement) -> str:
    low = f"{m.low:g}" if m.low is not None else "?"
    high = f"{m.high:g}" if m.high is not None else "?"
    source = "lab" if m.range_source == "lab" else "default"
    return f"{low}-{high} {m.unit}, {source}".strip()


def _value(m: Measurement) -> str:
    return f"{m.value:g} {m.unit}".strip() if m.value is not None else "no value"


# ---------- surveillance ----------


def surveillance(facts: PatientFacts, risk: RiskAssessment, k: Knowledge, now: datetime) -> Finding | None:
    """Moderate/high risk inside 0-12 months of the index date -> what to watch, SAP trend (D-01..D-04, L-01)."""
    end = k.window("surveillance_end_days")
    candidates = [
        p
        for p in risk.populations
        if p.level.at_least(RiskLevel.MODERATE)
        and p.index
        and p.index.when
        and 0 <= days_between(p.index.when, now) <= end
    ]
    if not candidates:
        return None
    chosen = max(candidates, key=lambda p: p.index.when)  # type: ignore[union-attr,arg-type,return-value]
    assert chosen.index is not None and chosen.index.when is not None
    days = int(days_between(chosen.index.when, now))
    rules = ["D-01", "D-02", "D-04", "L-01", "D-10", "D-11", "D-12", "D-14"]
    advice = list(advice_lines(k, "surveillance"))
    reasons = [
        f"{chosen.level.value.capitalize()} risk ({population_names(k, [chosen.population])}); "
        f"index event {chosen.index.display} on {chosen.index.when.date()}, {days} days ago.",
        say(k, "advice", "surveillance_window"),
    ]
    if days <= k.window("greatest_attention_end_days"):
        reasons.append("Weeks 2-12 after the event are the period of greatest attention.")
    latest = facts.latest_result("alp")
    if latest is not None and latest.above_range:
        reasons.append(say(k, "advice", "sap_elevated", value=_value(latest), range=_fmt_range(latest)))
    suggestions: list[Suggestion] = []
    sap_days = k.window("sap_recent_days")
    recent_sap = done_or_ordered_since(facts, "alp", recent_since(now, sap_days))
    if days >= k.window("surveillance_start_days") and not recent_sap:
        suggestions.append(
            Suggestion(
                "Order serum alkaline phosphatase",
                "Order serum alkaline phosphatase (LOINC 6768-6) to trend it",
                build.alp_order(facts.patient_id, "HO surveillance: trend serum alkaline phosphatase (L-01, D-04)"),
            )
        )
    elif recent_sap:
        reasons.append(f"ALP resulted or ordered in the last {sap_days} days: none suggested.")
    else:
        reasons.append(
            f"Under {k.window('surveillance_start_days')} days from the event: ALP is not suggested yet (D-04)."
        )
    summary_key = "surveillance_with_sap" if suggestions else "surveillance"
    return Finding(
        topic=Topic.HO_SURVEILLANCE,
        indicator=Indicator.INFO,
        rules=tuple(rules),
        summary=say(k, "summaries", summary_key, days=days, event=population_names(k, [chosen.population])),
        populations=(chosen.population,),
        reasons=tuple(reasons),
        advice=tuple(advice),
        suggestions=tuple(suggestions),
        override_reasons=override(k, "already_examined"),
    )


# ---------- suspicion ----------


@dataclass(frozen=True)
class Suspicion:
    event: IndexEvent
    days: int
    signs: dict[str, Entry]
    rules: tuple[str, ...]
    sap: Measurement | None  # an elevated SAP in the last 4 weeks that strengthens the wording


def _signs_in_window(facts: PatientFacts, k: Knowledge, event: IndexEvent, now: datetime) -> dict[str, Entry]:
    """Current signs recorded 2 weeks to 12 months after this index event."""
    assert event.when is not None
    start, end = k.window("surveillance_start_days"), k.window("surveillance_end_days")
    recent = k.window("sign_recent_days")
    found: dict[str, Entry] = {}
    for concept in SIGN_NAMES:
        if concept == "spasticity":
            continue
        for entry in facts.recorded(concept):
            if entry.when is None or not current(entry, now, recent):
                continue
            offset = days_between(event.when, entry.when)
            if start <= offset <= end:
                found.setdefault(concept, entry)
    threshold = float(k.param("fever", "threshold_celsius"))
    for m in facts.measurements.get("body_temperature", []):
        hot = m.value is not None and m.value >= threshold and within_days(m.when, now, recent)
        if hot and m.when is not None and start <= days_between(event.when, m.when) <= end:
            found.setdefault("fever", Entry("fever", m.resource, "Observation", f"temperature {m.value:g} °C", m.when))
    # D-14: "limb spasticity may be enhanced": spasticity that is new after the index event counts as increased.
    for entry in facts.recorded("spasticity"):
        if entry.when and current(entry, now, recent) and start <= days_between(event.when, entry.when) <= end:
            found.setdefault("spasticity", entry)
    return found


def suspicion(facts: PatientFacts, k: Knowledge, now: datetime) -> Suspicion | None:
    """D-10, or two of D-11, or one of D-11 with fever (D-12) or increased spasticity (D-14), 2 weeks-12 months."""
    start, end = k.window("surveillance_start_days"), k.window("surveillance_end_days")
    best: Suspicion | None = None
    for event in at_risk_events(facts):
        if event.when is None:
            continue
        days = days_between(event.when, now)
        if not start <= days <= end:
            continue
        signs = _signs_in_window(facts, k, event, now)
        local = [s for s in LOCAL_SIGNS if s in signs]
        rules: list[str] = []
        if "poor_hip_rom" in signs:
            rules.append("D-10")
        if len(local) >= 2:
            rules.append("D-11")
        if local and "fever" in signs:
            rules += ["D-11", "D-12"]
        if local and "spasticity" in signs:
            rules += ["D-11", "D-14"]
        if not rules:
            continue
        sap = facts.latest_result("alp")
        supporting = (
            sap if sap and sap.above_range and within_days(sap.when, now, k.window("sap_supporting_days")) else None
        )
        candidate = Suspicion(event, int(days), signs, tuple(dict.fromkeys(rules)), supporting)
        if best is None or candidate.days < best.days:
            best = candidate
    return best


def suspected_finding(s: Suspicion, facts: PatientFacts, k: Knowledge, now: datetime) -> Finding:
    names = [SIGN_NAMES[c] for c in SIGN_NAMES if c in s.signs]
    signs_text = ", ".join(names[:3])
    reasons = [
        f"{population_names(k, [s.event.population]).capitalize()}: {s.event.display} on "
        f"{s.event.when.date() if s.event.when else 'unknown date'}, {s.days} days ago (inside 2 weeks-12 months, D-02).",
        *[
            f"{SIGN_NAMES[c].capitalize()}: {e.display}, {e.when.date() if e.when else ''} ({e.resource})"
            for c, e in s.signs.items()
        ],
    ]
    rules = [*list(s.rules), "D-02", "D-15", "I-03"]
    if s.sap is not None:
        reasons.append(
            f"ALP {_value(s.sap)} on {s.sap.when.date() if s.sap.when else ''} is above its range ({_fmt_range(s.sap)}): "
            "with clinical signs it becomes a strong indicator (L-01)."
        )
        rules.append("L-01")
    advice = [say(k, "advice", "suspected_clinical")]
    imaging_recent = recent_since(now, k.window("imaging_recent_days"))
    has_scan = done_or_ordered_since(facts, "bone_scan", imaging_recent)
    has_xray = done_or_ordered_since(facts, "hip_radiograph", imaging_recent)
    reason = f"Suspected heterotopic ossification ({signs_text})"
    bone_scan = Suggestion(
        "Order a three-phase bone scan",
        "Three-phase Tc-99m bone scan (CPT 78315)",
        build.bone_scan_order(facts.patient_id, reason),
    )
    radiograph = Suggestion(
        "Order a hip radiograph",
        "Hip radiograph, 2-3 views (CPT 73502)",
        build.hip_radiograph_order(facts.patient_id, reason),
    )
    if s.days < k.window("bone_scan_preferred_until_days"):
        advice.append(say(k, "advice", "suspected_imaging_early"))
        rules += ["I-01", "D-05", "D-06"]
        wanted = [(bone_scan, has_scan)]
    else:
        advice.append(say(k, "advice", "suspected_imaging_late"))
        rules += ["I-01", "I-02", "D-06"]
        wanted = [(radiograph, has_xray), (bone_scan, has_scan)]
    suggestions = [suggestion for suggestion, already in wanted if not already]
    if has_scan or has_xray:
        advice.append("Imaging for HO is already resulted or ordered in the last 2 weeks; none suggested again.")
    advice.append(say(k, "advice", "suspected_ultrasound"))
    key = "suspected_with_sap" if s.sap is not None else "suspected"
    return Finding(
        topic=Topic.HO_SUSPECTED,
        indicator=Indicator.WARNING,
        rules=tuple(dict.fromkeys(rules)),
        summary=say(k, "summaries", key, signs=signs_text),
        populations=(s.event.population,),
        reasons=tuple(reasons),
        advice=tuple(advice),
        suggestions=tuple(suggestions),
        override_reasons=override(k, "already_examined"),
        priority=2,
    )


# ---------- DVT differential ----------


def dvt_differential(facts: PatientFacts, k: Knowledge, now: datetime, suspected: Suspicion | None) -> Finding | None:
    """DD-03: suspected HO or limb swelling in an at-risk patient, no recent duplex, no DVT established."""
    populations = facts.populations()
    if not populations:
        return None
    recent = k.window("sign_recent_days")
    swelling = [e for e in facts.recorded("sign_swelling") if current(e, now, recent)]
    if suspected is None and not swelling:
        return None
    if [e for e in facts.recorded("dvt") if e.resource_type == "Condition" and e.active]:
        return None  # a DVT already established; it does not exclude HO, but the differential is answered
    duplex_days = k.window("duplex_recent_days")
    if done_or_ordered_since(facts, "venous_duplex", recent_since(now, duplex_days)):
        return None
    reasons = []
    if suspected is not None:
        reasons.append("Heterotopic ossification is suspected (see the suspicion card).")
    if swelling:
        e = swelling[0]
        reasons.append(
            f"Limb swelling recorded: {e.display}{', ' + str(e.when.date()) if e.when else ''} ({e.resource})."
        )
    reasons.append(f"No venous duplex or phlebography in the last {duplex_days} days, and no DVT diagnosis on record.")
    bilateral = not any(
        ("left" in (e.site + e.display).lower()) != ("right" in (e.site + e.display).lower()) for e in swelling
    )
    suggestion = Suggestion(
        "Order a venous duplex ultrasound",
        "Venous duplex of the lower extremity to differentiate DVT from HO (DD-03)",
        build.venous_duplex_order(
            facts.patient_id, "Differentiate DVT from heterotopic ossification (DD-03)", bilateral
        ),
    )
    pops: tuple[Population, ...]
    if suspected is not None:
        pops = (suspected.event.population,)
    else:
        pops = tuple(p for p in populations if p is not Population.HO_HISTORY)[:1] or tuple(populations[:1])
    return Finding(
        topic=Topic.DVT_DIFFERENTIAL,
        indicator=Indicator.WARNING,
        rules=("DD-03", "DD-02", "DD-01", "LIT-DVT-ASSOCIATION"),
        summary=say(k, "summaries", "dvt", days=duplex_days),
        populations=pops,
        reasons=tuple(reasons),
        advice=advice_lines(k, "dvt"),
        suggestions=(suggestion,),
        override_reasons=override(k, "duplex_done", "dvt_unlikely"),
        priority=1,
    )


# ---------- imaging orders (order-select / order-sign) ----------


def imaging_orders(
    facts: PatientFacts, k: Knowledge, now: datetime, drafts: list[tuple[dict[str, object], set[str]]]
) -> list[Finding]:
    out: list[Finding] = []
    too_early = k.window("radiograph_too_early_days")
    for order, concepts in drafts:
        if "hip_radiograph" in concepts:
            events = [e for e in at_risk_events(facts, include_history=False) if e.when is not None]
            recent = [e for e in events if 0 <= days_between(e.when, now) < too_early]  # type: ignore[arg-type]
            if recent:
                event = max(recent, key=lambda e: e.when)  # type: ignore[arg-type,return-value]
                days = int(days_since(event.when, now) or 0)
                out.append(
                    Finding(
                        topic=Topic.HO_IMAGING,
                        indicator=Indicator.INFO,
                        rules=("D-06", "I-02", "I-01", "D-05"),
                        summary=say(
                            k,
                            "summaries",
                            "imaging_radiograph_early",
                            days=days,
                            event=population_names(k, [event.population]),
                        ),
                        populations=(event.population,),
                        reasons=(
                            f"Hip radiograph ordered {days} days after {event.display}: radiographs detect HO only after "
                            "3 weeks to 2 months (D-06).",
                        ),
                        advice=(
                            say(k, "advice", "suspected_imaging_early"),
                            "If the radiograph is for another reason (fracture, implant), ignore this card.",
                        ),
                        override_reasons=override(k, "not_indicated"),
                    )
                )
        if "biopsy" in concepts and _biopsy_for_ho(facts, order, k, now):
            pops = tuple(facts.populations()[:1])
            out.append(
                Finding(
                    topic=Topic.HO_IMAGING,
                    indicator=Indicator.WARNING,
                    rules=("I-05",),
                    summary=say(k, "summaries", "imaging_biopsy"),
                    populations=pops,
                    reasons=(
                        "A biopsy is ordered for a lesion that may be heterotopic ossification.",
                        "Tissue diagnosis by biopsy is not done because of the risk of exacerbating the disorder by resection of an immature lesion (I-05).",
                    ),
                    advice=(say(k, "advice", "suspected_imaging_early"),),
                    override_reasons=override(k, "not_indicated", "surgeon_reviewed"),
                    priority=2,
                )
            )
    return out


def _biopsy_for_ho(facts: PatientFacts, order: dict[str, object], k: Knowledge, now: datetime) -> bool:
    text = str(order).lower()
    if "heterotopic" in text or "myositis ossificans" in text:
        return True
    reasons = order.get("reasonCode")
    if isinstance(reasons, list) and any("ho" in k.terminology.sets_for_concept(r) for r in reasons):
        return True
    # Otherwise only a biopsy where HO forms (E-08: hip, knee, elbow, shoulder) in a patient with HO on record
    # or suspected is "a biopsy of a suspected HO lesion" (I-05); a liver biopsy is not.
    if not HO_SITE.search(text) and not _hip_area_biopsy(order):
        return False
    return bool(facts.recorded("ho")) or suspicion(facts, k, now) is not None


HO_SITE = re.compile(
    r"\b(?:hips?|thighs?|pelvi\w*|femurs?|femoral|acetabul\w*|gluteal|buttocks?|knees?|elbows?|shoulders?)\b"
)


def _hip_area_biopsy(order: dict[str, object]) -> bool:
    """CPT 27040/27041: biopsy, soft tissue of pelvis and hip area."""
    code = order.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("code") in ("27040", "27041") for c in codings
    )

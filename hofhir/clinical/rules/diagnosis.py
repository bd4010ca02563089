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
    months,
    override,
    population_names,
    recent_since,
    say,
    sign_days,
    weeks,
    within_days,
)
from hofhir.clinical.rules.risk import RiskAssessment
from hofhir.fhir import build
from hofhir.fhir.dates import days_between
from hofhir.knowledge import Knowledge

# The signs of D-10..D-14, by value set, in the order cards name them (names: cards.toml [signs]).
SIGNS = ("poor_hip_rom", "sign_swelling", "sign_erythema", "sign_warmth", "sign_tenderness", "fever", "spasticity")
LOCAL_SIGNS = ("sign_swelling", "sign_erythema", "sign_warmth", "sign_tenderness")
# D-10..D-12: what a draft's reason must name for an imaging order to be "to look for HO" (§5, 1.1).
HO_REASON_SETS = frozenset(
    {"ho", "poor_hip_rom", "sign_swelling", "sign_erythema", "sign_warmth", "sign_tenderness", "fever"}
)
HO_REPORT_WORDS = ("heterotopic ossification", "heterotopic bone", "myositis ossificans", "neurogenic ossification")
IMAGING_SETS = ("bone_scan", "hip_radiograph", "ct_planning")


def _fmt_range(m: Measurement) -> str:
    low = f"{m.low:g}" if m.low is not None else "?"
    high = f"{m.high:g}" if m.high is not None else "?"
    source = "lab" if m.range_source == "lab" else "default"
    return f"{low}-{high} {m.unit}, {source}".strip()


def _value(m: Measurement) -> str:
    if m.value is None:
        return "no value"
    shown = f"{m.value:g} {m.unit}".strip()
    return f"{shown}, recorded as {m.original}" if m.original else shown


# ---------- HO already diagnosed (§4, 1.1) ----------


def ho_diagnosed(facts: PatientFacts) -> Entry | None:
    """An active HO condition, or imaging that reports HO, dated after the most recent index event."""
    events = [e.when for e in at_risk_events(facts, include_history=False) if e.when is not None]
    latest = max(events) if events else None
    found: list[Entry] = []
    for entry in facts.recorded("ho"):
        if entry.resource_type == "Condition" and not entry.active:
            continue
        found.append(entry)  # an active HO Condition, or a report / result coded as HO
    for entry in facts.recorded(*IMAGING_SETS):
        note = entry.note.lower()
        if entry.resource_type != "ServiceRequest" and _REPORTS_HO.search(note) and not _NO_HO.search(note):
            found.append(entry)
    after = [e for e in found if latest is None or (e.when is not None and e.when > latest)]
    after.sort(key=lambda e: e.when.timestamp() if e.when else 0.0)
    return after[-1] if after else None


_REPORTS_HO = re.compile("|".join(re.escape(w) for w in HO_REPORT_WORDS))
_NO_HO = re.compile(r"\b(?:no|without|negative for|not)\b[^.]{0,40}(?:" + _REPORTS_HO.pattern + ")")


# ---------- surveillance ----------


def surveillance(
    facts: PatientFacts, risk: RiskAssessment, k: Knowledge, now: datetime, suspected: Suspicion | None = None
) -> Finding | None:
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
    start, attention = k.window("surveillance_start_days"), k.window("greatest_attention_end_days")
    rules = ["D-01", "D-02", "D-04", "L-01", "D-10", "D-11", "D-12", "D-14"]
    advice = list(advice_lines(k, "surveillance"))
    reasons = [
        f"{chosen.level.value.capitalize()} risk ({population_names(k, [chosen.population])}); "
        f"index event {chosen.index.display} on {chosen.index.when.date()}, {days} days ago.",
        say(k, "advice", "surveillance_window"),
    ]
    if days <= attention:
        reasons.append(say(k, "reasons", "greatest_attention", start_week=weeks(start), end_week=weeks(attention)))
    latest = facts.latest_result("alp")
    if latest is not None and not latest.unit_known:
        reasons.append(say(k, "reasons", "sap_unknown_unit", value=_value(latest)))
    elif latest is not None and latest.above_range:
        reasons.append(say(k, "advice", "sap_elevated", value=_value(latest), range=_fmt_range(latest)))
    # ho-rules-v1 §4 (1.1): SAP only for the neurogenic and burn populations in weeks 2-12 after their
    # index date, or at any time inside the window when ho-suspected fires; after surgery or a fracture
    # it is non-specific (L-01) and none is suggested.
    neurogenic = {Population(p) for p in k.param("sap", "suggest_for")}
    non_specific = {Population(p) for p in k.param("sap", "non_specific_for")}
    neuro_days = [
        int(days_between(p.index.when, now))
        for p in candidates
        if p.population in neurogenic and p.index and p.index.when
    ]
    in_weeks = [d for d in neuro_days if start <= d <= attention]
    suggestions: list[Suggestion] = []
    sap_days = k.window("sap_recent_days")
    recent_sap = done_or_ordered_since(facts, "alp", recent_since(now, sap_days))
    if recent_sap:
        reasons.append(say(k, "reasons", "sap_recent", days=sap_days))
    elif suspected is not None or in_weeks:
        suggestions.append(
            Suggestion(
                "Order serum alkaline phosphatase",
                "Order serum alkaline phosphatase (LOINC 6768-6) to trend it",
                build.alp_order(facts.patient_id, "HO surveillance: trend serum alkaline phosphatase (L-01, D-04)"),
            )
        )
    elif neuro_days and max(neuro_days) >= 0 and min(neuro_days) < start:
        reasons.append(say(k, "reasons", "sap_too_early", days=start))
    elif neuro_days:
        reasons.append(
            say(
                k,
                "reasons",
                "sap_outside_weeks",
                start_week=weeks(start),
                end_week=weeks(attention),
                day=min(neuro_days),
            )
        )
    if not suggestions and any(p.population in non_specific for p in candidates) and not in_weeks:
        reasons.append(say(k, "reasons", "sap_after_surgery"))
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
    recent = sign_days(k)
    found: dict[str, Entry] = {}
    for concept in SIGNS:
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
    """D-10, or two of D-11, or one of D-11 with fever (D-12) or increased spasticity (D-14), 2 weeks-12 months.

    None when HO is already diagnosed (§4, 1.1): the question is no longer "is this HO?"."""
    if ho_diagnosed(facts) is not None:
        return None
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
    names = [say(k, "signs", c) for c in SIGNS if c in s.signs]
    signs_text = ", ".join(names[:3])
    reasons = [
        say(
            k,
            "reasons",
            "suspicion_window",
            population=population_names(k, [s.event.population]).capitalize(),
            event=s.event.display,
            date=s.event.when.date() if s.event.when else "unknown date",
            days=s.days,
            start_week=weeks(k.window("surveillance_start_days")),
            end_months=months(k.window("surveillance_end_days")),
        ),
        *[
            f"{say(k, 'signs', c).capitalize()}: {e.display}, {e.when.date() if e.when else ''} ({e.resource})"
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
        advice.append(say(k, "reasons", "imaging_already", days=k.window("imaging_recent_days")))
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


def _words(entry: Entry) -> str:
    return f" {entry.site} {entry.display} ".lower()


# ICD-10-CM R22.3- (upper limb) and R22.4- (lower limb): localized swelling; the 5th character is the side.
ICD_LIMB = {"R223": "upper", "R224": "lower"}
ICD_SIDE = {"1": "right", "2": "left", "3": "bilateral"}


def _icd_limb(entry: Entry) -> tuple[str, str]:
    """(limb, side) from an R22.3x/R22.4x code ('' where the code does not say)."""
    for code in entry.icd:
        limb = ICD_LIMB.get(code[:4])
        if limb:
            return limb, ICD_SIDE.get(code[4:5], "")
    return "", ""


def _limb(entry: Entry, k: Knowledge) -> str:
    """'upper', 'lower' or '' (not said) for a swelling, from its code, bodySite or code text."""
    limb, _ = _icd_limb(entry)
    if limb:
        return limb
    text = _words(entry)
    lower = any(re.search(rf"\b{re.escape(w)}", text) for w in k.param("dvt", "lower_limb_words"))
    upper = any(re.search(rf"\b{re.escape(w)}", text) for w in k.param("dvt", "upper_limb_words"))
    if upper and not lower:
        return "upper"
    return "lower" if lower else ""


def _side(entries: list[Entry]) -> str | None:
    """'left' or 'right' when every swelling names that one side; None otherwise (bilateral study)."""
    sides = set()
    for e in entries:
        text = _words(e)
        coded = _icd_limb(e)[1]
        if coded == "bilateral":
            return None
        left, right = ("left" in text or coded == "left"), ("right" in text or coded == "right")
        if left == right:
            return None
        sides.add("left" if left else "right")
    return sides.pop() if len(sides) == 1 else None


def established_dvt(facts: PatientFacts, k: Knowledge) -> tuple[list[Entry], list[Entry]]:
    """(established, not established) active DVT Conditions (§4, 1.1: confirmed or no verificationStatus)."""
    confirmed = set(k.param("dvt", "established_verification"))
    active = [e for e in facts.recorded("dvt") if e.resource_type == "Condition" and e.active]
    return [e for e in active if e.verification in confirmed], [e for e in active if e.verification not in confirmed]


def dvt_differential(facts: PatientFacts, k: Knowledge, now: datetime, suspected: Suspicion | None) -> Finding | None:
    """DD-03: suspected HO or limb swelling in an at-risk patient, no recent duplex, no DVT established."""
    populations = facts.populations()
    if not populations:
        return None
    recent = sign_days(k)
    # Swelling recorded only in an upper limb is no reason for a leg duplex (§4, 1.1).
    swelling = [e for e in facts.recorded("sign_swelling") if current(e, now, recent) and _limb(e, k) != "upper"]
    if suspected is None and not swelling:
        return None
    established, open_question = established_dvt(facts, k)
    if established:
        return None  # a DVT already established; it does not exclude HO, but the differential is answered
    duplex_days = k.window("duplex_recent_days")
    if done_or_ordered_since(facts, "venous_duplex", recent_since(now, duplex_days)):
        return None
    reasons = []
    if suspected is not None:
        reasons.append(say(k, "reasons", "dvt_suspected"))
    if swelling:
        e = swelling[0]
        when = f", {e.when.date()}" if e.when else ""
        reasons.append(say(k, "reasons", "dvt_swelling", display=e.display, date=when, resource=e.resource))
    for e in open_question:
        reasons.append(say(k, "reasons", "dvt_unconfirmed", status=e.verification, display=e.display))
    reasons.append(say(k, "reasons", "dvt_no_duplex", days=duplex_days))
    side = _side(swelling) if swelling else None
    description = "Venous duplex of the lower extremity to differentiate DVT from HO (DD-03)"
    resource = build.venous_duplex_order(
        facts.patient_id, "Differentiate DVT from heterotopic ossification (DD-03)", side is None
    )
    if side is not None:
        # The side the record gives (the swelling's bodySite or laterality), as text: no code is guessed.
        resource = {**resource, "bodySite": [{"text": f"{side} lower extremity"}]}
        description = f"Venous duplex of the {side} lower extremity to differentiate DVT from HO (DD-03)"
    suggestion = Suggestion("Order a venous duplex ultrasound", description, resource)
    pops: tuple[Population, ...]
    if suspected is not None:
        pops = (suspected.event.population,)
    else:
        pops = tuple(p for p in populations if p is not Population.HO_HISTORY)[:1] or tuple(populations[:1])
    # The summary names what triggered the card: swelling only when swelling is recorded.
    summary = say(k, "summaries", "dvt", days=duplex_days) if swelling else say(k, "summaries", "dvt_suspected")
    return Finding(
        topic=Topic.DVT_DIFFERENTIAL,
        indicator=Indicator.WARNING,
        rules=("DD-03", "DD-02", "DD-01", "LIT-DVT-ASSOCIATION"),
        summary=summary,
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
    suspected: Suspicion | None = None
    for order, concepts in drafts:
        if "hip_radiograph" in concepts:
            events = [e for e in at_risk_events(facts, include_history=False) if e.when is not None]
            recent = [e for e in events if 0 <= days_between(e.when, now) < too_early]  # type: ignore[arg-type]
            if not recent:
                continue
            # ho-rules-v1 §5 (1.1): only a film "to look for HO" (its reason names HO or a sign, or the
            # patient meets ho-suspected now); a routine film (implant check, fracture follow-up) gets no card.
            why = _reason_names_ho(facts, k, order)
            if why is None:
                suspected = suspected or suspicion(facts, k, now)
                why = "HO suspected on the record" if suspected is not None else None
            if why is None:
                continue
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
                    reasons=(say(k, "reasons", "radiograph_early", days=days, event=event.display, why=why),),
                    advice=(say(k, "advice", "suspected_imaging_early"),),
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
                    reasons=(say(k, "reasons", "biopsy_ordered"), say(k, "reasons", "biopsy_not_done")),
                    advice=(say(k, "advice", "suspected_imaging_early"),),
                    override_reasons=override(k, "not_indicated", "surgeon_reviewed"),
                    priority=2,
                )
            )
    return out


def _reason_names_ho(facts: PatientFacts, k: Knowledge, order: dict[str, object]) -> str | None:
    """What in the draft's reasonCode / reasonReference names HO or one of its signs (D-10..D-12), or None."""
    reasons = order.get("reasonCode")
    for reason in reasons if isinstance(reasons, list) else []:
        text = reason.get("text") if isinstance(reason, dict) else None
        named = isinstance(text, str) and bool(_REPORTS_HO.search(text.lower())) and not _NO_HO.search(text.lower())
        if named or k.terminology.sets_for_concept(reason, use_text=True) & HO_REASON_SETS:
            return f"reason: {text}" if isinstance(text, str) else "reason names HO or one of its signs"
    refs = order.get("reasonReference")
    for ref in refs if isinstance(refs, list) else []:
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str):
            continue
        for concept in HO_REASON_SETS:
            for entry in facts.of(concept):
                if entry.resource == target or target.endswith("/" + entry.resource):
                    return f"reason: {entry.display}"
    return None


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
